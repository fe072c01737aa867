"""Backup and restore of one warehouse: its database and everything in its folder (citizen_view/layout.py).

A backup folder holds

    warehouse.duckdb    a copy of the database made by DuckDB (`COPY FROM DATABASE`, the source attached
                        read-only): one consistent state, compacted, without a write-ahead log
    files/              the warehouse's folder: model, review decisions, audit log and anchors, served views,
                        bundles and the `published` symlink, access.yaml, area lists (not tmp/ nor *.partial)
    MANIFEST.json       written last: sha256 and size of every file, the symlinks, the schema version and the
                        warehouse it came from. A folder without it is not a backup.

Consistency. A backup holds the warehouse's run lock (citizen_view/runlock.py) from start to end, so it is
REFUSED while a pipeline run writes (the error names the run) and a run that starts meanwhile waits for it.
The service may go on serving: it only appends to the audit log and the review decisions, and those are
copied under the same file locks their writers take (a log, its anchors and its second anchor copy are
written under the log's lock), so each is copied whole, entries and anchors agreeing. Served views and
bundles are written once and never changed.

Restore verifies every file against the manifest while it copies, into a new warehouse path only, through a
hidden staging folder renamed into place at the end: a corrupt or incomplete backup restores nothing.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import json
import os
import posixpath
import shutil
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import duckdb

from citizen_view.layout import PARTIAL, WarehouseLayout
from citizen_view.runlock import LOCK_NAME, WarehouseBusy, hold
from citizen_view.warehouse import release, schema_version

FORMAT = 1
MANIFEST = "MANIFEST.json"
DATABASE = "warehouse.duckdb"
FILES = "files"
APPEND_ONLY = ("audit", "audit-anchors", "review")  # copied under their writers' file locks
SKIPPED = ("tmp", LOCK_NAME)  # scratch space and the run lock are no part of a warehouse's state
CHUNK = 1 << 20


class BackupError(RuntimeError):
    """A backup or restore that cannot be done as asked: nothing was written to the target."""


@dataclass(frozen=True)
class BackupReport:
    folder: Path
    files: int
    bytes: int
    schema_version: int
    seconds: float


@dataclass(frozen=True)
class RestoreReport:
    warehouse: Path
    files: int
    bytes: int
    schema_version: int
    backed_up_at: str
    source_warehouse: str


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _empty_target(path: Path, what: str) -> None:
    if path.is_symlink() or (path.exists() and (not path.is_dir() or any(path.iterdir()))):
        raise BackupError(f"{path} exists already and is not an empty folder: give a new {what}")


@contextmanager
def _append_only_locked(layout: WarehouseLayout) -> Iterator[None]:
    """Hold the file lock of every audit log and of the review decisions (what their writers take)."""
    logs = sorted((layout.root / "audit").glob("*.jsonl")) + [layout.overrides_file]
    with ExitStack() as stack:
        for log in logs:
            if log.is_file():
                handle = stack.enter_context(log.open("rb"))
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        yield


def _ignore(folder: str, names: list[str]) -> set[str]:
    return {n for n in names if n.startswith(".") and PARTIAL in n}


def _copy_database(source: Path, target: Path) -> None:
    con = duckdb.connect(str(target))
    try:
        try:
            con.execute(f"ATTACH '{source.as_posix().replace(chr(39), chr(39) * 2)}' AS warehouse_source (READ_ONLY)")
        except duckdb.IOException as exc:  # held read-write by a process outside the run lock
            raise BackupError(
                f"the warehouse {source} cannot be read now ({exc}); back up when its writer ends"
            ) from None
        con.execute(f"COPY FROM DATABASE warehouse_source TO {target.stem}")
        con.execute("DETACH warehouse_source")
        con.execute("CHECKPOINT")
    finally:
        con.close()


def _listing(files_root: Path) -> tuple[list[dict], list[dict]]:
    files, links = [], []
    for path in sorted(files_root.rglob("*")):
        rel = path.relative_to(files_root).as_posix()
        if path.is_symlink():
            links.append({"path": rel, "target": os.readlink(path)})
        elif path.is_file():
            files.append({"path": rel, "size": path.stat().st_size, "sha256": _sha256(path)})
    return files, links


def backup(warehouse: str | Path, to: str | Path) -> BackupReport:
    """Copy the warehouse and its folder into the new folder `to` (refused while a pipeline run writes)."""
    started = time.monotonic()
    layout = WarehouseLayout.of(warehouse)
    if not layout.warehouse.is_file():
        raise BackupError(f"no warehouse at {layout.warehouse}")
    target = Path(to).expanduser().resolve()
    _empty_target(target, "backup folder")
    if target == layout.root or layout.root in target.parents:
        raise BackupError(f"{target} is inside the warehouse's folder {layout.root}: back up to another place")
    staging = target.with_name(f".{target.name}{PARTIAL}")
    shutil.rmtree(staging, ignore_errors=True)
    (staging / FILES).mkdir(parents=True)
    try:
        try:
            with hold(layout, "backup", wait=False):
                _copy_database(layout.warehouse, staging / DATABASE)
                if layout.root.is_dir():
                    with _append_only_locked(layout):
                        for name in APPEND_ONLY:
                            if (layout.root / name).is_dir():
                                shutil.copytree(
                                    layout.root / name, staging / FILES / name, symlinks=True, ignore=_ignore
                                )
                    for item in sorted(layout.root.iterdir()):
                        if item.name in APPEND_ONLY or item.name in SKIPPED or _ignore("", [item.name]):
                            continue
                        if item.is_dir() and not item.is_symlink():
                            shutil.copytree(item, staging / FILES / item.name, symlinks=True, ignore=_ignore)
                        else:
                            shutil.copy2(item, staging / FILES / item.name, follow_symlinks=False)
        except WarehouseBusy as exc:
            raise BackupError(f"refused: {exc}; back up when it ends") from None
        con = duckdb.connect(str(staging / DATABASE), read_only=True)
        try:
            version, writer = schema_version(con)
        finally:
            con.close()
        files, links = _listing(staging / FILES)
        manifest = {
            "format": FORMAT,
            "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "citizen_view": release(),
            "warehouse": str(layout.warehouse),
            "schema_version": version,
            "written_by": writer,
            "database": {
                "path": DATABASE,
                "size": (staging / DATABASE).stat().st_size,
                "sha256": _sha256(staging / DATABASE),
            },
            "files": files,
            "symlinks": links,
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
        if target.is_dir():
            target.rmdir()
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    total = manifest["database"]["size"] + sum(f["size"] for f in files)
    return BackupReport(target, len(files) + 1, total, version, round(time.monotonic() - started, 2))


def read_manifest(folder: Path) -> dict:
    """The backup's manifest, checked for shape; BackupError when the folder is not a complete backup."""
    path = folder / MANIFEST
    if not path.is_file():
        raise BackupError(f"{folder} is not a complete backup: it has no {MANIFEST}")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BackupError(f"{path} cannot be read: {exc}") from None
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{path} has backup format {manifest.get('format')!r}; this release reads format {FORMAT}")
    for entry in manifest["files"] + manifest["symlinks"]:
        rel = PurePosixPath(entry["path"])
        if rel.is_absolute() or ".." in rel.parts:
            raise BackupError(f"{path} names a file outside the warehouse's folder: {entry['path']}")
    for link in manifest["symlinks"]:
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(link["path"]), link["target"]))
        if posixpath.isabs(link["target"]) or resolved == ".." or resolved.startswith("../"):
            raise BackupError(f"{path}: the symlink {link['path']} points outside the warehouse's folder")
    return manifest


def _copy_verified(source: Path, target: Path, *, size: int, sha256: str, problems: list[str], name: str) -> None:
    if not source.is_file():
        problems.append(f"{name} is missing")
        return
    digest = hashlib.sha256()
    target.parent.mkdir(parents=True, exist_ok=True)
    with source.open("rb") as src, target.open("wb") as dst:
        while block := src.read(CHUNK):
            digest.update(block)
            dst.write(block)
        dst.flush()
        os.fsync(dst.fileno())
    if digest.hexdigest() != sha256 or target.stat().st_size != size:
        problems.append(f"{name} does not match the manifest (changed or damaged since the backup)")


def _rename_anchor_copies(root: Path, old: WarehouseLayout, new: WarehouseLayout) -> None:
    """The second anchor copy is named after its log's path: follow the log to its new place."""
    for log in (root / "audit").glob("*.jsonl"):
        was = old.anchor_copy(old.root / "audit" / log.name)
        now = new.anchor_copy(new.root / "audit" / log.name)
        staged = root / was.relative_to(old.root)
        if staged.is_file():
            staged.rename(root / now.relative_to(new.root))


def restore(source: str | Path, warehouse: str | Path) -> RestoreReport:
    """Restore the backup in `source` as the new warehouse `warehouse` (never over an existing one)."""
    folder = Path(source).expanduser().resolve()
    manifest = read_manifest(folder)
    layout = WarehouseLayout.of(warehouse)
    if layout.warehouse.exists():
        raise BackupError(f"{layout.warehouse} exists already: restore into a new warehouse path")
    _empty_target(layout.root, "warehouse path")
    extra = {
        p.relative_to(folder / FILES).as_posix()
        for p in (folder / FILES).rglob("*")
        if not p.is_dir() or p.is_symlink()
    }
    extra -= {f["path"] for f in manifest["files"]} | {s["path"] for s in manifest["symlinks"]}
    staging_root = layout.root.with_name(f".{layout.root.name}.restore{PARTIAL}")
    staging_db = layout.warehouse.with_name(f".{layout.warehouse.name}.restore{PARTIAL}")
    shutil.rmtree(staging_root, ignore_errors=True)
    staging_db.unlink(missing_ok=True)
    problems = [f"files/{p} is not in the manifest" for p in sorted(extra)]
    try:
        staging_root.mkdir(parents=True)
        db = manifest["database"]
        _copy_verified(
            folder / DATABASE, staging_db, size=db["size"], sha256=db["sha256"], problems=problems, name=DATABASE
        )
        for f in manifest["files"]:
            _copy_verified(
                folder / FILES / f["path"],
                staging_root / f["path"],
                size=f["size"],
                sha256=f["sha256"],
                problems=problems,
                name=f"files/{f['path']}",
            )
        for link in manifest["symlinks"]:
            (staging_root / link["path"]).parent.mkdir(parents=True, exist_ok=True)
            os.symlink(link["target"], staging_root / link["path"])
        if problems:
            shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
            raise BackupError(f"the backup in {folder} is damaged, nothing was restored: {shown}")
        _rename_anchor_copies(staging_root, WarehouseLayout.of(manifest["warehouse"]), layout)
        if layout.root.is_dir():
            layout.root.rmdir()
        staging_root.rename(layout.root)
        staging_db.rename(layout.warehouse)  # last: the warehouse exists only once everything is in place
    except BaseException:
        shutil.rmtree(staging_root, ignore_errors=True)
        staging_db.unlink(missing_ok=True)
        raise
    return RestoreReport(
        layout.warehouse,
        len(manifest["files"]) + 1,
        db["size"] + sum(f["size"] for f in manifest["files"]),
        manifest["schema_version"],
        manifest["created_at"],
        manifest["warehouse"],
    )

"""Where everything that belongs to one warehouse lives: one object, so two warehouses never share state.

A warehouse file `<folder>/<name>.duckdb` owns the folder `<folder>/<name>/` and nothing else:

    <name>.duckdb                 the warehouse (DuckDB)
    <name>/linkage/               the fitted Splink model (JSON) and its charts
    <name>/review/                reviewers' decisions (link_overrides.jsonl)
    <name>/serving/               read-only served views and the CURRENT pointer
    <name>/audit/                 the access log and its anchors
    <name>/audit-anchors/         the second copy of each audit log's anchors (point it elsewhere in production)
    <name>/exports/               one open-data bundle per run (unless publication.exports_dir is absolute)
    <name>/published              a symlink to the published bundle, swapped atomically
    <name>/access.yaml            roles and users of the caseworker service (`citizen-view init` writes one)
    <name>/tmp/                   scratch space of the linkage steps (their input as Parquet, spill files, the local
                                  Spark session's folders): removed when a step ends, and at the start of every run
    <name>/.warehouse             the ownership marker: the name of the one warehouse file this folder belongs to

So `a.duckdb` and `b.duckdb` in one folder keep their models, decisions, views and logs apart, and
nothing is written outside the warehouse's folder except where a configured path says so. Two files
whose names lead to the same folder (`a.duckdb` and `a.db`) cannot share it: the first claims it with
the marker and the second is refused (`FolderClaimed`). A folder from before the marker belongs to
`<name>.duckdb` when that file exists.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

DEFAULT_WAREHOUSE = Path("warehouse/citizen_view.duckdb")
PARTIAL = ".partial"
MARKER = ".warehouse"


class FolderClaimed(ValueError):
    """A warehouse's folder already belongs to another warehouse file."""


class _Inside:
    """A fixed path inside the warehouse's folder, declared by its parts: read as an attribute of a layout."""

    def __init__(self, *parts: str) -> None:
        self.parts = parts

    def __get__(self, layout: WarehouseLayout | None, owner: type | None = None) -> Path:
        if layout is None:
            return self  # type: ignore[return-value]  # the declaration itself, read on the class
        return layout.root.joinpath(*self.parts)


@dataclass(frozen=True)
class WarehouseLayout:
    """Every path that belongs to one warehouse file."""

    warehouse: Path

    @classmethod
    def of(cls, warehouse: str | Path) -> WarehouseLayout:
        return cls(Path(warehouse).expanduser().resolve())

    @property
    def root(self) -> Path:
        """The warehouse's own folder: `<folder>/<name>/` beside `<folder>/<name>.duckdb`."""
        return (
            self.warehouse.with_suffix("")
            if self.warehouse.suffix
            else self.warehouse.with_name(self.warehouse.name + ".d")
        )

    # The fixed paths inside the warehouse's folder.
    linkage_dir = _Inside("linkage")
    model_file = _Inside("linkage", "splink_model.json")
    # Reviewers' decisions, kept outside the warehouse so they can be recorded while a run holds it.
    overrides_file = _Inside("review", "link_overrides.jsonl")
    serving_dir = _Inside("serving")
    audit_log = _Inside("audit", "access.jsonl")
    access_file = _Inside("access.yaml")
    # Official area lists refreshed by `citizen-view areas refresh` (the shipped lists are used otherwise).
    areas_dir = _Inside("areas")
    scratch_dir = _Inside("tmp")
    marker = _Inside(MARKER)

    def anchor_copy(self, log: Path | None = None) -> Path:
        """The default second location of an audit log's anchors: a separate folder, one file per log (production
        points it off the host with --anchor-sink)."""
        log = Path(log or self.audit_log).expanduser().resolve()
        tag = hashlib.sha256(str(log).encode("utf-8")).hexdigest()[:12]
        return self.root / "audit-anchors" / f"{log.stem}-{tag}.anchors"

    def exports_dir(self, configured: str | Path = "exports") -> Path:
        """Where run bundles go: the configured folder, relative ones inside the warehouse's folder."""
        return self.inside(configured)

    def published_dir(self, configured: str | Path = "published") -> Path:
        """The published bundle (a symlink swapped atomically): configured, relative ones inside the warehouse's folder."""
        return self.inside(configured)

    def inside(self, configured: str | Path) -> Path:
        """A configured path: absolute as given, relative inside the warehouse's folder."""
        path = Path(configured).expanduser()
        return path if path.is_absolute() else self.root / path

    def scratch(self, prefix: str) -> ScratchDir:
        """A fresh scratch folder inside the warehouse's folder, removed when the block ends."""
        return ScratchDir(self.scratch_dir, prefix)

    def owner(self) -> Path | None:
        """The warehouse file the folder belongs to: the one its marker names, else (a folder from before markers)
        `<name>.duckdb` beside it when that file exists, else None (nobody's yet).

        The marker holds a file name, not a path: a warehouse moved or copied with its folder keeps working,
        and a marker naming a file whose folder is another one (a renamed copy) is out of date and ignored.
        """
        if self.marker.is_file():
            named = self.root.parent / self.marker.read_text(encoding="utf-8").strip()
            return named if WarehouseLayout(named).root == self.root else None
        legacy = self.root.with_name(self.root.name + ".duckdb")
        if self.root.is_dir() and legacy.is_file():
            return legacy
        return None

    def check_owner(self) -> None:
        """Raise FolderClaimed when the folder belongs to another warehouse file."""
        owner = self.owner()
        if owner is not None and owner != self.warehouse:
            raise FolderClaimed(
                f"the folder {self.root} belongs to the warehouse {owner}, not {self.warehouse}: "
                f"rename this warehouse file (its folder is its name without the extension)"
            )

    def claim(self) -> None:
        """Make the folder this warehouse's (writing the marker), or raise FolderClaimed when it is another's."""
        self.check_owner()
        if self.owner() is None or not self.marker.is_file():
            self.root.mkdir(parents=True, exist_ok=True)
            tmp = self.root / f".{MARKER.lstrip('.')}.{os.getpid()}{PARTIAL}"
            tmp.write_text(f"{self.warehouse.name}\n", encoding="utf-8")
            os.replace(tmp, self.marker)

    def clean_scratch(self) -> list[Path]:
        """Remove what killed steps left in the scratch folder (their input holds personal data). Call it only while
        holding the warehouse's write lock, so no step of another process is using it; a live process's Spark
        folders are kept."""
        removed: list[Path] = []
        if not self.scratch_dir.is_dir():
            return removed
        for leftover in sorted(self.scratch_dir.iterdir()):
            if _live_spark_folder(leftover):
                continue
            _remove(leftover)
            removed.append(leftover)
        return removed


def spark_folder(scratch_dir: Path) -> Path:
    """The folder of this process's local Spark session (local dirs, SQL warehouse, checkpoints) in a scratch folder."""
    return scratch_dir / f".spark-{os.getpid()}{PARTIAL}"


def _live_spark_folder(path: Path) -> bool:
    """A Spark folder of a process that is still running (its session may be used by its next step)."""
    name = path.name
    if not (name.startswith(".spark-") and name.endswith(PARTIAL)):
        return False
    try:
        pid = int(name[len(".spark-") : -len(PARTIAL)])
    except ValueError:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def prepare(layout: WarehouseLayout) -> list[Path]:
    """The start of every run: claim the warehouse's folder and remove what killed runs left in its scratch folder.

    The scratch folder is emptied only while this process holds the warehouse's write lock; when another
    process holds it (a run under way), nothing is removed and that run's own steps are left alone.
    """
    import duckdb

    from citizen_view.warehouse import connect

    layout.claim()
    try:
        with connect(layout.warehouse):
            return layout.clean_scratch()
    except duckdb.IOException:
        return []


class ScratchDir:
    """A temporary folder under the warehouse's own `tmp/`, removed on exit (a crash leaves it for `clean_partials`)."""

    def __init__(self, parent: Path, prefix: str):
        self.parent = parent
        self.prefix = prefix
        self.path: Path | None = None

    def __enter__(self) -> Path:
        import tempfile

        self.parent.mkdir(parents=True, exist_ok=True)
        self.path = Path(tempfile.mkdtemp(prefix=f".{self.prefix}-", suffix=PARTIAL, dir=self.parent))
        return self.path

    def __exit__(self, *exc: object) -> None:
        if self.path is not None:
            shutil.rmtree(self.path, ignore_errors=True)


def clean_partials(folder: Path) -> list[Path]:
    """Remove what crashed writers left in `folder`: hidden `*.partial` files and folders. Returns what was removed."""
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    for leftover in folder.glob(f".*{PARTIAL}*"):
        _remove(leftover)
        removed.append(leftover)
    return removed


def _remove(leftover: Path) -> None:
    """Remove a file, a link or a whole folder (not the folder a link points to), whatever is left of it."""
    if leftover.is_dir() and not leftover.is_symlink():
        shutil.rmtree(leftover, ignore_errors=True)
    else:
        leftover.unlink(missing_ok=True)


def swap_symlink(link: Path, target: Path) -> None:
    """Point `link` at `target` atomically (a new symlink renamed over the old one)."""
    link.parent.mkdir(parents=True, exist_ok=True)
    tmp = link.with_name(f".{link.name}.{os.getpid()}{PARTIAL}")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(os.path.relpath(target, link.parent))
    os.replace(tmp, link)

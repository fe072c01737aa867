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
    <name>/tmp/                   scratch space of the linkage steps (spill files), emptied after each step

So `a.duckdb` and `b.duckdb` in one folder keep their models, decisions, views and logs apart, and
nothing is written outside the warehouse's folder except where a configured path says so.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

DEFAULT_WAREHOUSE = Path("warehouse/citizen_view.duckdb")
PARTIAL = ".partial"


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
        return self.warehouse.with_suffix("") if self.warehouse.suffix else self.warehouse.with_name(self.warehouse.name + ".d")

    @property
    def linkage_dir(self) -> Path:
        return self.root / "linkage"

    @property
    def model_file(self) -> Path:
        return self.linkage_dir / "splink_model.json"

    @property
    def overrides_file(self) -> Path:
        """Reviewers' decisions, kept outside the warehouse so they can be recorded while a run holds it."""
        return self.root / "review" / "link_overrides.jsonl"

    @property
    def serving_dir(self) -> Path:
        return self.root / "serving"

    @property
    def audit_log(self) -> Path:
        return self.root / "audit" / "access.jsonl"

    def anchor_copy(self, log: Path | None = None) -> Path:
        """The default second location of an audit log's anchors: a separate folder, one file per log (production
        points it off the host with --anchor-sink)."""
        log = Path(log or self.audit_log).expanduser().resolve()
        tag = hashlib.sha256(str(log).encode("utf-8")).hexdigest()[:12]
        return self.root / "audit-anchors" / f"{log.stem}-{tag}.anchors"

    @property
    def access_file(self) -> Path:
        return self.root / "access.yaml"

    @property
    def areas_dir(self) -> Path:
        """Official area lists refreshed by `citizen-view areas refresh` (the shipped lists are used otherwise)."""
        return self.root / "areas"

    @property
    def scratch_dir(self) -> Path:
        return self.root / "tmp"

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
        if leftover.is_dir() and not leftover.is_symlink():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)
        removed.append(leftover)
    return removed


def swap_symlink(link: Path, target: Path) -> None:
    """Point `link` at `target` atomically (a new symlink renamed over the old one)."""
    link.parent.mkdir(parents=True, exist_ok=True)
    tmp = link.with_name(f".{link.name}.{os.getpid()}{PARTIAL}")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(os.path.relpath(target, link.parent))
    os.replace(tmp, link)

"""`Linkage`: the one door to the linkage chain on one warehouse.

Collect source records, train, score, link, build the golden record (or all of it in order with
`run`, or only what new records touch with `update`), and explain a pair. The Dagster assets, the
benches and `citizen-view explain` call these methods; nobody else spells out the order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import citizen_view.linkage.explain as _explain
import citizen_view.linkage.golden as _golden
import citizen_view.linkage.online as _online
import citizen_view.linkage.records as _records
import citizen_view.linkage.steps as _steps
from citizen_view.contract import LinkageConfig
from citizen_view.warehouse import table_exists

if TYPE_CHECKING:
    from pathlib import Path

    import duckdb

    from citizen_view.contract import SourcesFile
    from citizen_view.layout import WarehouseLayout
    from citizen_view.linkage.scoring import TrainedModel


@dataclass
class LinkageRun:
    """What one full run of the chain reported, step by step."""

    trained: TrainedModel
    model_path: Path
    edges: _steps.EdgeReport
    link: _steps.LinkReport
    golden: _golden.GoldenReport


@dataclass
class Linkage:
    """The linkage chain over one warehouse connection, configured by one sources file (or a bare `LinkageConfig`).

    >>> Linkage(con, layout, sources).run(run_id="nightly")  # doctest: +SKIP
    """

    con: duckdb.DuckDBPyConnection
    layout: WarehouseLayout
    sources: SourcesFile | None = None
    linkage: LinkageConfig | None = None  # default: the sources file's `linkage`

    def __post_init__(self) -> None:
        if self.linkage is None:
            self.linkage = self.sources.linkage if self.sources is not None else LinkageConfig()

    def _sources(self, step: str) -> SourcesFile:
        if self.sources is None:
            raise ValueError(f"linkage step `{step}` needs the sources file (source names, review band, survivorship)")
        return self.sources

    def collect(self, *, keep_unchanged: bool = False) -> _records.SourceRecordsReport:
        """`source_records`: every loaded record of every declared source in one table (`keep_unchanged`, for an
        incremental run: only the sources whose canonical records changed are written again)."""
        sources = self._sources("collect")
        names = [s.name for s in sources.sources]
        if _online.take_in(self.con, self.layout.root, sources):  # records resolved online since: source `online`
            names.append(_online.ONLINE_SOURCE)
        return _records.collect_source_records(self.con, names, keep_unchanged=keep_unchanged)

    def train(self, *, seed: int = 1) -> tuple[TrainedModel, Path]:
        """Fit the model without ground truth and keep it (JSON file and `linkage_model`)."""
        return _steps.train_and_store(self.con, self.layout, seed=seed, linkage=self.linkage)

    def score(self) -> _steps.EdgeReport:
        """Score candidate pairs into `match_edges` and choose the link threshold."""
        return _steps.score_pairs(self.con, self.layout, linkage=self.linkage)

    def link(self, *, run_id: str, incremental: bool = False, truth_dir: Path | None = None) -> _steps.LinkReport:
        """Cluster records into citizens with stable IDs and queue what needs a reviewer."""
        kwargs = {}
        if self.sources is not None:
            kwargs = {
                "review_band": self.sources.review.band,
                "max_citizen_records": self.sources.quality.max_citizen_records,
            }
        return _steps.link_citizens(
            self.con,
            self.layout,
            run_id=run_id,
            linkage=self.linkage,
            incremental=incremental,
            truth_dir=truth_dir,
            **kwargs,
        )

    def golden(self, *, only_changed: bool = False) -> _golden.GoldenReport:
        """`citizen`: the golden record per citizen (only the citizens the last link touched, with `only_changed`)."""
        return _golden.build_golden(self.con, self._sources("golden"), only_changed=only_changed)

    def run(self, *, run_id: str, seed: int = 1, truth_dir: Path | None = None) -> LinkageRun:
        """The whole chain on the records already collected: train, score, link, golden."""
        trained, path = self.train(seed=seed)
        edges = self.score()
        link = self.link(run_id=run_id, truth_dir=truth_dir)
        return LinkageRun(trained, path, edges, link, self.golden())

    def update(self, *, run_id: str, truth_dir: Path | None = None) -> tuple[_steps.LinkReport, _golden.GoldenReport]:
        """Link only records not linked yet, with the saved model, and rebuild only the citizens they touch."""
        link = self.link(run_id=run_id, incremental=True, truth_dir=truth_dir)
        relinked = ("_relinked", "_scope_rows") if link.incremental else None  # the link's scope, on this connection
        return link, _golden.build_golden(self.con, self._sources("golden"), only_changed=True, relinked=relinked)

    def prepare_update(self) -> list[str]:
        """Write the lookup tables `update` reads where a warehouse linked by an older release lacks them (an update
        would write them itself, once); returns the tables written."""
        written = _steps.prepare_update(self.con, self.layout)
        if not table_exists(self.con, "main", "citizen"):
            return written
        unrecorded = not all(table_exists(self.con, "main", t) for t in (_golden.RANKING, _golden.STAND_INS_USED))
        if unrecorded or self.sources is not None:  # without the sources file, only an unrecorded ranking needs it
            sources = self._sources("golden")
            if _golden.ranked_otherwise(self.con, _golden.rank_rows(sources)):
                # `citizen` was built by a release that did not record its ranking or its stand-ins (or with another
                # ranking): chosen anew here, once, as the update would
                _golden.build_golden(self.con, sources)
                written.append("citizen")
        return written

    def take_back(self, keys: str) -> None:
        """Undo the linkage of the records in the table `keys` (record_key) as if they had not arrived yet (their
        records stay; a bench or a test holds late records back this way)."""
        _steps.take_back(self.con, keys)

    def explain(self, left: str, right: str) -> _explain.Explanation:
        """Why two records (keys `source:source_record_id`) were, or were not, linked."""
        return _explain.explain_pair(self.con, left, right, layout=self.layout, linkage=self.linkage)

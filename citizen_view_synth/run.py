"""`generate`: stream a synthetic population chunk by chunk into five messy extracts plus ground truth."""

from __future__ import annotations

from collections.abc import Callable

import time
import warnings
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from citizen_view_synth.benefits import BenefitsExtract
from citizen_view_synth.extract import Extract, RunContext
from citizen_view_synth.licences import LicencesExtract
from citizen_view_synth.names import name_book
from citizen_view_synth.national_id import BSN_CAPACITY
from citizen_view_synth.noise import NoiseConfig
from citizen_view_synth.people import PopulationBuilder
from citizen_view_synth.permits import PermitsExtract
from citizen_view_synth.places import gazetteer
from citizen_view_synth.register import PopulationRegister
from citizen_view_synth.sources_yaml import write_sources_yaml
from citizen_view_synth.tax import TaxExtract
from citizen_view_synth.truth import TruthWriter

EXTRACTS: tuple[type[Extract], ...] = (PopulationRegister, TaxExtract, BenefitsExtract, PermitsExtract, LicencesExtract)


@dataclass
class GenerateReport:
    """What one `generate` run produced."""

    persons: int
    records: dict[str, int] = field(default_factory=dict)
    """Rows written per source (deliberately duplicated rows included)."""
    files: list[Path] = field(default_factory=list)
    seconds: float = 0.0
    bad_rows: dict[str, int] = field(default_factory=dict)
    """Malformed or duplicated-id rows per source."""


def generate(
    out_dir: Path,
    *,
    persons: int,
    seed: int,
    country: str = "NL",
    noise: NoiseConfig | None = None,
    bad_row_rate: float = 0.002,
    chunk_size: int = 20_000,
    progress: Callable[[int, int], None] | None = None,
) -> GenerateReport:
    """Write population, tax, benefits, permits and licences extracts, truth/ and sources.yaml into `out_dir`.

    Deterministic for (persons, seed, country, noise, bad_row_rate, chunk_size): the same arguments give
    byte-identical files. Persons are generated `chunk_size` at a time, each chunk from its own random stream,
    and appended to every file, so memory stays bounded however large `persons` is.
    """
    if country not in ("NL", "NO"):
        raise ValueError(f"country must be 'NL' or 'NO', got {country!r}")
    if persons < 1:
        raise ValueError(f"persons must be at least 1, got {persons}")
    if country == "NL" and persons > BSN_CAPACITY:
        raise ValueError(f"at most {BSN_CAPACITY:,} Dutch persons can get distinct BSNs, asked for {persons:,}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
    if not 0.0 <= bad_row_rate <= 1.0:
        raise ValueError(f"bad_row_rate must be between 0 and 1, got {bad_row_rate}")
    started = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    noise = noise or NoiseConfig()
    ctx = RunContext(out_dir=out_dir, seed=seed, country=country, noise=noise, bad_row_rate=bad_row_rate,
                     names=name_book(country), places=gazetteer(country))
    builder = PopulationBuilder(country=country, seed=seed, noise=noise)
    with ExitStack() as stack:
        truth = TruthWriter(out_dir / "truth")
        stack.callback(truth.close)
        extracts = []
        for cls in EXTRACTS:
            extract = cls(ctx)
            stack.callback(extract.close)
            extracts.append(extract)
        for chunk, first in enumerate(range(0, persons, chunk_size)):
            people = builder.chunk(index=chunk, count=min(chunk_size, persons - first), first=first)
            for extract in extracts:
                truth.write(extract.name, extract.write_chunk(people, chunk))
            del people
            if progress is not None:
                progress(min(first + chunk_size, persons), persons)
    for extract in extracts:
        dropped = getattr(extract, "dropped", 0)
        if dropped:
            warnings.warn(f"{extract.name}: {dropped} rows did not fit in one xlsx sheet and were left out",
                          stacklevel=2)
    sources_yaml = out_dir / "sources.yaml"
    write_sources_yaml(sources_yaml, country=country, persons=persons)
    return GenerateReport(
        persons=persons,
        records={e.name: e.records for e in extracts},
        files=[*(e.path for e in extracts), truth.path, truth.readme, sources_yaml],
        seconds=round(time.perf_counter() - started, 3),
        bad_rows={e.name: e.bad_rows for e in extracts},
    )

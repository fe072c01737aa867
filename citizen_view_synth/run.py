"""`generate`: stream a synthetic population chunk by chunk into five messy extracts plus ground truth."""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from contextlib import ExitStack, contextmanager
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

PROFILES: dict[str, str] = {
    "default": "five Dutch or Norwegian systems (population register, tax, benefits, permits, licences)",
    "dense": "one British-style register with 5-25 entries a person, titles, placeholders, impossible dates (GB)",
    "multi-agency": "seven US agencies (census, SSA, W-2, 1040, WIC, two small surveys), most without SSN (US)",
}
PROFILE_COUNTRY = {"dense": "GB", "multi-agency": "US"}

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
    country: str | None = None,
    profile: str = "default",
    noise: NoiseConfig | None = None,
    bad_row_rate: float = 0.002,
    chunk_size: int = 20_000,
    progress: Callable[[int, int], None] | None = None,
) -> GenerateReport:
    """Write population, tax, benefits, permits and licences extracts, truth/ and sources.yaml into `out_dir`.

    `profile` "dense" or "multi-agency" writes that profile instead (see PROFILES; its country is fixed,
    its noise built in, so `noise`, `bad_row_rate` and `chunk_size` do not apply).

    Deterministic for (persons, seed, country, noise, bad_row_rate, chunk_size): the same arguments give
    byte-identical files. Persons are generated `chunk_size` at a time, each chunk from its own random stream,
    and appended to every file, so memory stays bounded however large `persons` is.
    """
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {', '.join(PROFILES)}, got {profile!r}")
    if profile != "default":
        return _generate_profile(
            Path(out_dir), profile=profile, persons=persons, seed=seed, country=country, noise=noise
        )
    country = country or "NL"
    _check_arguments(country=country, persons=persons, chunk_size=chunk_size, bad_row_rate=bad_row_rate)
    started = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    noise = noise or NoiseConfig()
    ctx = RunContext(
        out_dir=out_dir,
        seed=seed,
        country=country,
        noise=noise,
        bad_row_rate=bad_row_rate,
        names=name_book(country),
        places=gazetteer(country),
    )
    builder = PopulationBuilder(country=country, seed=seed, noise=noise)
    with ExitStack() as stack:
        truth = TruthWriter(out_dir / "truth")
        stack.callback(truth.close)
        extracts = [stack.enter_context(_closing(cls(ctx))) for cls in EXTRACTS]
        _write_chunks(builder, extracts, truth, persons=persons, chunk_size=chunk_size, progress=progress)
    _warn_dropped(extracts)
    sources_yaml = out_dir / "sources.yaml"
    write_sources_yaml(sources_yaml, country=country, persons=persons)
    return GenerateReport(
        persons=persons,
        records={e.name: e.records for e in extracts},
        files=[*(e.path for e in extracts), truth.path, truth.readme, sources_yaml],
        seconds=round(time.perf_counter() - started, 3),
        bad_rows={e.name: e.bad_rows for e in extracts},
    )


def _check_arguments(*, country: str, persons: int, chunk_size: int, bad_row_rate: float) -> None:
    """Refuse arguments the default profile cannot honour, saying which and why."""
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


@contextmanager
def _closing(extract: Extract):
    """An extract that is closed when the run ends, however it ends."""
    try:
        yield extract
    finally:
        extract.close()


def _write_chunks(builder, extracts, truth, *, persons: int, chunk_size: int, progress) -> None:
    """Persons `chunk_size` at a time, each chunk appended to every extract and its truth."""
    for chunk, first in enumerate(range(0, persons, chunk_size)):
        people = builder.chunk(index=chunk, count=min(chunk_size, persons - first), first=first)
        for extract in extracts:
            truth.write(extract.name, extract.write_chunk(people, chunk))
        del people
        if progress is not None:
            progress(min(first + chunk_size, persons), persons)


def _warn_dropped(extracts) -> None:
    """Say which extracts left rows out (an xlsx sheet holds about a million rows)."""
    for extract in extracts:
        dropped = getattr(extract, "dropped", 0)
        if dropped:
            warnings.warn(
                f"{extract.name}: {dropped} rows did not fit in one xlsx sheet and were left out", stacklevel=3
            )


def _generate_profile(
    out_dir: Path, *, profile: str, persons: int, seed: int, country: str | None, noise: NoiseConfig | None
) -> GenerateReport:
    """The dense or multi-agency profile (small, written in one pass)."""
    from citizen_view_synth.agencies import generate_agencies
    from citizen_view_synth.dense import generate_dense

    fixed = PROFILE_COUNTRY[profile]
    if country not in (None, fixed):
        raise ValueError(f"the {profile} profile is {fixed} data; country {country!r} does not apply")
    if noise is not None and noise != NoiseConfig():
        raise ValueError(f"the {profile} profile has its own noise; noise settings apply to the default profile only")
    if persons < 1:
        raise ValueError(f"persons must be at least 1, got {persons}")
    started = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    write = generate_dense if profile == "dense" else generate_agencies
    result = write(out_dir, persons=persons, seed=seed)
    return GenerateReport(
        persons=persons,
        records=result["records"],
        files=result["files"],
        seconds=round(time.perf_counter() - started, 3),
    )

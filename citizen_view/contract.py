"""The `sources.yaml` contract: which legacy extracts exist and how their columns map to canonical fields.

Structural mistakes (no `sources` list, a bad or duplicate name, a missing path) stop the whole file
with one message. Mistakes that concern one source only (an unknown format, an unknown canonical
field, bad format options) are reported by `SourceConfig.problems()` and stop that source alone at
ingest, so one broken feed never blocks the others.
"""

from __future__ import annotations

import datetime as dt
import importlib
import os
import re
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


class CanonicalField(StrEnum):
    """A field every source can map a column to; the one list the contract, access rules and profile share."""

    GIVEN_NAME = "given_name"
    MIDDLE_NAME = "middle_name"
    FAMILY_NAME = "family_name"
    FULL_NAME = "full_name"
    DATE_OF_BIRTH = "date_of_birth"
    DATE_OF_DEATH = "date_of_death"
    SEX = "sex"
    NATIONAL_ID = "national_id"
    STREET = "street"
    HOUSE_NUMBER = "house_number"
    UNIT = "unit"
    POSTCODE = "postcode"
    CITY = "city"
    AREA_CODE = "area_code"  # the source's own official area code (municipality), where it holds one
    BIRTH_PLACE = "birth_place"
    EMAIL = "email"
    PHONE = "phone"


class Format(StrEnum):
    """Extract formats a source may declare."""

    CSV = "csv"
    FIXED_WIDTH = "fixed_width"
    JSONL = "jsonl"
    XLSX = "xlsx"
    PARQUET = "parquet"


class LinkType(StrEnum):
    """Which pairs linkage compares: within sources, across sources, or both (Splink's link types)."""

    DEDUPE_ONLY = "dedupe_only"
    """Only pairs of records of one source: each source deduplicated on its own."""
    LINK_ONLY = "link_only"
    """Only pairs across sources; every source is free of duplicates, so a citizen holds at most one record of each."""
    LINK_AND_DEDUPE = "link_and_dedupe"
    """Every pair: duplicates within a source and links across sources (the default)."""


CANONICAL_FIELDS: tuple[str, ...] = tuple(CanonicalField)
# A source column holding street and house number together ("Merelweg 40A", "123 Main St"): mapped instead of
# `street` and `house_number`, and split into them at ingest (standardise.split_street_and_number).
STREET_AND_NUMBER = "street_and_number"
DATE_FIELDS: tuple[str, ...] = (CanonicalField.DATE_OF_BIRTH, CanonicalField.DATE_OF_DEATH)
FORMATS: tuple[str, ...] = tuple(Format)
# The identifier scheme a bare `national_id: column` takes from the sources file's `country`.
DEFAULT_ID_SCHEMES: dict[str, str] = {"NL": "nl.bsn", "NO": "no.fodselsnummer"}
OPAQUE_ID = "none"

# Options each format understands, with their defaults.
FORMAT_OPTIONS: dict[str, dict[str, Any]] = {
    Format.CSV: {
        "delimiter": ",",
        "encoding": "utf-8",
        "quotechar": '"',
        "header": True,
        "max_record_lines": 20,
        "max_field_bytes": 1 << 20,
    },
    Format.FIXED_WIDTH: {
        "encoding": "utf-8",
        "widths": None,
        "header": False,
        "width_unit": "characters",  # or "bytes": widths count the encoded bytes (a C or COBOL writer's padding)
        "trimmed_lines": False,  # a line shorter than the record length lost its trailing blanks in a transfer
    },
    Format.JSONL: {"encoding": "utf-8", "max_depth": 64, "max_field_bytes": 1 << 20},
    Format.XLSX: {"sheet": None},
    Format.PARQUET: {},
}
ENCODINGS = ("utf-8", "latin-1", "iso-8859-1", "cp1252", "utf-16")
SOURCE_NAME = re.compile(r"^[a-z0-9_]+$")


class ConfigError(ValueError):
    """The sources file as a whole cannot be used."""


class SourceError(RuntimeError):
    """One source cannot be ingested; the message names the source, the file and the column."""


class FieldMapping(BaseModel):
    """Where a canonical field comes from: a source column; for dates its strptime format, for national IDs its scheme.

    `scheme` names how the identifier is checked: `none` (an opaque identifier: compared exactly and
    near-exactly, never validated) or a python-stdnum module (`nl.bsn`, `no.fodselsnummer`, `us.ssn`,
    `dk.cpr`, `se.personnummer`, `be.nn`, ...). Without it, the sources file's `country` decides.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    column: str
    format: str | None = None
    scheme: str | None = None


class CaseState(StrEnum):
    """Where a case or application stands, whatever words its agency uses."""

    OPEN = "open"
    PENDING = "pending"
    CLOSED = "closed"


class CaseMapping(BaseModel):
    """Which columns of a source describe cases/applications (a permit, a benefit, a licence) for the profile.

    Column names refer to the source's unmapped columns; with `list`, to keys of the objects in that
    JSON-list column (several cases per record, e.g. benefits). `kind` is what the caseworker sees.
    `status_map` says which of the agency's status words mean open, pending or closed; without a status
    column, a case whose end date has passed is closed and any other is open. `date_format` reads the
    start and end dates (default: the usual ISO, yyyy/mm/dd, dd-mm-yyyy, dd.mm.yyyy and yyyymmdd forms).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: str
    list: str | None = None
    type: str | None = None
    status: str | None = None
    start: str | None = None
    end: str | None = None
    reference: str | None = None
    status_map: dict[CaseState, tuple[str, ...]] = Field(default_factory=dict)  # (`list` is a field name here)
    date_format: str | None = None


class AttributeMapping(BaseModel):
    """How the profile shows one of a source's other columns: a label, and for a date its strptime format."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    label: str
    format: str | None = None


class SourceConfig(BaseModel):
    """One legacy system's extract as declared in `sources.yaml`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    path: str
    format: str
    options: dict[str, Any] = Field(default_factory=dict)
    record_id: str | None = None
    fields: dict[str, FieldMapping] = Field(default_factory=dict)
    description: str | None = None
    label: str | None = Field(default=None, max_length=80)  # how pages name the source ("Population register")
    landing: str | None = None
    required: list[str] = Field(default_factory=list)
    cases: CaseMapping | None = None
    events: dict[str, FieldMapping] = Field(default_factory=dict)
    attributes: dict[str, AttributeMapping] = Field(default_factory=dict)
    # An extract with no records is normal for this source (else it is held back at ingest).
    allow_empty: bool = False
    # A held-back extract of this source blocks the open-data bundle (else publication goes on with its last
    # accepted extract).
    required_for_publication: bool = False
    encoded: bool = False  # the extract holds only encodings made by `citizen-view encode` (see citizen_view/encoding)

    @field_validator("name")
    @classmethod
    def _name_is_identifier(cls, v: str) -> str:
        if not SOURCE_NAME.match(v):
            raise ValueError(f"source name {v!r} must match [a-z0-9_]+")
        return v

    @field_validator("fields", "events", mode="before")
    @classmethod
    def _column_shorthand(cls, v: Any) -> Any:
        if isinstance(v, dict):
            return {k: ({"column": m} if isinstance(m, str) else m) for k, m in v.items()}
        return v

    @field_validator("attributes", mode="before")
    @classmethod
    def _label_shorthand(cls, v: Any) -> Any:
        if isinstance(v, dict):
            return {k: ({"label": m} if isinstance(m, str) else m) for k, m in v.items()}
        return v

    def option(self, key: str) -> Any:
        """The value of a format option, or its default."""
        defaults = FORMAT_OPTIONS.get(self.format, {})
        return self.options.get(key, defaults.get(key))

    def problems(self) -> list[str]:
        """Everything wrong with this source's declaration that stops it (not the others) at ingest."""
        out: list[str] = []
        if self.format not in FORMATS:
            out.append(f"unknown format {self.format!r} (expected one of {', '.join(FORMATS)})")
            return out
        unknown_opts = sorted(set(self.options) - set(FORMAT_OPTIONS[self.format]))
        if unknown_opts:
            out.append(f"unknown option(s) {unknown_opts} for format {self.format!r}")
        enc = self.options.get("encoding")
        if enc is not None and str(enc).lower() not in ENCODINGS:
            out.append(f"unsupported encoding {enc!r} (expected one of {', '.join(ENCODINGS)})")
        if self.format == "fixed_width":
            widths = self.options.get("widths")
            if not isinstance(widths, dict) or not widths:
                out.append("fixed_width needs options.widths: an ordered mapping of column name -> width > 0")
            else:
                for col, w in widths.items():
                    if type(w) is not int or w <= 0:  # a YAML `true` is an int to Python: not a width
                        out.append(f"options.widths.{col}: {w!r} is not a width (a whole number of characters > 0)")
            unit = self.option("width_unit")
            if unit not in ("characters", "bytes"):
                out.append(f"options.width_unit: {unit!r} is not 'characters' or 'bytes'")
            elif unit == "bytes" and str(self.option("encoding")).lower() == "utf-16":
                out.append("options.width_unit: bytes needs an encoding whose blank is one byte, not utf-16")
            if type(self.option("trimmed_lines")) is not bool:
                out.append(f"options.trimmed_lines: {self.option('trimmed_lines')!r} is not true or false")
        for limit in ("max_depth", "max_field_bytes"):
            if limit in FORMAT_OPTIONS[self.format] and not (
                type(self.option(limit)) is int and self.option(limit) >= 1
            ):
                out.append(f"options.{limit}: {self.option(limit)!r} is not a whole number >= 1")
        if self.format == "csv" and len(str(self.option("delimiter"))) != 1:
            out.append(f"csv delimiter must be one character, got {self.option('delimiter')!r}")
        unmapped_required = [f for f in self.required if f not in self.fields]
        if unmapped_required:
            out.append(f"required field(s) {unmapped_required} are not mapped in fields")
        if self.format == Format.CSV and not (
            isinstance(self.option("max_record_lines"), int) and self.option("max_record_lines") >= 1
        ):
            out.append("csv max_record_lines must be a whole number of lines, at least 1")
        split_too = sorted({CanonicalField.STREET, CanonicalField.HOUSE_NUMBER} & set(self.fields))
        if STREET_AND_NUMBER in self.fields and split_too:
            out.append(
                f"field {STREET_AND_NUMBER!r} is split into street and house_number: map it or {[str(f) for f in split_too]}, not both"
            )
        for canonical, mapping in self.fields.items():
            if canonical not in CANONICAL_FIELDS and canonical != STREET_AND_NUMBER:
                out.append(
                    f"field {canonical!r} is not a canonical field (expected one of {', '.join(CANONICAL_FIELDS)})"
                )
            if mapping.format is not None and canonical not in DATE_FIELDS:
                out.append(f"field {canonical!r}: a format is only allowed for dates")
            if mapping.scheme is not None:
                if canonical != CanonicalField.NATIONAL_ID:
                    out.append(f"field {canonical!r}: a scheme is only allowed for national_id")
                elif (problem := scheme_problem(mapping.scheme)) is not None:
                    out.append(f"field national_id: {problem}")
        if self.encoded:
            from citizen_view.encoding.schema import SHAREABLE_FIELDS

            plain = sorted(f for f in self.fields if f not in SHAREABLE_FIELDS)
            if plain:
                out.append(
                    f"an encoded source may map only {', '.join(SHAREABLE_FIELDS)} in plain, not {plain}: "
                    "identifiers reach the linkage unit as encodings only"
                )
        return out

    def id_scheme(self, country: str | None) -> str:
        """How this source's national IDs are checked: the declared scheme, else the country's, else opaque."""
        mapping = self.fields.get(CanonicalField.NATIONAL_ID)
        if mapping is not None and mapping.scheme is not None:
            return mapping.scheme
        return DEFAULT_ID_SCHEMES.get(country or "", OPAQUE_ID)


def scheme_problem(scheme: str) -> str | None:
    """Why `scheme` is not an identifier scheme (None when it is: `none` or a python-stdnum module with is_valid)."""
    if scheme == OPAQUE_ID:
        return None
    if not re.fullmatch(r"[a-z]{2,3}(\.[a-z0-9_]+)+", scheme):
        return f"scheme {scheme!r} is neither 'none' nor a python-stdnum module name such as 'nl.bsn' or 'us.ssn'"
    try:
        module = importlib.import_module(f"stdnum.{scheme}")
    except ImportError:
        return f"scheme {scheme!r} is not a python-stdnum module (see https://arthurdejong.org/python-stdnum/doc/)"
    if not callable(getattr(module, "is_valid", None)):
        return f"scheme {scheme!r}: python-stdnum's module has no is_valid()"
    return None


class SurvivorshipConfig(BaseModel):
    """How the golden record picks each attribute: most trusted source first, then newest, then most frequent."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    ranking: list[str] = Field(default_factory=list)
    per_field: dict[str, list[str]] = Field(default_factory=dict)


class QualityConfig(BaseModel):
    """Bounds the blocking quality gates hold each run to, and the plausibility rules of ingest (see quality/rules.py)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    earliest_date_of_birth: dt.date = dt.date(1880, 1, 1)
    latest_date_of_birth: dt.date | None = None  # None: the day of the run
    max_field_issue_share: float = Field(0.05, ge=0, le=1)
    max_rejected_share: float = Field(0.05, ge=0, le=1)
    max_missing_required_share: float = Field(0.01, ge=0, le=1)
    min_national_id_valid_share: float = Field(0.90, ge=0, le=1)
    min_date_of_birth_valid_share: float = Field(0.98, ge=0, le=1)  # readable in the declared format
    max_date_of_birth_typo_share: float = Field(0.08, ge=0, le=1)  # impossible or implausible: keying typos
    max_row_count_drift: float = Field(0.5, ge=0)
    max_unmatched_area_share: float = Field(0.01, ge=0, le=1)
    min_published_person_share: float = Field(0.9, ge=0, le=1)
    max_citizen_records: int | None = Field(None, ge=1)  # optional cap; the bound is learnt from the data
    min_cross_source_share: float = Field(0.2, ge=0, le=1)
    max_cross_source_share: float = Field(1.0, ge=0, le=1)
    max_weak_link_share: float = Field(0.02, ge=0, le=1)


class Backend(StrEnum):
    """Where Splink trains and scores: the embedded DuckDB, or Spark (local or a cluster)."""

    DUCKDB = "duckdb"
    SPARK = "spark"


BACKEND_ENV = "CITIZEN_VIEW_LINKAGE_BACKEND"


class SparkConfig(BaseModel):
    """The Spark session linkage runs on: `master` (local[*], spark://host:7077, yarn, ...) and any Spark settings.

    `checkpoint_dir`: where Splink writes its intermediate tables (a Hadoop path: hdfs://..., s3a://..., or a folder
    mounted at the same path on every host); every executor must reach it, so a cluster of several hosts needs
    one. None: the warehouse's scratch folder (right for local mode and a cluster on one host).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    master: str = "local[*]"
    conf: dict[str, str] = Field(default_factory=dict)
    checkpoint_dir: str | None = Field(None, min_length=1)

    @field_validator("conf", mode="before")
    @classmethod
    def _text_values(cls, v: Any) -> Any:
        return (
            {str(k): str(x).lower() if isinstance(x, bool) else str(x) for k, x in v.items()}
            if isinstance(v, dict)
            else v
        )


class LinkageConfig(BaseModel):
    """How records are compared: which pairs (link type), which fields are populated enough, and on what backend."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    link_type: LinkType = LinkType.LINK_AND_DEDUPE
    min_field_share: float = Field(0.05, gt=0, le=1)
    backend: Backend = Backend.DUCKDB
    spark: SparkConfig = Field(default_factory=SparkConfig)

    def effective_backend(self) -> Backend:
        """The configured backend, unless $CITIZEN_VIEW_LINKAGE_BACKEND says otherwise (for the Dagster UI)."""
        value = os.environ.get(BACKEND_ENV, "").strip().lower()
        if not value:
            return self.backend
        try:
            return Backend(value)
        except ValueError:
            raise ConfigError(f"{BACKEND_ENV}={value!r}: expected duckdb or spark") from None


class ReviewConfig(BaseModel):
    """Clerical review: the uncertainty band (match probabilities; default: 1.5 weight either side of the threshold)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    band: tuple[float, float] | None = None

    @model_validator(mode="after")
    def _ordered(self) -> ReviewConfig:
        if self.band is not None and not (0 < self.band[0] < self.band[1] < 1):
            raise ValueError("review.band must be two probabilities, low < high, between 0 and 1")
        return self


class DisclosureConfig(BaseModel):
    """Disclosure control of every published count (defaults: suppress below 10, no rounding)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    min_cell: int = Field(10, ge=1)
    round_to: int | None = Field(None, ge=2)
    suppress_zeros: bool = False


class ContactPoint(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = "Citizen View open data desk"
    email: str = "opendata@example.org"


class AreasConfig(BaseModel):
    """The official areas of a country without a shipped list: a CSV of code,name,region_code,region_name, and
    optionally alias,code and postcode,code CSVs; `level` and `region_level` name the two levels."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    codes: Path
    aliases: Path | None = None
    postcodes: Path | None = None
    country_name: str = ""
    level: str = "municipality"
    region_level: str = "region"


class PublicationConfig(BaseModel):
    """Who publishes the open-data bundle and under which terms (DCAT-AP-NL/DONL and DCAT-AP-NO fields)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    title: str = "Citizen View: population and public-service statistics"
    description: str = (
        "De-identified aggregates of the unified citizen view: population by area, age band and sex; "
        "uptake of public services by area; how many agencies know each citizen; linkage quality."
    )
    publisher: str = "Example Municipality (synthetic data)"
    publisher_uri: str = "https://example.org/organisation"
    contact_point: ContactPoint = Field(default_factory=ContactPoint)
    # an entry of the EU licence list: DCAT-AP-NO accepts only those, DCAT-AP-NL accepts them too
    licence: str = "http://publications.europa.eu/resource/authority/licence/CC0"
    theme: str = "http://publications.europa.eu/resource/authority/data-theme/SOCI"
    # the language of the title, description and keywords (English by default, like text_language)
    language: str = "http://publications.europa.eu/resource/authority/language/ENG"
    # DCAT-AP-NL 3.0 makes dct:accessRights mandatory (EU access-right list: PUBLIC, RESTRICTED, NON_PUBLIC)
    access_rights: str = "http://publications.europa.eu/resource/authority/access-right/PUBLIC"
    status: str = "http://publications.europa.eu/resource/authority/dataset-status/COMPLETED"
    text_language: str = "en"  # the language tag of title, description and keywords
    keywords: list[str] = Field(default_factory=lambda: ["population", "public services", "official statistics"])
    landing_page: str | None = None  # default: access_url
    documentation: str | None = None  # default: the bundle's datapackage.json
    spatial: str | None = None  # default: the EU country IRI of `country` (NL, NO)
    # IANA media types; DCAT-AP-NO 3 (draft shapes) expects https://www.w3.org/ns/iana/media-types/
    media_type_base: str = "https://www.iana.org/assignments/media-types/"
    access_url: str = "https://data.example.org/citizen-view"  # the base of download URLs in the DCAT catalogue
    # the catalogue's spdx:checksum algorithm: DCAT-AP 3 (and -NL 3.0) take sha256; DCAT-AP-NO 2.0 admits only sha1
    catalog_checksum: Literal["sha256", "sha1"] = "sha256"
    identifier_prefix: str = "https://data.example.org/id/dataset/citizen-view"
    services: list[str] | None = None
    reference_date: dt.date | None = None
    exports_dir: str = "exports"
    published_dir: str = "published"
    areas: AreasConfig | None = None


class ServingConfig(BaseModel):
    """How the caseworker pages speak: their language (field labels, phrases, dates typed in no format)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    language: Literal["en", "nl", "no"] = "en"


class SourcesFile(BaseModel):
    """The whole `sources.yaml`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    country: str | None = None
    sources: list[SourceConfig]
    linkage: LinkageConfig = Field(default_factory=LinkageConfig)
    survivorship: SurvivorshipConfig = Field(default_factory=SurvivorshipConfig)
    quality: QualityConfig = Field(default_factory=QualityConfig)
    review: ReviewConfig = Field(default_factory=ReviewConfig)
    disclosure: DisclosureConfig = Field(default_factory=DisclosureConfig)
    publication: PublicationConfig = Field(default_factory=PublicationConfig)
    serving: ServingConfig = Field(default_factory=ServingConfig)
    base_dir: Path = Path(".")

    @field_validator("country", mode="before")
    @classmethod
    def _norway_is_not_false(cls, v: Any) -> Any:
        # YAML 1.1 reads an unquoted `NO` as boolean false; a sources file for Norway says exactly that.
        if v is False:
            return "NO"
        if v is None:
            return None
        if not isinstance(v, str) or not re.fullmatch(r"[A-Za-z]{2}", v):
            raise ValueError(f"country must be a two-letter ISO 3166 code such as NL, NO, DE or US, not {v!r}")
        import phonenumbers

        code = v.upper()
        if code not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"country {v!r} is not an ISO 3166 country code")
        return code

    @model_validator(mode="after")
    def _unique_names(self) -> SourcesFile:
        seen: set[str] = set()
        for s in self.sources:
            if s.name in seen:
                raise ValueError(f"source name {s.name!r} is declared twice")
            seen.add(s.name)
        names = {s.name for s in self.sources}
        unknown = [n for n in self.survivorship.ranking if n not in names]
        if unknown:
            raise ValueError(f"survivorship.ranking names unknown source(s) {unknown}")
        unknown = [n for n in (self.publication.services or []) if n not in names]
        if unknown:
            raise ValueError(f"publication.services names unknown source(s) {unknown}")
        return self

    def source(self, name: str) -> SourceConfig:
        for s in self.sources:
            if s.name == name:
                return s
        raise KeyError(f"no source named {name!r} in sources file (have: {[s.name for s in self.sources]})")

    def files_of(self, source: SourceConfig) -> list[Path]:
        """The extract files a source's glob matches, sorted; empty when none exist."""
        pattern = Path(source.path)
        if pattern.is_absolute():
            return sorted(Path(p) for p in _glob_abs(pattern))
        return sorted(self.base_dir.glob(source.path))

    def service_sources(self) -> list[str]:
        """Sources whose records mean a citizen uses a service (default: all but the most trusted register)."""
        if self.publication.services is not None:
            return list(self.publication.services)
        register = self.source_rank()[0] if self.sources else None
        return [s.name for s in self.sources if s.name != register]

    def source_rank(self) -> list[str]:
        """Sources from most to least trusted: the configured ranking, then the rest in file order."""
        ranked = list(self.survivorship.ranking)
        return ranked + [s.name for s in self.sources if s.name not in ranked]


def _glob_abs(pattern: Path) -> list[Path]:
    anchor = Path(pattern.anchor)
    return list(anchor.glob(str(pattern.relative_to(anchor))))


# A sources file is a few kilobytes; these bounds refuse a huge document, or an alias bomb (a few lines whose
# anchors and aliases expand to billions of values), before anything is expanded.
MAX_SOURCES_BYTES = 1 << 20
MAX_YAML_NODES = 100_000
_MERGE_TAG = "tag:yaml.org,2002:merge"


def _expanded_size(node: yaml.Node, memo: dict[int, int]) -> int:
    """How many values the YAML node stands for once every alias is expanded (shared nodes counted each time)."""
    key = id(node)
    if key in memo:
        return memo[key]
    memo[key] = 1  # a recursive alias counts once instead of looping
    size = 1
    if isinstance(node, yaml.SequenceNode):
        size += sum(_expanded_size(child, memo) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        size += sum(_expanded_size(k, memo) + _expanded_size(v, memo) for k, v in node.value)
    memo[key] = min(size, MAX_YAML_NODES + 1)
    return memo[key]


def _repeated_key(root: yaml.Node) -> str | None:
    """Where one mapping gives the same key twice, said for a person; None when none does. PyYAML keeps the last of
    the two without a word, so a second `national_id:` under `fields:` or a role written twice in an access file
    would silently replace the first. Keys are compared as written with their resolved type (`1` and `"1"` differ);
    a merge (`<<: *defaults`) is YAML's own way of overriding and is not a repeat."""
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
        elif isinstance(node, yaml.MappingNode):
            first: dict[tuple[str, str], yaml.Node] = {}
            for key, value in node.value:
                stack.extend((key, value))
                if key.tag == _MERGE_TAG or not isinstance(key, yaml.ScalarNode):
                    continue
                earlier = first.setdefault((key.tag, key.value), key)
                if earlier is not key:
                    return (
                        f"line {key.start_mark.line + 1}: the key {key.value!r} is given twice in one mapping (first "
                        f"on line {earlier.start_mark.line + 1}); YAML would keep only the second: remove or rename one"
                    )
    return None


def safe_yaml(text: str) -> Any:
    """YAML's safe loading for a configuration file: refuses (ConfigError) a document that expands to more than
    MAX_YAML_NODES values, and a mapping that gives one key twice."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_size(node, {}) > MAX_YAML_NODES:
            raise ConfigError(
                f"the YAML expands to more than {MAX_YAML_NODES:,} values (anchors and aliases?): refused"
            )
        repeated = _repeated_key(node)
        if repeated is not None:
            raise ConfigError(repeated)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def load_sources(path: str | Path) -> SourcesFile:
    """Read and validate a sources file; relative source paths resolve against the file's folder."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"sources file not found: {path}")
    size = path.stat().st_size
    if size > MAX_SOURCES_BYTES:
        raise ConfigError(f"{path}: {size:,} bytes is too big for a sources file (at most {MAX_SOURCES_BYTES:,})")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start} cannot be decoded): save it as UTF-8"
        ) from None
    try:
        data = safe_yaml(text)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("sources"), list):
        raise ConfigError(f"{path}: expected a mapping with a 'sources:' list")
    try:
        return SourcesFile.model_validate({**data, "base_dir": path.resolve().parent})
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = _describe_loc(data, err["loc"])
            lines.append(f"  {loc}: {err['msg']}")
        raise ConfigError(f"{path}: invalid sources file\n" + "\n".join(lines)) from None


def _describe_loc(data: dict, loc: tuple) -> str:
    """`sources[1] (tax).fields.date_of_birth` rather than pydantic's bare tuple."""
    parts: list[str] = []
    node: Any = data
    for item in loc:
        if isinstance(item, int) and isinstance(node, list):
            name = node[item].get("name") if item < len(node) and isinstance(node[item], dict) else None
            parts[-1] = f"{parts[-1]}[{item}]" + (f" ({name})" if name else "")
            node = node[item] if item < len(node) else None
        else:
            parts.append(str(item))
            node = node.get(item) if isinstance(node, dict) else None
    return ".".join(parts) or "(top)"


def dump_sources(sources: SourcesFile | dict, path: str | Path) -> None:
    """Write a sources file in the contract's shape (used by the generator)."""
    if isinstance(sources, SourcesFile):
        data = sources.model_dump(exclude={"base_dir"}, exclude_none=True)
    else:
        data = sources
    Path(path).write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")

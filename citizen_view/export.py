"""The open-data export bundle and its publication.

A bundle is a folder `exports/<yyyymmdd-hhmmss>-<run>/` holding each table as CSV and Parquet, a
Frictionless `datapackage.json`, DCAT-AP metadata (`dcat.jsonld`, with the fields DCAT-AP-NL/DONL and
DCAT-AP-NO require), the Great Expectations Data Docs, `sdc-report.json`, `gates.json` and
`checksums.sha256`. It is written to a hidden folder and renamed into place, so a crashed run never
leaves half a bundle (the next run removes what a crash left). `publish` copies the newest bundle whose
gates all passed into a new version folder, writes there the DCAT catalogue of the versions still
held (`catalog.ttl`, `catalog.jsonld`: what portals' harvesters read), swaps the `published` symlink
to it in one atomic rename, and refuses (leaving what is published untouched) when the latest run's
gates failed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from citizen_view.disclosure import describe
from citizen_view.files import sha256_of
from citizen_view.layout import PARTIAL, clean_partials, swap_symlink
from citizen_view.quality.results import latest_gate_failures

if TYPE_CHECKING:
    import duckdb

    from citizen_view.contract import DisclosureConfig, SourcesFile
    from citizen_view.layout import WarehouseLayout
    from citizen_view.open_data import PublishedTable

EU = "http://publications.europa.eu/resource/authority/"
FORMATS = {
    "csv": (EU + "file-type/CSV", "text/csv"),
    "parquet": (EU + "file-type/PARQUET", "application/vnd.apache.parquet"),
}
COUNTRIES = {"NL": EU + "country/NLD", "NO": EU + "country/NOR"}
# English labels of the EU code-list entries the bundle may use (a skos:Concept needs a skos:prefLabel in DCAT-AP 3);
# any other entry is labelled with its own code.
EU_LABELS = {
    "data-theme/AGRI": "Agriculture, fisheries, forestry and food",
    "data-theme/ECON": "Economy and finance",
    "data-theme/EDUC": "Education, culture and sport",
    "data-theme/ENER": "Energy",
    "data-theme/ENVI": "Environment",
    "data-theme/GOVE": "Government and public sector",
    "data-theme/HEAL": "Health",
    "data-theme/INTR": "International issues",
    "data-theme/JUST": "Justice, legal system and public safety",
    "data-theme/REGI": "Regions and cities",
    "data-theme/SOCI": "Population and society",
    "data-theme/TECH": "Science and technology",
    "data-theme/TRAN": "Transport",
    "access-right/PUBLIC": "public",
    "access-right/RESTRICTED": "restricted",
    "access-right/NON_PUBLIC": "non-public",
    "dataset-status/COMPLETED": "completed",
    "dataset-status/DEVELOP": "under development",
    "dataset-status/DEPRECATED": "deprecated",
    "dataset-status/WITHDRAWN": "withdrawn",
    "language/NLD": "Dutch",
    "language/NOR": "Norwegian",
    "language/NOB": "Norwegian Bokmål",
    "language/NNO": "Norwegian Nynorsk",
    "language/ENG": "English",
    "country/NLD": "Netherlands",
    "country/NOR": "Norway",
    "licence/CC0": "Creative Commons CC0 1.0 Universal",
    "licence/CC_BY_4_0": "Creative Commons Attribution 4.0",
    "licence/NLOD_2_0": "Norwegian Licence for Open Government Data 2.0",
}
FIELD_DESCRIPTIONS = {
    "count": "Number of citizens (people, not records); empty when suppressed by disclosure control.",
    "flag": "'suppressed' when the count is withheld by disclosure control, empty otherwise.",
    "level": "municipality, region (province or county), country, or unknown (matched to no official area).",
    "area_code": "Official area code: CBS GMxxxx / PVxx (NL), SSB kommunenummer / fylkesnummer (NO), or the country code.",
    "area_name": "Official name of the area.",
    "parent_code": "The area code one level up (the province or county of a municipality, the country of a region).",
    "age_band": "Age in whole years at the reference date, 'Total' for the sum over bands.",
    "sex": "F, M or Unknown, 'Total' for the sum.",
    "value": "The metric as a whole number (a count); empty for a metric that is a share, probability or weight.",
    "decimal": "The metric as a decimal number (a share, probability or match weight); empty for a count.",
}


def bundle_dirs(sources: SourcesFile, layout: WarehouseLayout) -> tuple[Path, Path]:
    """(exports, published) of one warehouse: as configured, relative ones inside the warehouse's folder."""
    pub = sources.publication
    return layout.exports_dir(pub.exports_dir), layout.published_dir(pub.published_dir)


def _frictionless_type(dtype: pl.DataType) -> str:
    if dtype.is_integer():
        return "integer"
    if dtype.is_float():
        return "number"
    return "string"


def table_schema(table: PublishedTable) -> dict[str, Any]:
    """Frictionless Table Schema of one published table."""
    info, df = table.info, table.table
    fields = []
    for name in info.columns:
        spec: dict[str, Any] = {"name": name, "type": _frictionless_type(df.schema[name])}
        if name in FIELD_DESCRIPTIONS:
            spec["description"] = FIELD_DESCRIPTIONS[name]
        if name in info.value_sets:
            spec["constraints"] = {"enum": list(info.value_sets[name])}
        if name in info.dims:
            spec.setdefault("constraints", {})["required"] = True
        fields.append(spec)
    return {"fields": fields, "missingValues": [""], "primaryKey": list(info.dims)}


def datapackage(tables: list[PublishedTable], *, name: str, sources: SourcesFile, created: str) -> dict[str, Any]:
    pub = sources.publication
    return {
        "name": name,
        "title": pub.title,
        "description": pub.description,
        "created": created,
        "licenses": [{"path": pub.licence, "title": "Licence of the data"}],
        "contributors": [{"title": pub.publisher, "role": "publisher", "email": pub.contact_point.email}],
        "resources": [
            {
                "name": t.info.name,
                "title": t.info.title,
                "description": t.info.description,
                "path": f"data/{t.info.name}.csv",
                "format": "csv",
                "mediatype": "text/csv",
                "encoding": "utf-8",
                "schema": table_schema(t),
            }
            for t in tables
        ],
    }


def _code(iri: str, *classes: str) -> dict[str, Any]:
    """A code-list value typed with its DCAT-AP range class(es) in the document itself (as DCAT-AP-NL's examples do),
    so SHACL validation needs neither the vocabularies nor inference; an EU authority entry also gets its scheme
    and label (DCAT-AP: a skos:Concept has a prefLabel; DCAT-AP-NO: the value is in the right scheme)."""
    types = list(classes)
    node: dict[str, Any] = {"@id": iri}
    if iri.startswith(EU) and iri.count("/") >= 6:
        scheme, code = iri[len(EU) :].rsplit("/", 1)
        types += [] if "skos:Concept" in types else ["skos:Concept"]
        node["skos:inScheme"] = {"@id": EU + scheme}
        node["skos:prefLabel"] = {"@value": EU_LABELS.get(f"{scheme}/{code}", code), "@language": "en"}
    elif "skos:Concept" in types:
        node["skos:prefLabel"] = {"@value": iri.rstrip("/").rsplit("/", 1)[-1], "@language": "en"}
    node["@type"] = types[0] if len(types) == 1 else types
    return node


CONTEXT = {
    "dcat": "http://www.w3.org/ns/dcat#",
    "dct": "http://purl.org/dc/terms/",
    "foaf": "http://xmlns.com/foaf/0.1/",
    "vcard": "http://www.w3.org/2006/vcard/ns#",
    "adms": "http://www.w3.org/ns/adms#",
    "skos": "http://www.w3.org/2004/02/skos/core#",
    "rdfs": "http://www.w3.org/2000/01/rdf-schema#",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
}


@dataclass(frozen=True)
class _Describe:
    """The publication settings as DCAT-AP nodes, shared by a bundle's dataset and the catalogue's."""

    sources: SourcesFile

    def text(self, s: str) -> dict[str, str]:
        return {"@value": s, "@language": self.sources.publication.text_language}

    @property
    def agent(self) -> dict[str, Any]:
        pub = self.sources.publication
        return {"@id": pub.publisher_uri, "@type": "foaf:Agent", "foaf:name": self.text(pub.publisher)}

    @property
    def contact(self) -> dict[str, Any]:
        pub = self.sources.publication
        return {
            "@type": ["vcard:Organization", "vcard:Kind"],
            "vcard:fn": pub.contact_point.name,
            "vcard:hasEmail": {"@id": f"mailto:{pub.contact_point.email}"},
        }

    @property
    def language(self) -> dict[str, Any]:
        return _code(self.sources.publication.language, "dct:LinguisticSystem")

    @property
    def licence(self) -> dict[str, Any]:
        return _code(self.sources.publication.licence, "dct:LicenseDocument")

    def schema(self, folder_url: str) -> dict[str, Any]:
        return {
            "@id": f"{folder_url}/datapackage.json",
            "@type": "dct:Standard",
            "dct:title": self.text("Frictionless Data Package of this bundle (the table schemas)"),
        }

    def distribution(
        self, *, iri: str, url: str, fmt: str, title: str, description: str, schema: dict, issued: dict
    ) -> dict:
        pub = self.sources.publication
        format_uri, media = FORMATS[fmt]
        link = {"@id": url, "@type": "rdfs:Resource"}
        return {
            "@id": iri,
            "@type": "dcat:Distribution",
            "dct:title": self.text(f"{title} ({fmt.upper()})"),
            "dct:description": self.text(description),
            "dcat:accessURL": link,
            "dcat:downloadURL": link,
            "dct:format": _code(format_uri, "dct:MediaTypeOrExtent"),
            "dcat:mediaType": {"@id": pub.media_type_base + media, "@type": "dct:MediaType"},
            "dct:license": self.licence,
            "dct:language": self.language,
            "dct:conformsTo": schema,
            "dct:issued": issued,
        }

    def dataset(
        self, *, iri: str, schema: dict, issued: dict, modified: dict, distributions: list[dict]
    ) -> dict[str, Any]:
        pub = self.sources.publication
        doc: dict[str, Any] = {
            "@id": iri,
            "@type": "dcat:Dataset",
            "dct:title": self.text(pub.title),
            "dct:description": self.text(pub.description),
            "dct:identifier": iri,
            "dct:publisher": self.agent,
            "dct:creator": self.agent,
            "dcat:contactPoint": self.contact,
            "dct:accessRights": _code(pub.access_rights, "dct:RightsStatement"),
            "dct:license": self.licence,
            "dcat:theme": _code(pub.theme, "skos:Concept"),
            "dct:language": self.language,
            "adms:status": _code(pub.status, "skos:Concept"),
            "dcat:keyword": [self.text(k) for k in pub.keywords],
            "dcat:landingPage": {"@id": pub.landing_page or pub.access_url, "@type": "foaf:Document"},
            "foaf:page": {"@id": pub.documentation or schema["@id"], "@type": "foaf:Document"},
            "dct:conformsTo": schema,
            "dct:issued": issued,
            "dct:modified": modified,
            "dcat:distribution": distributions,
        }
        spatial = pub.spatial or COUNTRIES.get(self.sources.country or "")
        if spatial:
            doc["dct:spatial"] = _code(spatial, "dct:Location")
        if pub.reference_date is not None:
            day = {"@value": pub.reference_date.isoformat(), "@type": "xsd:date"}
            doc["dct:temporal"] = {"@type": "dct:PeriodOfTime", "dcat:startDate": day, "dcat:endDate": day}
        return doc


def _when(iso: str) -> dict[str, str]:
    return {"@value": iso, "@type": "xsd:dateTime"}


def dcat(tables: list[PublishedTable], *, bundle: str, sources: SourcesFile, issued: str) -> dict[str, Any]:
    """DCAT-AP dataset description (JSON-LD) conforming to the DCAT-AP-NL 3.0 and DCAT-AP-NO SHACL shapes."""
    pub, describe = sources.publication, _Describe(sources)
    when = _when(issued)
    schema = describe.schema(f"{pub.access_url}/{bundle}")
    distributions = [
        describe.distribution(
            iri=f"{pub.identifier_prefix}/{bundle}/{t.info.name}.{fmt}",
            url=f"{pub.access_url}/{bundle}/data/{t.info.name}.{fmt}",
            fmt=fmt,
            title=t.info.title,
            description=t.info.description,
            schema=schema,
            issued=when,
        )
        for t in tables
        for fmt in FORMATS
    ]
    iri = f"{pub.identifier_prefix}/{bundle}"
    return {
        "@context": CONTEXT,
        **describe.dataset(iri=iri, schema=schema, issued=when, modified=when, distributions=distributions),
    }


# --- the catalogue of published versions -----------------------------------------------------------

CATALOG_FILES = ("catalog.ttl", "catalog.jsonld")
SPDX = "http://spdx.org/rdf/terms#"


def _digest(path: Path, algorithm: str) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, algorithm).hexdigest()


def _published_at(folder: Path) -> str:
    """When a version folder was published (its PUBLISHED_FROM was written then)."""
    stamp = dt.datetime.fromtimestamp((folder / "PUBLISHED_FROM").stat().st_mtime, dt.timezone.utc)
    return stamp.isoformat(timespec="seconds")


def catalog(versions: list[tuple[str, Path]], *, sources: SourcesFile) -> dict[str, Any]:
    """A DCAT-AP `dcat:Catalog` (JSON-LD) of published versions, oldest first: each version a `dcat:Dataset` with
    `dcat:version` and `dcat:previousVersion`, and a distribution per table and format with its download URL under
    `publication.access_url`/<version>/ and the checksum (`spdx:checksum`, `publication.catalog_checksum`) of the file
    in the version folder."""
    pub, describe = sources.publication, _Describe(sources)
    algorithm = pub.catalog_checksum
    datasets: list[dict[str, Any]] = []
    for name, folder in versions:
        package = json.loads((folder / "datapackage.json").read_text(encoding="utf-8"))
        issued, modified = _when(package["created"]), _when(_published_at(folder))
        base, iri = f"{pub.access_url}/{name}", f"{pub.identifier_prefix}/{name}"
        schema = describe.schema(base)
        distributions = []
        for resource in package["resources"]:
            for fmt in FORMATS:
                path = f"data/{resource['name']}.{fmt}"
                node = describe.distribution(
                    iri=f"{iri}/{resource['name']}.{fmt}",
                    url=f"{base}/{path}",
                    fmt=fmt,
                    title=resource["title"],
                    description=resource["description"],
                    schema=schema,
                    issued=issued,
                )
                node["dct:modified"] = modified
                node["spdx:checksum"] = {
                    "@type": "spdx:Checksum",
                    "spdx:algorithm": {
                        "@id": f"{SPDX}checksumAlgorithm_{algorithm}",
                        "@type": "spdx:ChecksumAlgorithm",
                    },
                    "spdx:checksumValue": {"@value": _digest(folder / path, algorithm), "@type": "xsd:hexBinary"},
                }
                distributions.append(node)
        dataset = describe.dataset(
            iri=iri, schema=schema, issued=issued, modified=modified, distributions=distributions
        )
        dataset["dcat:version"] = name
        if datasets:
            dataset["dcat:previousVersion"] = {"@id": datasets[-1]["@id"]}
        datasets.append(dataset)
    return {
        "@context": {**CONTEXT, "spdx": SPDX},
        "@id": f"{pub.identifier_prefix}/catalog",
        "@type": "dcat:Catalog",
        "dct:identifier": f"{pub.identifier_prefix}/catalog",
        "dct:title": describe.text(f"{pub.title}: published versions"),
        "dct:description": describe.text(
            f"Every version of the open data published by {pub.publisher} that can still be downloaded, oldest first."
        ),
        "dct:publisher": describe.agent,
        "dcat:contactPoint": describe.contact,
        "foaf:homepage": {"@id": pub.landing_page or pub.access_url, "@type": "foaf:Document"},
        "dct:language": describe.language,
        "dct:license": describe.licence,
        **(
            {"dct:issued": datasets[0]["dct:modified"], "dct:modified": datasets[-1]["dct:modified"]}
            if datasets
            else {}
        ),
        "dcat:dataset": datasets,
    }


def write_catalog(folder: Path, versions: list[tuple[str, Path]], *, sources: SourcesFile) -> list[Path]:
    """`catalog.jsonld` and `catalog.ttl` (the same graph, in Turtle through rdflib) in `folder`."""
    from rdflib import Graph

    document = catalog(versions, sources=sources)
    text = json.dumps(document, indent=2, ensure_ascii=False)
    graph = Graph().parse(data=text, format="json-ld")
    for prefix, namespace in document["@context"].items():
        graph.bind(prefix, namespace)
    ttl, jsonld = folder / "catalog.ttl", folder / "catalog.jsonld"
    graph.serialize(ttl, format="turtle", encoding="utf-8")
    jsonld.write_text(text + "\n", encoding="utf-8")
    return [ttl, jsonld]


def write_bundle(
    tables: list[PublishedTable],
    *,
    exports_dir: Path,
    run_id: str,
    sources: SourcesFile,
    sdc_report: dict,
    gates: list[dict],
    data_docs: Any = None,
    now: dt.datetime | None = None,
) -> Path:
    """Write a complete bundle under `exports_dir` and return its folder (rename-into-place, never partial)."""
    now = now or dt.datetime.now(dt.timezone.utc)
    name = f"{now:%Y%m%d-%H%M%S}-{run_id[:8]}"
    final = exports_dir / name
    clean_partials(exports_dir)  # what a crashed run left behind
    partial = exports_dir / f".{name}{PARTIAL}"
    (partial / "data").mkdir(parents=True)
    for t in tables:
        t.table.write_csv(partial / "data" / f"{t.info.name}.csv")
        t.table.write_parquet(partial / "data" / f"{t.info.name}.parquet")
    issued = now.isoformat(timespec="seconds")
    _json(
        partial / "datapackage.json", datapackage(tables, name=f"citizen-view-{name}", sources=sources, created=issued)
    )
    _json(partial / "dcat.jsonld", dcat(tables, bundle=name, sources=sources, issued=issued))
    _json(partial / "sdc-report.json", sdc_report)
    _json(
        partial / "gates.json",
        {
            "run_id": run_id,
            "all_passed": all(g["passed"] or not g.get("blocking", True) for g in gates),
            "checks": gates,
        },
    )
    if data_docs is not None:
        data_docs(partial / "data-docs")
    files = sorted(p for p in partial.rglob("*") if p.is_file())
    lines = [f"{sha256_of(p)}  {p.relative_to(partial).as_posix()}" for p in files]
    (partial / "checksums.sha256").write_text("\n".join(lines) + "\n", encoding="utf-8")
    partial.rename(final)
    return final


def _json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")


# --- publication -----------------------------------------------------------------------------------


@dataclass
class BundleReport:
    """What the bundle step wrote, for asset metadata."""

    bundle: Path
    files: list[str]
    gates_passed: int
    cells_suppressed: int


def sdc_report(tables: list[PublishedTable], rules: DisclosureConfig, *, reference: dt.date) -> dict:
    """What disclosure control did, for `sdc-report.json`."""
    per_table = {
        t.info.name: {
            "primary_suppressed": t.primary,
            "secondary_suppressed": t.secondary,
            "published_suppressed": t.suppressed,
            **t.information_loss(),
        }
        for t in tables
        if t.info.count_column
    }
    return {
        "rules": describe(rules),
        "unit": "citizens (people after linkage), not records",
        "reference_date": reference.isoformat(),
        "areas": "official municipality codes with the province or county one level up; a municipality cell that must "
        "be suppressed is still counted in its province or county, which is published at its own level",
        "information_loss": "suppressed_cell_share: cells withheld / cells; published_person_share: people counted in "
        "published finest cells (a municipality, no total) / people in finest cells",
        "tables": per_table,
        "totals": {
            "cells": sum(v["cells"] for v in per_table.values()),
            "suppressed": sum(v["published_suppressed"] for v in per_table.values()),
        },
    }


def build_bundle(
    con: duckdb.DuckDBPyConnection, sources: SourcesFile, layout: WarehouseLayout, *, run_id: str
) -> BundleReport:
    """The run's bundle from the stored protected tables and the run's gate outcomes (with GX Data Docs)."""
    from citizen_view.open_data import load_published, reference_date
    from citizen_view.quality.expectations import validate_tables
    from citizen_view.quality.results import run_results

    rules = sources.disclosure
    tables = load_published(con)
    gates = run_results(con, run_id)
    specs = {t.info.name: t.info.spec for t in tables}
    frames = {t.info.name: t.table for t in tables}

    def data_docs(folder: Path) -> None:
        validate_tables(
            frames, specs, min_cell=rules.min_cell, allow_zero=not rules.suppress_zeros, data_docs_dir=folder
        )

    built_at = next((t.reference for t in tables if t.reference), None) or reference_date(sources)
    report = sdc_report(tables, rules, reference=built_at)
    bundle = write_bundle(
        tables,
        exports_dir=bundle_dirs(sources, layout)[0],
        run_id=run_id,
        sources=sources,
        sdc_report=report,
        gates=gates,
        data_docs=data_docs,
    )
    files = sorted(
        p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file() and "data-docs" not in p.parts
    )
    return BundleReport(bundle, files, sum(g["passed"] for g in gates), report["totals"]["suppressed"])


KEEP_PUBLISHED = 2  # the published version and the one before it


@dataclass
class Published:
    bundle: Path
    target: Path


class PublishRefused(RuntimeError):
    """Publication refused; `failed` names the failing checks."""

    def __init__(self, message: str, failed: list[str]):
        super().__init__(message)
        self.failed = failed


def newest_passing_bundle(exports_dir: Path) -> Path | None:
    """The newest complete bundle whose gates.json says every gate passed."""
    for folder in sorted((p for p in exports_dir.glob("*") if p.is_dir() and not p.name.startswith(".")), reverse=True):
        gates = folder / "gates.json"
        if gates.is_file() and (folder / "checksums.sha256").is_file():
            if json.loads(gates.read_text(encoding="utf-8")).get("all_passed"):
                return folder
    return None


def currently_published(published_dir: Path) -> Path | None:
    """The version folder `published_dir` points at, or None when nothing has been published yet."""
    return published_dir.resolve() if published_dir.is_dir() else None


def _held_versions(versions: Path) -> list[Path]:
    """The published version folders still held, oldest first (a complete bundle published by `publish`)."""
    return sorted(
        p
        for p in versions.iterdir()
        if not p.name.startswith(".") and (p / "PUBLISHED_FROM").is_file() and (p / "datapackage.json").is_file()
    )


def publish(
    con: duckdb.DuckDBPyConnection, *, exports_dir: Path, published_dir: Path, sources: SourcesFile
) -> Published:
    """Copy the newest passing bundle to `published_dir`, unless the latest run's gates failed; the new version
    carries the DCAT catalogue of every version held after this one (`catalog.ttl`, `catalog.jsonld`)."""
    run_id, failed = latest_gate_failures(con)
    if failed:
        raise PublishRefused(f"the latest run ({run_id}) failed {len(failed)} quality gate(s)", failed)
    bundle = newest_passing_bundle(exports_dir)
    if bundle is None:
        raise PublishRefused(f"no complete bundle whose gates all passed under {exports_dir}", [])
    versions = published_dir.with_name(f".{published_dir.name}-versions")
    versions.mkdir(parents=True, exist_ok=True)
    clean_partials(versions)
    if published_dir.exists() and not published_dir.is_symlink():  # a folder published by an older version
        published_dir.rename(versions / f"legacy-{dt.datetime.now(dt.timezone.utc):%Y%m%d-%H%M%S}")
    stamp = f"{dt.datetime.now(dt.timezone.utc):%Y%m%d-%H%M%S-%f}"
    staging = versions / f".{bundle.name}-{stamp}{PARTIAL}"
    shutil.copytree(bundle, staging)
    (staging / "PUBLISHED_FROM").write_text(bundle.name + "\n", encoding="utf-8")
    name = f"{bundle.name}-{stamp}"
    held = [(p.name, p) for p in _held_versions(versions)]
    write_catalog(staging, sorted([*held, (name, staging)])[-KEEP_PUBLISHED:], sources=sources)  # those kept below
    version = staging.rename(versions / name)
    swap_symlink(published_dir, version)  # the one atomic step: readers see the old bundle or the new one
    for old in sorted(p for p in versions.iterdir() if not p.name.startswith("."))[:-KEEP_PUBLISHED]:
        if old.resolve() != published_dir.resolve():
            shutil.rmtree(old, ignore_errors=True)
    return Published(bundle, published_dir)

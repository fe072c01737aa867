"""Keeping the official area lists current: download them from Statistics Netherlands (CBS) and Statistics Norway (SSB).

`citizen-view areas refresh --country NL|NO` writes `<cc>_municipalities.csv` and keeps `<cc>_aliases.csv`
into the warehouse folder's `areas/`, where the pipeline prefers them to the lists shipped with the project.

- Norway: SSB's classification API (Klass), classification 131 (kommuner) and 104 (fylker), at a date:
  `https://data.ssb.no/api/klass/v1/classifications/{131|104}/codesAt.json?date=YYYY-MM-DD`, answering
  `{"codes": [{"code": "0301", "name": "Oslo - Oslove", ...}]}`; 9999/99 ("Uoppgitt") are dropped and a
  kommune's fylke is its first two digits.
- The Netherlands: CBS open data, the table "Gebieden in Nederland <year>" (86059NED for 2025, 86247NED
  for 2026): `https://opendata.cbs.nl/ODataApi/odata/{table}/TypedDataSet?$format=json` with its
  `DataProperties` naming the municipality and province code and name columns (their keys change by year).
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import urllib.request
from pathlib import Path
from typing import Any

from citizen_view.areas import DATA, write_list

SSB = "https://data.ssb.no/api/klass/v1/classifications/{id}/codesAt.json?date={date}&language=nb"
CBS = "https://opendata.cbs.nl/ODataApi/odata/{table}/{part}?$format=json"
CBS_TABLES = {2025: "86059NED", 2026: "86247NED"}


def _get(url: str) -> Any:
    request = urllib.request.Request(url, headers={"Accept": "application/json", "User-Agent": "citizen-view"})
    with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 - fixed https URLs above
        return json.loads(response.read().decode("utf-8"))


def norway_rows(kommuner: dict, fylker: dict) -> list[dict[str, str]]:
    """Rows of no_municipalities.csv from SSB Klass answers for classifications 131 and 104."""
    counties = {c["code"]: c["name"] for c in fylker["codes"] if c["code"] != "99"}
    rows = []
    for c in kommuner["codes"]:
        code = str(c["code"]).zfill(4)
        if code == "9999":
            continue
        county = code[:2]
        if county not in counties:
            raise ValueError(f"kommune {code} {c['name']}: no fylke {county} in SSB's list")
        rows.append({"code": code, "name": c["name"], "county_code": county, "county_name": counties[county]})
    return sorted(rows, key=lambda r: r["code"])


def netherlands_rows(properties: list[dict], data: list[dict]) -> list[dict[str, str]]:
    """Rows of nl_municipalities.csv from a CBS 'Gebieden in Nederland' table: its DataProperties and TypedDataSet."""
    groups = {p["ID"]: p.get("Title", "") for p in properties if p.get("Type") == "TopicGroup"}

    def key(group_title: str, title: str) -> str:
        for p in properties:
            parent = groups.get(p.get("ParentID"), "")
            if p.get("Title", "").strip().lower() == title and parent.lower().startswith(group_title):
                return p["Key"]
        raise ValueError(f"the CBS table has no {title!r} column under a {group_title!r} group")

    cols = {
        "code": key("gemeente", "code"),
        "name": key("gemeente", "naam"),
        "province_code": key("provincie", "code"),
        "province_name": key("provincie", "naam"),
    }
    rows = [{k: str(item[v]).strip() for k, v in cols.items()} for item in data]
    return sorted({r["code"]: r for r in rows if r["code"].startswith("GM")}.values(), key=lambda r: r["code"])


def refresh(country: str, target: Path, *, date: dt.date | None = None) -> Path:
    """Download the current list for `country` into `target`; the aliases shipped with the project are kept."""
    date = date or dt.date.today()
    if country == "NO":
        rows = norway_rows(_get(SSB.format(id=131, date=date)), _get(SSB.format(id=104, date=date)))
        columns, prefix = ["code", "name", "county_code", "county_name"], "no"
    elif country == "NL":
        table = CBS_TABLES.get(date.year) or CBS_TABLES[max(CBS_TABLES)]
        properties = _get(CBS.format(table=table, part="DataProperties"))["value"]
        data = _get(CBS.format(table=table, part="TypedDataSet"))["value"]
        rows = netherlands_rows(properties, data)
        columns, prefix = ["code", "name", "province_code", "province_name"], "nl"
    else:
        raise ValueError(
            f"no official source known for {country!r}: give the areas in sources.yaml (publication.areas)"
        )
    if not rows:
        raise ValueError(f"the {country} source answered with no areas: nothing was written")
    write_list(target / f"{prefix}_municipalities.csv", rows, columns)
    aliases = target / f"{prefix}_aliases.csv"
    if not aliases.exists():
        shutil.copyfile(DATA / f"{prefix}_aliases.csv", aliases)
    return target / f"{prefix}_municipalities.csv"

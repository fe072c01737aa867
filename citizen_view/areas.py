"""Official areas: every citizen's address mapped to an official municipality code, with its region one level up.

Statistics are published by official area codes, not by city names as written (which would make
"'s-Gravenhage", "s Gravenhage", "Den Haag" and "Amsterdm" four areas). Code lists ship with the
project as data (`areas_data/`): the Dutch municipalities (CBS `GMxxxx`, with province `PVxx`) and
the Norwegian kommuner (SSB kommunenummer, with fylke), with known alternative names; `citizen-view
areas refresh` downloads the current lists from CBS and SSB. Any other country brings its own list
(`publication.areas`: a CSV of code,name,region_code,region_name, with optional aliases).

Each citizen's golden address is matched, in this order, and the method is recorded per citizen:
1. `area code`: the source's own area-code column (canonical field `area_code`), when it is a listed code;
2. `postcode table`: a postcode -> code table, where one is installed for the country;
3. `name` / `alias`: the folded city name equals a listed name or a known alias (multilingual official
   names such as "Tromsø - Romsa - Tromssa" count each part as a name);
4. `fuzzy name`: a Jaro-Winkler similarity of at least 0.92 with one listed name or alias, clearly better
   than the next (a typo such as "Amsterdm");
5. `postcode (learned)`: the postcode's other citizens were matched by 1-4 to one code (at least 3 of
   them, 90% agreeing): the city is missing or unreadable but the postcode tells;
6. otherwise `unmatched`: counted and shown by a quality gate, never published as an area of its own.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from citizen_view.standardise import fold, per_distinct
from citizen_view.warehouse import column_exists, transaction

if TYPE_CHECKING:
    import duckdb

    from citizen_view.contract import SourcesFile

DATA = Path(__file__).with_name("areas_data")
FUZZY_MIN = 0.92
FUZZY_MARGIN = 0.02
LEARNED_MIN_VOTES = 3
LEARNED_MIN_AGREEMENT = 0.9


class Method(StrEnum):
    """How a citizen's area was found."""

    AREA_CODE = "area code"
    POSTCODE_TABLE = "postcode table"
    NAME = "name"
    ALIAS = "alias"
    FUZZY = "fuzzy name"
    POSTCODE_LEARNED = "postcode (learned)"
    UNMATCHED = "unmatched"
    NO_AREA_LIST = "no area list"  # the country has no shipped list and sources.yaml declares none


@dataclass(frozen=True)
class AreaList:
    """One country's official areas: municipalities with their region, names and aliases to match, optional postcodes."""

    country: str
    country_name: str
    level: str  # what a municipality is called: municipality, kommune
    region_level: str  # one level up: province, county
    municipalities: pl.DataFrame  # code, name, region_code, region_name
    aliases: pl.DataFrame  # alias, code
    postcodes: pl.DataFrame | None = None  # postcode, code
    source: str = ""

    def names(self) -> pl.DataFrame:
        """Every folded name that means a municipality: official names (each part of a multilingual one) and aliases."""
        official = self.municipalities.select("code", pl.col("name").alias("written"))
        parts = official.with_columns(pl.col("written").str.split(" - ")).explode("written")
        names = pl.concat(
            [
                official.with_columns(pl.lit(Method.NAME.value).alias("method")),
                parts.with_columns(pl.lit(Method.NAME.value).alias("method")),
                self.aliases.select("code", pl.col("alias").alias("written")).with_columns(
                    pl.lit(Method.ALIAS.value).alias("method")
                ),
            ]
        )
        folded = names.with_columns(pl.col("written").map_elements(_key, return_dtype=pl.String).alias("key"))
        # a key that means two municipalities (a bare "Bergen") is no evidence: dropped
        clear = folded.drop_nulls("key").group_by("key").agg(pl.col("code").n_unique().alias("codes"))
        return (
            folded.join(clear.filter(pl.col("codes") == 1), on="key")
            .sort("method", descending=True)  # name before alias
            .unique("key", keep="first", maintain_order=True)
            .select("key", "code", "method")
        )


_COUNTRIES = {
    "NL": (
        "nl",
        "Netherlands",
        "municipality",
        "province",
        "province_code",
        "province_name",
        "CBS gemeentelijke indeling 1 January 2025 (CC BY 4.0)",
    ),
    "NO": (
        "no",
        "Norway",
        "kommune",
        "county",
        "county_code",
        "county_name",
        "SSB Klass 131 kommuneinndeling, valid 2026-01-01 (NLOD)",
    ),
}


def _key(text: str | None) -> str | None:
    """The matching form of a place name: folded (ASCII, lower case, punctuation to spaces)."""
    if text is None:
        return None
    key = fold(text)
    return key or None


def with_place_keys(frame: pl.DataFrame, column: str) -> pl.DataFrame:
    """`frame` with `key`: the matching form of `column`'s place names, folded once per distinct name (a million
    citizens live in a few thousand places: 1.3 s per row, 0.06 s per name, at 1M)."""
    return frame.with_columns(per_distinct(column, _key, frame).alias("key"))


def load_areas(country: str | None, *, folder: Path | None = None) -> AreaList | None:
    """The official areas of a country, from `folder` (as `citizen-view areas refresh` writes it) or the shipped lists.

    Files: `<cc>_municipalities.csv` (code,name,<region>_code,<region>_name), `<cc>_aliases.csv` (alias,code) and,
    where available, `<cc>_postcodes.csv` (postcode,code). None for a country without a list.
    """
    if country not in _COUNTRIES:
        return None
    prefix, country_name, level, region_level, region_code, region_name, source = _COUNTRIES[country]
    where = folder if folder is not None and (folder / f"{prefix}_municipalities.csv").is_file() else DATA

    def read(name: str) -> pl.DataFrame | None:
        path = where / f"{prefix}_{name}.csv"
        return pl.read_csv(path, infer_schema_length=0) if path.is_file() else None

    municipalities = read("municipalities")
    assert municipalities is not None
    municipalities = municipalities.rename({region_code: "region_code", region_name: "region_name"})
    if country == "NO":  # a county code is two digits; the kommune code carries it as its first two
        municipalities = municipalities.with_columns(pl.col("code").str.zfill(4), pl.col("region_code").str.zfill(2))
    aliases = read("aliases")
    if aliases is None:
        aliases = pl.DataFrame(schema={"alias": pl.String, "code": pl.String})
    if country == "NO":
        aliases = aliases.with_columns(pl.col("code").str.zfill(4))
    postcodes = read("postcodes")
    return AreaList(
        country,
        country_name,
        level,
        region_level,
        municipalities,
        aliases,
        postcodes,
        source if where == DATA else f"{where} (refreshed)",
    )


def load_custom_areas(
    codes: Path,
    *,
    aliases: Path | None = None,
    postcodes: Path | None = None,
    country: str = "XX",
    country_name: str = "",
    level: str = "municipality",
    region_level: str = "region",
) -> AreaList:
    """Another country's list: a CSV with code,name,region_code,region_name (and optional aliases/postcodes CSVs)."""
    municipalities = pl.read_csv(codes, infer_schema_length=0)
    missing = {"code", "name", "region_code", "region_name"} - set(municipalities.columns)
    if missing:
        raise ValueError(
            f"{codes}: an area list needs the columns code, name, region_code, region_name (missing {sorted(missing)})"
        )
    alias = (
        pl.read_csv(aliases, infer_schema_length=0)
        if aliases
        else pl.DataFrame(schema={"alias": pl.String, "code": pl.String})
    )
    post = pl.read_csv(postcodes, infer_schema_length=0) if postcodes else None
    return AreaList(country, country_name or country, level, region_level, municipalities, alias, post, str(codes))


@dataclass
class AreaReport:
    """How citizens were matched to official areas."""

    citizens: int
    by_method: dict[str, int] = field(default_factory=dict)
    unmatched: int = 0
    unmatched_values: list[tuple[str | None, str | None, int]] = field(default_factory=list)  # city, postcode, citizens
    areas: int = 0
    listed: bool = True

    @property
    def unmatched_share(self) -> float:
        return self.unmatched / self.citizens if self.citizens else 0.0


AREA_TABLE = "citizen_area"


def match_areas(con: duckdb.DuckDBPyConnection, areas: AreaList | None) -> AreaReport:
    """(Re)create `citizen_area` (citizen_id, area_code, area_name, region_code, region_name, method, city, postcode)."""
    citizens = con.sql(
        "SELECT citizen_id, city, postcode, "
        + ("area_code" if column_exists(con, "main", "citizen", "area_code") else "NULL::VARCHAR AS area_code")
        + " FROM citizen"
    ).pl()
    if areas is None:
        out = citizens.select(
            "citizen_id",
            pl.lit(None, dtype=pl.String).alias("area_code"),
            pl.lit(Method.NO_AREA_LIST.value).alias("method"),
            "city",
            "postcode",
        )
        _store(con, out, None)
        return AreaReport(
            citizens.height, {Method.NO_AREA_LIST.value: citizens.height}, citizens.height, [], 0, listed=False
        )
    listed = set(areas.municipalities.get_column("code").to_list())
    names = areas.names()
    keyed = with_place_keys(citizens, "city")
    found = keyed.with_columns(
        pl.when(pl.col("area_code").is_in(sorted(listed))).then(pl.col("area_code")).alias("code"),
        pl.when(pl.col("area_code").is_in(sorted(listed))).then(pl.lit(Method.AREA_CODE.value)).alias("method"),
    )
    if areas.postcodes is not None:
        table = areas.postcodes.select(
            pl.col("postcode").str.to_uppercase().str.replace_all(r"\s", ""), pl.col("code").alias("_code")
        )
        found = _fill(found, table, on="postcode", method=pl.lit(Method.POSTCODE_TABLE.value))
    found = _fill(found, names.rename({"code": "_code", "method": "_method"}), on="key", method=pl.col("_method"))
    fuzzy = _fuzzy(found.filter(pl.col("code").is_null()).get_column("key").drop_nulls().unique().to_list(), names)
    if fuzzy:
        lookup = pl.DataFrame({"key": list(fuzzy), "_code": list(fuzzy.values())})
        found = _fill(found, lookup, on="key", method=pl.lit(Method.FUZZY.value))
    learned = _learned_postcodes(found)
    if learned.height:
        found = _fill(found, learned, on="postcode", method=pl.lit(Method.POSTCODE_LEARNED.value))
    out = found.select(
        "citizen_id",
        pl.col("code").alias("area_code"),
        pl.col("method").fill_null(Method.UNMATCHED.value),
        "city",
        "postcode",
    )
    _store(con, out, areas)
    by_method = dict(out.group_by("method").len().sort("len", descending=True).iter_rows())
    unmatched = out.filter(pl.col("area_code").is_null())
    values = (
        unmatched.group_by("city", "postcode")
        .len()
        .sort(["len", "city"], descending=[True, False], nulls_last=True)
        .head(20)
        .rows()
    )
    return AreaReport(
        out.height,
        by_method,
        unmatched.height,
        values,
        out.get_column("area_code").n_unique() - (1 if unmatched.height else 0),
    )


def _fill(found: pl.DataFrame, lookup: pl.DataFrame, *, on: str, method: pl.Expr) -> pl.DataFrame:
    """Citizens still without a code take the lookup's `_code` for their `on` value, recorded with `method`;
    citizens already matched keep their code and method. The lookup's own columns (`_`-prefixed) are dropped."""
    extra = [c for c in lookup.columns if c != on]
    taken = pl.col("code").is_null() & pl.col("_code").is_not_null()
    return (
        found.join(lookup, on=on, how="left")
        .with_columns(
            pl.coalesce("code", "_code").alias("code"),
            pl.when(taken).then(method).otherwise(pl.col("method")).alias("method"),
        )
        .drop(extra)
    )


def _store(con: duckdb.DuckDBPyConnection, matched: pl.DataFrame, areas: AreaList | None) -> None:
    muni = (
        areas.municipalities.select(
            pl.col("code").alias("area_code"), pl.col("name").alias("area_name"), "region_code", "region_name"
        )
        if areas is not None
        else pl.DataFrame(
            schema={"area_code": pl.String, "area_name": pl.String, "region_code": pl.String, "region_name": pl.String}
        )
    )
    frame = matched.join(muni, on="area_code", how="left").select(
        "citizen_id", "area_code", "area_name", "region_code", "region_name", "method", "city", "postcode"
    )
    with transaction(con, _citizen_area=frame):
        con.execute(f"CREATE OR REPLACE TABLE {AREA_TABLE} AS SELECT * FROM _citizen_area ORDER BY citizen_id")


def _fuzzy(keys: list[str], names: pl.DataFrame) -> dict[str, str]:
    """Unmatched folded names -> the one listed name or alias they are a typo of (Jaro-Winkler, clear winner)."""
    if not keys:
        return {}
    import duckdb

    con = duckdb.connect(":memory:")
    try:
        con.register("_keys", pl.DataFrame({"k": keys}))
        con.register("_names", names)
        rows = con.execute(
            """
            SELECT k, code, s, second FROM (
                SELECT k, code, s, lead(s) OVER (PARTITION BY k ORDER BY s DESC, code) AS second,
                       row_number() OVER (PARTITION BY k ORDER BY s DESC, code) AS pick
                FROM (SELECT k, code, max(jaro_winkler_similarity(k, key)) AS s FROM _keys, _names GROUP BY k, code)
            ) WHERE pick = 1
            """
        ).fetchall()
    finally:
        con.close()
    return {k: code for k, code, s, second in rows if s >= FUZZY_MIN and (second is None or s - second >= FUZZY_MARGIN)}


def _learned_postcodes(found: pl.DataFrame) -> pl.DataFrame:
    """Postcodes whose matched citizens agree on one code (at least LEARNED_MIN_VOTES, LEARNED_MIN_AGREEMENT)."""
    votes = (
        found.filter(pl.col("code").is_not_null() & pl.col("postcode").is_not_null()).group_by("postcode", "code").len()
    )
    totals = votes.group_by("postcode").agg(pl.col("len").sum().alias("total"))
    return (
        votes.join(totals, on="postcode")
        .filter((pl.col("total") >= LEARNED_MIN_VOTES) & (pl.col("len") / pl.col("total") >= LEARNED_MIN_AGREEMENT))
        .select("postcode", pl.col("code").alias("_code"))
    )


def write_list(path: Path, rows: list[dict[str, str]], columns: list[str]) -> None:
    """Write a code list CSV (what `areas refresh` produces), atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".csv.partial")
    with tmp.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(path)


def areas_for(sources: SourcesFile, *, refreshed: Path | None = None) -> AreaList | None:
    """The area list a sources file publishes by: its own (`publication.areas`), else its country's (refreshed or shipped)."""
    custom = sources.publication.areas
    if custom is not None:

        def at(path: Path | None) -> Path | None:
            return None if path is None else (path if path.is_absolute() else sources.base_dir / path)

        return load_custom_areas(
            at(custom.codes),
            aliases=at(custom.aliases),
            postcodes=at(custom.postcodes),
            country=sources.country or "XX",
            country_name=custom.country_name,
            level=custom.level,
            region_level=custom.region_level,
        )
    return load_areas(sources.country, folder=refreshed)


def country_name(sources: SourcesFile) -> str:
    """The country's name for the national rows of the published tables."""
    if sources.publication.areas is not None and sources.publication.areas.country_name:
        return sources.publication.areas.country_name
    return _COUNTRIES[sources.country][1] if sources.country in _COUNTRIES else (sources.country or "All")

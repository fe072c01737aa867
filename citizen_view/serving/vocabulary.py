"""The words the pages use: one label per canonical field, the pages' own phrases (`phrases.py`) and the messages
other parts write in English (`messages.py`), in the deployment's language (en, nl or no).

Labels avoid any one country's word for a thing (`national_id` is "National ID number", not "BSN" or
"fødselsnummer"). `plain` turns a message that names canonical fields (`date_of_birth is not a date`) into the
page's words; `shown_date` writes a date back the way the person typed one, else in the language's usual form.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any

from markupsafe import Markup, escape

from citizen_view.contract import CanonicalField
from citizen_view.serving.messages import MESSAGES, decimal, reword
from citizen_view.serving.phrases import PHRASES

LANGUAGES = ("en", "nl", "no")
DEFAULT_LANGUAGE = "en"

FIELDS: dict[str, dict[str, str]] = {
    "en": {
        "given_name": "Given name",
        "middle_name": "Middle name",
        "family_name": "Family name",
        "full_name": "Name",
        "date_of_birth": "Date of birth",
        "date_of_death": "Date of death",
        "sex": "Sex",
        "national_id": "National ID number",
        "street": "Street",
        "house_number": "House number",
        "unit": "Unit",
        "postcode": "Postcode",
        "city": "Place",
        "area_code": "Area code",
        "birth_place": "Place of birth",
        "email": "Email",
        "phone": "Phone",
        "source_attributes": "Agency's own details",
        "access_log": "This access log",
        "review_queue": "Review queue",
        "address": "Address",  # the one comparison of street, house number and postcode
        "name": "Name",
        "purpose": "Purpose",
        "case_reference": "Case reference",
    },
    "nl": {
        "given_name": "Voornaam",
        "middle_name": "Tussenvoegsel",
        "family_name": "Achternaam",
        "full_name": "Naam",
        "date_of_birth": "Geboortedatum",
        "date_of_death": "Overlijdensdatum",
        "sex": "Geslacht",
        "national_id": "Identificatienummer",
        "street": "Straat",
        "house_number": "Huisnummer",
        "unit": "Toevoeging",
        "postcode": "Postcode",
        "city": "Woonplaats",
        "area_code": "Gebiedscode",
        "birth_place": "Geboorteplaats",
        "email": "E-mail",
        "phone": "Telefoon",
        "source_attributes": "Eigen gegevens van de organisatie",
        "access_log": "Dit inzageoverzicht",
        "review_queue": "Beoordelingslijst",
        "address": "Adres",  # the one comparison of street, house number and postcode
        "name": "Naam",
        "purpose": "Doel",
        "case_reference": "Zaaknummer",
    },
    "no": {
        "given_name": "Fornavn",
        "middle_name": "Mellomnavn",
        "family_name": "Etternavn",
        "full_name": "Navn",
        "date_of_birth": "Fødselsdato",
        "date_of_death": "Dødsdato",
        "sex": "Kjønn",
        "national_id": "Identifikasjonsnummer",
        "street": "Gate",
        "house_number": "Husnummer",
        "unit": "Bokstav",
        "postcode": "Postnummer",
        "city": "Poststed",
        "area_code": "Områdekode",
        "birth_place": "Fødested",
        "email": "E-post",
        "phone": "Telefon",
        "source_attributes": "Etatens egne opplysninger",
        "access_log": "Denne innsynsloggen",
        "review_queue": "Vurderingsliste",
        "address": "Adresse",  # the one comparison of street, house number and postcode
        "name": "Navn",
        "purpose": "Formål",
        "case_reference": "Saksnummer",
    },
}

# How each language writes a date when the person typed none (English: ISO 8601, read the same everywhere).
LOCAL_DATE = {"en": "%Y-%m-%d", "nl": "%d-%m-%Y", "no": "%d.%m.%Y"}
_TYPED_DAY_FIRST = re.compile(r"^\s*\d{1,2}(?P<sep>[-./])\d{1,2}(?P=sep)\d{4}\s*$")
_TYPED_YEAR_FIRST = re.compile(r"^\s*\d{4}(?P<sep>[-./])\d{1,2}(?P=sep)\d{1,2}\s*$")
# Internal names that read as code: canonical fields with an underscore, and the record keys' parts.
_CODE_NAMES = sorted((f for f in FIELDS["en"] if "_" in f), key=len, reverse=True)
_CODE_WORD = re.compile(r"\b(" + "|".join(_CODE_NAMES) + r")\b")


def language(value: str | None) -> str:
    """A supported language code (the default for None or an unknown one)."""
    return value if value in LANGUAGES else DEFAULT_LANGUAGE


def label(field_name: str, lang: str = DEFAULT_LANGUAGE) -> str:
    """The page's word for a field: the vocabulary's, else the name made readable."""
    return FIELDS[language(lang)].get(field_name) or field_name.replace("_", " ").capitalize()


def phrase(key: str, lang: str = DEFAULT_LANGUAGE, **values: object) -> str:
    """One of the pages' own phrases, filled in."""
    return PHRASES[language(lang)].get(key, PHRASES[DEFAULT_LANGUAGE][key]).format(**values)


def said(key: str, lang: str = DEFAULT_LANGUAGE, **values: object) -> Markup:
    """A phrase for a page whose values are markup (`<strong>` around a number): the phrase's own text escaped."""
    text = PHRASES[language(lang)].get(key, PHRASES[DEFAULT_LANGUAGE][key])
    return Markup(escape(text)).format(**values)


def number(value: float, lang: str = DEFAULT_LANGUAGE, places: int = 3) -> str:
    """A number with `places` decimals, written as the language writes one (0,987 in Dutch and Norwegian)."""
    return decimal(f"{value:.{places}f}", language(lang))


def action_words(action: str, lang: str = DEFAULT_LANGUAGE) -> str:
    """What an audited action did, in words (`view_profile` -> "opened the profile"), else its name made readable."""
    key = f"did_{action}"
    return phrase(key, lang) if key in PHRASES[DEFAULT_LANGUAGE] else action.replace("_", " ")


def optional(key: str, fallback: str, lang: str = DEFAULT_LANGUAGE) -> str:
    """A phrase when the vocabulary has `key` (a case state, a review kind), else `fallback` as it came."""
    return phrase(key, lang) if key in PHRASES[DEFAULT_LANGUAGE] else fallback


def plain(text: object, lang: str = DEFAULT_LANGUAGE) -> str:
    """A message in the page's language (`messages.reword`) with every internal field name replaced by its label
    (lower-cased inside a sentence)."""
    text = reword(str(text), language(lang), FIELDS[language(lang)])

    def word(match: re.Match[str]) -> str:
        found = label(match.group(1), lang)
        return found if match.start() == 0 else found[0].lower() + found[1:]

    return _CODE_WORD.sub(word, text)


def shown_date(value: object, typed: str | None = None, lang: str = DEFAULT_LANGUAGE) -> str:
    """A date written as the person typed theirs (10-03-1995 back as 10-03-1995), else in the language's form."""
    if value is None or value == "":
        return ""
    try:
        day = value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value)[:10])
    except ValueError:
        return str(value)
    if typed and (m := _TYPED_DAY_FIRST.match(typed)):
        return day.strftime(f"%d{m['sep']}%m{m['sep']}%Y")
    if typed and (m := _TYPED_YEAR_FIRST.match(typed)):
        return day.strftime(f"%Y{m['sep']}%m{m['sep']}%d")
    return day.strftime(LOCAL_DATE[language(lang)])


def source_label(source: str, labels: Mapping[str, str]) -> str:
    """A source as a person knows it: its label from `sources.yaml`, else its name made readable."""
    return labels.get(source) or source.replace("_", " ").capitalize()


def disclosed(item: str, labels: Mapping[str, str], lang: str = DEFAULT_LANGUAGE) -> str:
    """One item of what a look disclosed, as the audit log names it: a field, or `records:<source>` / `cases:<source>`."""
    kind, _, source = item.partition(":")
    if source and kind in ("records", "cases"):
        return phrase(f"{kind}_of", lang, source=source_label(source, labels))
    return label(item, lang)


def code_names() -> tuple[str, ...]:
    """The internal field names no page may show (every canonical field with an underscore)."""
    return tuple(f for f in (*CanonicalField, *_CODE_NAMES) if "_" in f)


# Every catalogue of the pages' words, each {language: {key: text}}.
CATALOGUES = (FIELDS, PHRASES, MESSAGES)


def view_speech(cur: Any) -> tuple[str, dict[str, str]]:
    """The language and the source labels a served view was published with (a cursor on it); English and no labels
    for a view published before either existed."""
    tables = {r[0] for r in cur.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    columns = {
        r[0]
        for r in cur.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'view_info'"
        ).fetchall()
    }
    lang = cur.execute("SELECT language FROM view_info").fetchall()[0][0] if "language" in columns else None
    labels = (
        dict(cur.execute("SELECT source, label FROM source_labels WHERE label IS NOT NULL").fetchall())
        if "source_labels" in tables
        else {}
    )
    return language(lang), labels

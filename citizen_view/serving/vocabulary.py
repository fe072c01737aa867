"""The words the pages use: one label per canonical field and the pages' own phrases, in the deployment's language.

Labels avoid any one country's word for a thing (`national_id` is "National ID number", not "BSN" or
"fødselsnummer"). `plain` turns a message that names canonical fields (`date_of_birth is not a date`) into the
page's words; `shown_date` writes a date back the way the person typed one, else in the language's usual form.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping

from citizen_view.contract import CanonicalField

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
        "name": "Navn",
        "purpose": "Formål",
        "case_reference": "Saksnummer",
    },
}

PHRASES: dict[str, dict[str, str]] = {
    "en": {
        "search": "Find a citizen",
        "review": "Review uncertain links",
        "access_log": "My access log",
        "sign_out": "Sign out",
        "purpose": "Purpose",
        "change": "change",
        "purpose_needed": "Say why you look before this page shows anything: the purpose (or case reference) is "
        "written in the access log with your name and is kept for the rest of this session.",
        "purpose_title": "Why do you look?",
        "continue": "Continue",
        "back": "Back",
        "start": "Start page",
        "sign_in": "Sign in",
        "score_line": "match score {score} of 100",
        "score_full": "every searched field matched",
        "match_header": "How well it matches",
        "score_help": "The match score (0 to 100) says how closely a citizen matches what you typed; "
        "100 means every searched field matched. The reasons follow it.",
        "citizen_id": "Citizen ID",
        "candidates": "{n} citizen(s) found",
        "record_of": "{source} record",
        "search_button": "Search",
        "no_purpose": "No purpose given",
        "no_such_page": "There is no such page.",
        "wrong_method": "This page cannot be opened that way.",
        "date_hint": "dd-mm-yyyy or yyyy-mm-dd",
        "cannot_show": "This page cannot be shown",
        "went_wrong": "Something went wrong",
        "records_of": "records from {source}",
        "values_from": "from {sources}",
        "cases_of": "cases at {source}",
    },
    "nl": {
        "search": "Zoek een burger",
        "review": "Twijfelgevallen beoordelen",
        "access_log": "Mijn inzageoverzicht",
        "sign_out": "Afmelden",
        "purpose": "Doel",
        "change": "wijzigen",
        "purpose_needed": "Geef aan waarom u kijkt voordat deze pagina iets toont: het doel (of zaaknummer) wordt "
        "met uw naam in het inzageoverzicht vastgelegd en geldt voor de rest van deze sessie.",
        "purpose_title": "Waarom kijkt u?",
        "continue": "Verder",
        "back": "Terug",
        "start": "Startpagina",
        "sign_in": "Aanmelden",
        "score_line": "overeenkomst {score} van 100",
        "score_full": "elk gezocht gegeven komt overeen",
        "match_header": "Hoe goed het past",
        "score_help": "De overeenkomst (0 tot 100) zegt hoe goed een burger past bij wat u intypte; "
        "100 betekent dat elk gezocht gegeven overeenkomt. De redenen staan erachter.",
        "citizen_id": "Burger-ID",
        "candidates": "{n} burger(s) gevonden",
        "record_of": "gegevens {source}",
        "search_button": "Zoeken",
        "no_purpose": "Geen doel opgegeven",
        "no_such_page": "Deze pagina bestaat niet.",
        "wrong_method": "Deze pagina kan zo niet worden geopend.",
        "date_hint": "dd-mm-jjjj",
        "cannot_show": "Deze pagina kan niet worden getoond",
        "went_wrong": "Er ging iets mis",
        "records_of": "gegevens van {source}",
        "values_from": "uit {sources}",
        "cases_of": "zaken bij {source}",
    },
    "no": {
        "search": "Finn en innbygger",
        "review": "Vurder usikre koblinger",
        "access_log": "Min innsynslogg",
        "sign_out": "Logg ut",
        "purpose": "Formål",
        "change": "endre",
        "purpose_needed": "Oppgi hvorfor du ser før denne siden viser noe: formålet (eller saksnummeret) "
        "logges med navnet ditt og gjelder resten av økten.",
        "purpose_title": "Hvorfor ser du?",
        "continue": "Fortsett",
        "back": "Tilbake",
        "start": "Startside",
        "sign_in": "Logg inn",
        "score_line": "treffpoeng {score} av 100",
        "score_full": "alle søkte felt stemte",
        "match_header": "Hvor godt det passer",
        "score_help": "Treffpoengene (0 til 100) sier hvor godt en innbygger passer det du skrev; "
        "100 betyr at alle søkte felt stemte. Begrunnelsene følger.",
        "citizen_id": "Innbygger-ID",
        "candidates": "{n} innbygger(e) funnet",
        "record_of": "opplysninger fra {source}",
        "search_button": "Søk",
        "no_purpose": "Ingen formål oppgitt",
        "no_such_page": "Denne siden finnes ikke.",
        "wrong_method": "Denne siden kan ikke åpnes slik.",
        "date_hint": "dd.mm.åååå",
        "cannot_show": "Denne siden kan ikke vises",
        "went_wrong": "Noe gikk galt",
        "records_of": "opplysninger fra {source}",
        "values_from": "fra {sources}",
        "cases_of": "saker hos {source}",
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


def plain(text: object, lang: str = DEFAULT_LANGUAGE) -> str:
    """A message with every internal field name replaced by its label (lower-cased inside a sentence)."""

    def word(match: re.Match[str]) -> str:
        found = label(match.group(1), lang)
        return found if match.start() == 0 else found[0].lower() + found[1:]

    return _CODE_WORD.sub(word, str(text))


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

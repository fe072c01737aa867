"""The messages other parts of Citizen View write in English (the model's decision on a pair, a review item's reason,
a search candidate's reasons, why a value was set aside, why a request was refused), in the pages' language.

Those messages stay English where they are made: the API, the CLI and the warehouse carry them as written. A page
reads them through `reword`: a message that matches one of the English templates below is written again in the
page's language, its placeholders' values reworded too ("(column dob)" inside a date's reason). A message of
several parts joined by "; " is reworded part by part; one that matches no template is shown as it came.
"""

from __future__ import annotations

import re
from functools import cache

DECIMAL_COMMA = ("nl", "no")
_DECIMAL = re.compile(r"[+-]?\d+\.\d+")

MESSAGES: dict[str, dict[str, str]] = {
    "en": {
        # the model's decision on a pair of records (linkage.review.describe_pair)
        "pair_linked": "linked directly: match weight {weight} is at or above the threshold {threshold}",
        "pair_through": "in one citizen through other records: match weight {weight} is below the threshold "
        "{threshold} (not linked directly)",
        "pair_apart": "kept apart: match weight {weight} is at or above the threshold {threshold}, but the records are "
        "in different citizens (a conflict, a weak bridge cut or a reviewer's decision)",
        "pair_not_linked": "not linked: match weight {weight} is below the threshold {threshold}",
        "pair_no_weight": "{decision} (no match weight or threshold to compare)",
        "decision_linked": "linked directly",
        "decision_through": "in one citizen through other records",
        "decision_apart": "kept apart",
        "decision_not_linked": "not linked",
        "decision_cluster": "linked",
        # why an item is in the review queue (linkage.review)
        "in_band": "match weight {weight} is within the uncertainty band [{low}, {high}]",
        "many_records": "{n} records (more than {most})",
        "many_ids": "{n} different valid national IDs",
        "many_dates": "{n} different dates of birth",
        # why a search found a candidate (serving.search)
        "same_id": "same national ID",
        "id_typo": "national ID one typo away: {found}",
        "id_typo_checksum": "national ID one typo away: {found} (the ID typed fails its checksum)",
        "same_family": "same family name",
        "family_nearly": "family name nearly the same",
        "family_word": "family names share a word",
        "family_similar": "family name similar",
        "same_first": "same first name",
        "first_nearly": "first name nearly the same",
        "same_initials": "same initials",
        "same_initial": "same first initial",
        "same_birth": "same date of birth",
        "birth_swapped": "date of birth with day and month swapped",
        "birth_digit": "date of birth one digit off",
        "birth_year": "born the same year",
        "same_address": "same address",
        "same_street": "same street and number",
        # why a value was set aside (canonical)
        "date_impossible": "impossible: digits in the format {format}, but no such date {where}",
        "date_unreadable": "unreadable: not in the format {format} {where}",
        "date_implausible": "implausible: outside {earliest} .. {latest} (quality settings)",  # before 2026-12-05
        "date_too_early": "implausible: before {earliest} (quality settings)",
        "date_too_late": "implausible: after {latest} (quality settings)",
        "column": "(column {column})",
        "id_checksum": "fails the {scheme} checksum",
        "bad_sex": "not a known way of writing sex (M/F, male/female, ...)",
        "bad_postcode": "not a postcode of {country}",
        "bad_email": "not an e-mail address",
        "bad_phone": "not a phone number of {country}",
        "bad_phone_international": "not a phone number in international form (+...)",
        # why a page was refused (serving)
        "no_citizen": "no citizen {citizen} in the current view",
        "citizen_id_form": "citizen_id must look like {form}",
        "cannot_search": "role {role} may see no source's records, so it cannot search",
        "may_not_review": "role {role} may not review links",
        "may_not_search_id": "role {role} may not search by national ID",
        "may_not_search_birth": "role {role} may not search by date of birth",
        "may_not_read_reports": "role {role} may not read citizens' access reports",
        "only_own_log": "a citizen portal may read only the access log of the citizen it signed in",
        "no_claim": "no valid citizen claim: sign in again through the citizen portal",
        "no_record_of_you": "this system holds no record of you, so no organisation has looked at one",
        "too_long": "{field} is longer than {limit} characters",
        "no_purpose": "every request needs a purpose (purpose=...) or a case reference (case_reference=...)",
        "search_how": "search by national_id, by name + date_of_birth, or by name + house_number + postcode/street",
        "not_a_date": "date_of_birth {typed} is not a date (use yyyy-mm-dd or dd-mm-yyyy)",
        "need_family": "name must contain at least a family name",
        "id_digits": "national_id must be 8 to 11 digits",
        "id_characters": "national_id must be 4 to 20 letters or digits (separators are ignored)",
        "address_search": "an address search needs house_number and a postcode or street",
        "sign_in_needed": "authentication required: send 'Authorization: Bearer <token>'",
        "bad_token": "unknown or invalid token",
        "throttled": "too many unknown tokens from your address: try again in {seconds} s",
        "no_view": "no view has been published yet: run the pipeline first",
        "crashed": "internal error; it has been logged",
        "kind_choice": "kind must be one of: {kinds}",
        "source_choice": "source must be one of the sources your role may see: {sources}",
        "page_number": "page must be a whole number from 1 to {most}",
        "no_csrf": "the form has no valid CSRF token: reload the review page and decide again",
        "may_not_decide": "role {role} may decide only on the items its review page lists (its sources' records, "
        "in citizens whose every record it may see)",
        "no_record": "no record {keys} in the current view (keys are source:source_record_id)",
        "decision_choice": "decision must be one of {decisions}, not {given}",
        "needs_reason": "a decision needs a reason",
        "two_records": "a pair needs two different records",
        "cross_origin": "cross-origin form posts are refused",
    },
    "nl": {
        "pair_linked": "direct gekoppeld: matchgewicht {weight} ligt op of boven de drempel {threshold}",
        "pair_through": "via andere gegevens in één burger: matchgewicht {weight} ligt onder de drempel {threshold} "
        "(niet direct gekoppeld)",
        "pair_apart": "uit elkaar gehouden: matchgewicht {weight} ligt op of boven de drempel {threshold}, maar de "
        "gegevens horen bij verschillende burgers (een tegenstrijdigheid, een doorgeknipte zwakke schakel of een "
        "besluit van een beoordelaar)",
        "pair_not_linked": "niet gekoppeld: matchgewicht {weight} ligt onder de drempel {threshold}",
        "pair_no_weight": "{decision} (geen matchgewicht of drempel om te vergelijken)",
        "decision_linked": "direct gekoppeld",
        "decision_through": "via andere gegevens in één burger",
        "decision_apart": "uit elkaar gehouden",
        "decision_not_linked": "niet gekoppeld",
        "decision_cluster": "gekoppeld",
        "in_band": "matchgewicht {weight} valt binnen de twijfelmarge van {low} tot {high}",
        "many_records": "{n} gegevens (meer dan {most})",
        "many_ids": "{n} verschillende geldige identificatienummers",
        "many_dates": "{n} verschillende geboortedata",
        "same_id": "zelfde identificatienummer",
        "id_typo": "identificatienummer met één tikfout verschil: {found}",
        "id_typo_checksum": "identificatienummer met één tikfout verschil: {found} (het ingetypte nummer klopt niet "
        "volgens de controle)",
        "same_family": "zelfde achternaam",
        "family_nearly": "achternaam bijna gelijk",
        "family_word": "achternamen hebben een woord gemeen",
        "family_similar": "achternaam lijkt erop",
        "same_first": "zelfde voornaam",
        "first_nearly": "voornaam bijna gelijk",
        "same_initials": "zelfde voorletters",
        "same_initial": "zelfde eerste voorletter",
        "same_birth": "zelfde geboortedatum",
        "birth_swapped": "geboortedatum met dag en maand verwisseld",
        "birth_digit": "geboortedatum met één cijfer verschil",
        "birth_year": "in hetzelfde jaar geboren",
        "same_address": "zelfde adres",
        "same_street": "zelfde straat en huisnummer",
        "date_impossible": "onmogelijk: cijfers in het formaat {format}, maar die datum bestaat niet {where}",
        "date_unreadable": "onleesbaar: niet in het formaat {format} {where}",
        "date_implausible": "onwaarschijnlijk: buiten {earliest} .. {latest} (kwaliteitsinstellingen)",
        "date_too_early": "onwaarschijnlijk: vóór {earliest} (kwaliteitsinstellingen)",
        "date_too_late": "onwaarschijnlijk: na {latest} (kwaliteitsinstellingen)",
        "column": "(kolom {column})",
        "id_checksum": "klopt niet volgens de controle van {scheme}",
        "bad_sex": "geen bekende schrijfwijze van geslacht (M/V, man/vrouw, ...)",
        "bad_postcode": "geen postcode van {country}",
        "bad_email": "geen e-mailadres",
        "bad_phone": "geen telefoonnummer van {country}",
        "bad_phone_international": "geen telefoonnummer in internationale vorm (+...)",
        "no_citizen": "geen burger {citizen} in het huidige overzicht",
        "citizen_id_form": "een burger-ID ziet eruit als {form}",
        "cannot_search": "rol {role} mag de gegevens van geen enkele bron zien en kan dus niet zoeken",
        "may_not_review": "rol {role} mag geen koppelingen beoordelen",
        "may_not_search_id": "rol {role} mag niet zoeken op identificatienummer",
        "may_not_search_birth": "rol {role} mag niet zoeken op geboortedatum",
        "may_not_read_reports": "rol {role} mag geen inzageoverzichten van burgers lezen",
        "only_own_log": "een burgerportaal mag alleen het inzageoverzicht lezen van de burger die het heeft aangemeld",
        "no_claim": "geen geldige verklaring van de burger: meld u opnieuw aan via het burgerportaal",
        "no_record_of_you": "dit systeem heeft geen gegevens over u, dus heeft geen organisatie die bekeken",
        "too_long": "{field} is langer dan {limit} tekens",
        "no_purpose": "bij elke vraag hoort een doel of een zaaknummer",
        "search_how": "zoek op identificatienummer, op naam + geboortedatum, of op naam + huisnummer + postcode of "
        "straat",
        "not_a_date": "geboortedatum {typed} is geen datum (gebruik dd-mm-jjjj of jjjj-mm-dd)",
        "need_family": "een naam bevat ten minste een achternaam",
        "id_digits": "een identificatienummer heeft 8 tot 11 cijfers",
        "id_characters": "een identificatienummer heeft 4 tot 20 letters of cijfers (scheidingstekens tellen niet mee)",
        "address_search": "zoeken op adres vraagt een huisnummer en een postcode of straat",
        "sign_in_needed": "u moet zich eerst aanmelden",
        "bad_token": "onbekende of ongeldige toegangscode",
        "throttled": "te veel onbekende toegangscodes vanaf uw adres: probeer het over {seconds} s opnieuw",
        "no_view": "er is nog geen overzicht gepubliceerd: voer eerst de verwerking uit",
        "crashed": "interne fout; die is vastgelegd",
        "kind_choice": "kies als soort een van: {kinds}",
        "source_choice": "kies als bron een van de bronnen die uw rol mag zien: {sources}",
        "page_number": "het paginanummer is een heel getal van 1 tot {most}",
        "no_csrf": "het formulier is verlopen: laad de beoordelingspagina opnieuw en beslis nogmaals",
        "may_not_decide": "rol {role} mag alleen beslissen over de punten die zijn beoordelingspagina toont (gegevens "
        "van zijn bronnen, bij burgers van wie hij elk gegeven mag zien)",
        "no_record": "geen gegevens {keys} in het huidige overzicht",
        "decision_choice": "kies als besluit een van {decisions}, niet {given}",
        "needs_reason": "bij een besluit hoort een reden",
        "two_records": "een paar bestaat uit twee verschillende gegevens",
        "cross_origin": "formulieren van een andere website worden geweigerd",
    },
    "no": {
        "pair_linked": "koblet direkte: treffvekt {weight} er på eller over terskelen {threshold}",
        "pair_through": "i samme innbygger gjennom andre poster: treffvekt {weight} er under terskelen {threshold} "
        "(ikke koblet direkte)",
        "pair_apart": "holdt adskilt: treffvekt {weight} er på eller over terskelen {threshold}, men postene hører til "
        "ulike innbyggere (en motstrid, en svak forbindelse som ble kuttet, eller en saksbehandlers avgjørelse)",
        "pair_not_linked": "ikke koblet: treffvekt {weight} er under terskelen {threshold}",
        "pair_no_weight": "{decision} (ingen treffvekt eller terskel å sammenligne)",
        "decision_linked": "koblet direkte",
        "decision_through": "i samme innbygger gjennom andre poster",
        "decision_apart": "holdt adskilt",
        "decision_not_linked": "ikke koblet",
        "decision_cluster": "koblet",
        "in_band": "treffvekt {weight} ligger innenfor usikkerhetsområdet fra {low} til {high}",
        "many_records": "{n} poster (flere enn {most})",
        "many_ids": "{n} ulike gyldige identifikasjonsnumre",
        "many_dates": "{n} ulike fødselsdatoer",
        "same_id": "samme identifikasjonsnummer",
        "id_typo": "identifikasjonsnummer med én tastefeil: {found}",
        "id_typo_checksum": "identifikasjonsnummer med én tastefeil: {found} (nummeret som ble skrevet, har feil "
        "kontrollsiffer)",
        "same_family": "samme etternavn",
        "family_nearly": "nesten samme etternavn",
        "family_word": "etternavnene har et ord felles",
        "family_similar": "lignende etternavn",
        "same_first": "samme fornavn",
        "first_nearly": "nesten samme fornavn",
        "same_initials": "samme initialer",
        "same_initial": "samme første initial",
        "same_birth": "samme fødselsdato",
        "birth_swapped": "fødselsdato med dag og måned byttet om",
        "birth_digit": "fødselsdato med ett siffer feil",
        "birth_year": "født samme år",
        "same_address": "samme adresse",
        "same_street": "samme gate og husnummer",
        "date_impossible": "umulig: sifre i formatet {format}, men ingen slik dato {where}",
        "date_unreadable": "uleselig: ikke i formatet {format} {where}",
        "date_implausible": "usannsynlig: utenfor {earliest} .. {latest} (kvalitetsinnstillinger)",
        "date_too_early": "usannsynlig: før {earliest} (kvalitetsinnstillinger)",
        "date_too_late": "usannsynlig: etter {latest} (kvalitetsinnstillinger)",
        "column": "(kolonne {column})",
        "id_checksum": "feil kontrollsiffer etter {scheme}",
        "bad_sex": "ikke en kjent skrivemåte for kjønn (M/K, mann/kvinne, ...)",
        "bad_postcode": "ikke et postnummer i {country}",
        "bad_email": "ikke en e-postadresse",
        "bad_phone": "ikke et telefonnummer i {country}",
        "bad_phone_international": "ikke et telefonnummer på internasjonal form (+...)",
        "no_citizen": "ingen innbygger {citizen} i gjeldende visning",
        "citizen_id_form": "en innbygger-ID ser ut som {form}",
        "cannot_search": "rollen {role} kan ikke se opplysninger fra noen kilde og kan derfor ikke søke",
        "may_not_review": "rollen {role} kan ikke vurdere koblinger",
        "may_not_search_id": "rollen {role} kan ikke søke på identifikasjonsnummer",
        "may_not_search_birth": "rollen {role} kan ikke søke på fødselsdato",
        "may_not_read_reports": "rollen {role} kan ikke lese innbyggeres innsynslogger",
        "only_own_log": "en innbyggerportal kan bare lese innsynsloggen til innbyggeren den logget inn",
        "no_claim": "ingen gyldig innbyggerbekreftelse: logg inn på nytt gjennom innbyggerportalen",
        "no_record_of_you": "dette systemet har ingen opplysninger om deg, så ingen virksomhet har sett på dem",
        "too_long": "{field} er lengre enn {limit} tegn",
        "no_purpose": "hver forespørsel må ha et formål eller et saksnummer",
        "search_how": "søk på identifikasjonsnummer, på navn + fødselsdato, eller på navn + husnummer + postnummer "
        "eller gate",
        "not_a_date": "fødselsdato {typed} er ikke en dato (bruk dd.mm.åååå eller åååå-mm-dd)",
        "need_family": "et navn må inneholde minst et etternavn",
        "id_digits": "et identifikasjonsnummer har 8 til 11 sifre",
        "id_characters": "et identifikasjonsnummer har 4 til 20 bokstaver eller sifre (skilletegn teller ikke)",
        "address_search": "et adressesøk trenger husnummer og postnummer eller gate",
        "sign_in_needed": "du må logge inn først",
        "bad_token": "ukjent eller ugyldig tilgangsnøkkel",
        "throttled": "for mange ukjente tilgangsnøkler fra din adresse: prøv igjen om {seconds} s",
        "no_view": "ingen visning er publisert ennå: kjør behandlingen først",
        "crashed": "intern feil; den er logget",
        "kind_choice": "type må være en av: {kinds}",
        "source_choice": "kilden må være en av kildene rollen din kan se: {sources}",
        "page_number": "sidetallet må være et heltall fra 1 til {most}",
        "no_csrf": "skjemaet er utløpt: last inn vurderingssiden på nytt og avgjør igjen",
        "may_not_decide": "rollen {role} kan bare avgjøre punktene vurderingssiden viser (poster fra egne kilder, hos "
        "innbyggere der den kan se hver post)",
        "no_record": "ingen post {keys} i gjeldende visning",
        "decision_choice": "avgjørelsen må være en av {decisions}, ikke {given}",
        "needs_reason": "en avgjørelse må ha en begrunnelse",
        "two_records": "et par må bestå av to ulike poster",
        "cross_origin": "skjemaer fra et annet nettsted avvises",
    },
}


def reword(text: str, lang: str, fields: dict[str, str] | None = None) -> str:
    """`text` in `lang` when it is one of the English messages (a field name among its values as its label in
    `fields`), else as it came."""
    if lang == "en" or lang not in MESSAGES:
        return text
    for key, pattern in _patterns():
        if m := pattern.fullmatch(text):
            values = {k: _value(v, lang, fields or {}) for k, v in m.groupdict().items()}
            return MESSAGES[lang][key].format(**values)
    if "; " in text:
        return "; ".join(reword(part, lang, fields) for part in text.split("; "))
    return text


def _value(value: str, lang: str, fields: dict[str, str]) -> str:
    if value in fields:
        return fields[value][0].lower() + fields[value][1:]
    if _DECIMAL.fullmatch(value):
        return decimal(value, lang)
    return reword(value, lang, fields)


def decimal(value: str, lang: str) -> str:
    """A decimal number as the language writes it: a comma before the fraction in Dutch and Norwegian."""
    return value.replace(".", ",") if lang in DECIMAL_COMMA else value


@cache
def _patterns() -> tuple[tuple[str, re.Pattern[str]], ...]:
    """Each English message as a pattern, the most literal first (so "linked" never takes "linked directly")."""
    found = []
    for key, template in MESSAGES["en"].items():
        parts = re.split(r"\{(\w+)\}", template)
        literal = "".join(parts[0::2])
        pattern = "".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>.+?)" for i, p in enumerate(parts))
        found.append((len(literal), key, re.compile(pattern, re.DOTALL)))
    return tuple((key, pattern) for _, key, pattern in sorted(found, key=lambda f: -f[0]))

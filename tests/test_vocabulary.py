"""The pages' words: labels for every canonical field in each language, messages in plain words, dates as typed."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from markupsafe import Markup

from citizen_view.canonical import implausible_date_reason, unparsed_date_reason
from citizen_view.contract import CanonicalField, ConfigError, load_sources
from citizen_view.linkage.review import describe_pair
from citizen_view.serving import vocabulary as words
from citizen_view.serving.messages import MESSAGES
from citizen_view.serving.report import render_access_report_html, served_speech


@pytest.mark.parametrize("lang", words.LANGUAGES)
def test_every_canonical_field_has_a_label_in_every_language(lang):
    for f in CanonicalField:
        assert f.value in words.FIELDS[lang], (lang, f)
        assert "_" not in words.label(f, lang)
    assert set(words.PHRASES[lang]) == set(words.PHRASES["en"])


def test_the_default_words_belong_to_no_one_country():
    assert words.label("national_id") == "National ID number"
    assert words.label("date_of_birth", "nl") == "Geboortedatum"
    assert words.label("national_id", "nl") == "Identificatienummer"
    for country_word in ("bsn", "burgerservice", "fødselsnummer", "fodselsnummer", "personnummer"):
        assert country_word not in " ".join(words.FIELDS["en"].values()).lower()


def test_a_message_names_fields_in_plain_words():
    assert words.plain("date_of_birth '31-31-1980' is not a date") == "Date of birth '31-31-1980' is not a date"
    assert words.plain("role 'x' may not search by national_id") == "role 'x' may not search by national ID number"
    assert words.plain("geen date_of_birth", "nl") == "geen geboortedatum"
    assert words.plain("given_names stay") == "given_names stay"  # only whole names


@pytest.mark.parametrize(
    ("typed", "shown"),
    [
        ("10-03-1995", "10-03-1995"),
        ("10.3.1995", "10.03.1995"),
        ("10/03/1995", "10/03/1995"),
        ("1995-03-10", "1995-03-10"),
    ],
)
def test_a_date_comes_back_as_it_was_typed(typed, shown):
    assert words.shown_date("1995-03-10", typed) == shown


def test_a_date_nobody_typed_is_in_the_language_s_form():
    day = dt.date(1995, 3, 10)
    assert [words.shown_date(day, None, lang) for lang in ("en", "nl", "no")] == [
        "1995-03-10",
        "10-03-1995",
        "10.03.1995",
    ]
    assert words.shown_date("2026-12-02T13:40:00+00:00", "19950310") == "2026-12-02"  # yyyymmdd: the ISO form
    assert words.shown_date(None) == "" and words.shown_date("not a date") == "not a date"


def test_sources_yaml_carries_source_labels_and_the_pages_language(tmp_path):
    text = "serving: {language: nl}\nsources:\n- {name: pop, label: Population register, path: p.csv, format: csv}\n"
    (tmp_path / "sources.yaml").write_text(text, encoding="utf-8")
    parsed = load_sources(tmp_path / "sources.yaml")
    assert parsed.serving.language == "nl" and parsed.sources[0].label == "Population register"
    assert words.source_label("pop", {"pop": parsed.sources[0].label}) == "Population register"
    assert words.source_label("driving_licences", {}) == "Driving licences"
    (tmp_path / "sources.yaml").write_text("serving: {language: xx}\nsources: []\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="language"):
        load_sources(tmp_path / "sources.yaml")


def test_what_a_look_disclosed_reads_as_words():
    labels = {"benefits": "Benefits agency"}
    assert words.disclosed("records:benefits", labels) == "records from Benefits agency"
    assert words.disclosed("cases:benefits", labels, "nl") == "zaken bij Benefits agency"
    assert words.disclosed("date_of_birth", labels, "no") == "Fødselsdato"


PLACEHOLDER = re.compile(r"\{(\w*)[^}]*\}")


@pytest.mark.parametrize("lang", ["nl", "no"])
def test_every_phrase_and_message_is_in_every_language_with_the_same_placeholders(lang):
    for catalogue in words.CATALOGUES:
        assert set(catalogue[lang]) == set(catalogue["en"]), set(catalogue["en"]) ^ set(catalogue[lang])
        for key, english in catalogue["en"].items():
            theirs = catalogue[lang][key]
            assert sorted(PLACEHOLDER.findall(theirs)) == sorted(PLACEHOLDER.findall(english)), (lang, key)
            assert theirs.strip() and theirs == theirs.strip(), (lang, key)


@pytest.mark.parametrize("lang", ["nl", "no"])
def test_every_english_message_is_reworded_whole(lang):
    """Each English template, filled in, comes back as that language's template filled in with the same values:
    no template takes another's message."""
    for key, english in MESSAGES["en"].items():
        values = {name: f"V{i}" for i, name in enumerate(PLACEHOLDER.findall(english))}
        assert words.plain(english.format(**values), lang) == words.plain(MESSAGES[lang][key].format(**values), lang)


def test_the_domain_s_own_messages_are_reworded():
    assert words.plain(describe_pair(3.214, 2.0, same_citizen=True), "nl") == (
        "direct gekoppeld: matchgewicht +3,21 ligt op of boven de drempel +2,00"
    )
    assert words.plain(describe_pair(-1.0, 2.0, same_citizen=False), "no") == (
        "ikke koblet: treffvekt -1,00 er under terskelen +2,00"
    )
    assert words.plain(describe_pair(None, 2.0, same_citizen=True), "nl") == (
        "via andere gegevens in één burger (geen matchgewicht of drempel om te vergelijken)"
    )
    apart = words.plain(describe_pair(4.0, 2.0, same_citizen=False), "no")
    assert apart.startswith("holdt adskilt: treffvekt +4,00") and "different" not in apart
    assert words.plain("match weight 2.50 is within the uncertainty band [1.88, 4.88]", "nl") == (
        "matchgewicht 2,50 valt binnen de twijfelmarge van 1,88 tot 4,88"
    )
    typo = unparsed_date_reason(False, "%d-%m-%Y", "(column geb)")
    assert words.plain(typo, "nl") == "onleesbaar: niet in het formaat %d-%m-%Y (kolom geb)"
    assert words.plain(implausible_date_reason(before=dt.date(1900, 1, 1)), "no") == (
        "usannsynlig: før 1900-01-01 (kvalitetsinnstillinger)"
    )
    assert words.plain(implausible_date_reason(after=dt.date(2026, 1, 1)), "nl") == (
        "onwaarschijnlijk: na 2026-01-01 (kwaliteitsinstellingen)"
    )
    old = "implausible: outside 1900-01-01 .. 2026-01-01 (quality settings)"  # a reason written before 2026-12-05
    assert words.plain(old, "nl").startswith("onwaarschijnlijk: buiten")
    assert words.plain("purpose is longer than 200 characters", "nl") == "doel is langer dan 200 tekens"
    assert words.plain("3 records (more than 2); 2 different dates of birth", "nl") == (
        "3 gegevens (meer dan 2); 2 verschillende geboortedata"
    )
    english = describe_pair(3.214, 2.0, same_citizen=True)
    assert words.plain(english, "en") == english  # English pages, the API and the CLI keep the words as made
    assert words.plain("a message nobody wrote a template for", "nl") == "a message nobody wrote a template for"


def test_a_phrase_with_markup_escapes_its_own_text_and_keeps_its_values():
    shown = words.said("items_to_review", "nl", n=Markup("<strong>3</strong>"))
    assert shown == "<strong>3</strong> geval(len) te beoordelen"
    assert "&lt;x&gt;" in words.said("access_intro", "en", citizen="<x>")
    assert words.action_words("view_profile", "no") == "åpnet profilen" and words.action_words("odd_one") == "odd one"


def test_the_access_report_speaks_the_language_asked_for(tmp_path):
    look = {
        "time": "2026-12-02T13:40:00+00:00",
        "organisation": "Dienst uitkeringen",
        "user": "anna",
        "role": "benefits_caseworker",
        "purpose": "controle",
        "case_reference": "BEN-7",
        "action": "view_profile",
        "fields": ["date_of_birth", "records:benefits"],
        "sources": ["benefits"],
        "status": 200,
    }
    dutch = render_access_report_html("CV-AAAA-BBBB-CCCC", [look], "nl", {"benefits": "Dienst uitkeringen"})
    assert '<html lang="nl">' in dutch and "Wie heeft de gegevens van CV-AAAA-BBBB-CCCC bekeken" in dutch
    assert "profiel geopend" in dutch and "Geboortedatum, gegevens van Dienst uitkeringen" in dutch
    english = render_access_report_html("CV-AAAA-BBBB-CCCC", [look])
    assert "1 look(s) recorded" in english and "opened the profile" in english and "Date of birth" in english
    assert served_speech(tmp_path / "no-view-yet") == ("en", {})

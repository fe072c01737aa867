"""The pages' words: labels for every canonical field in each language, messages in plain words, dates as typed."""

from __future__ import annotations

import datetime as dt

import pytest

from citizen_view.contract import CanonicalField, ConfigError, load_sources
from citizen_view.serving import vocabulary as words


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

"""The citizen's access report as a standalone HTML page (what `citizen-view audit export --format html` writes), in
the served view's language unless one is asked for."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape

from citizen_view.serving import vocabulary as words
from citizen_view.serving.snapshot import read_current_view

_ENV = Environment(
    loader=FileSystemLoader(Path(__file__).with_name("templates")), autoescape=select_autoescape(["html"])
)


def render_access_report_html(
    citizen_id: str, entries: list[dict], lang: str = words.DEFAULT_LANGUAGE, labels: Mapping[str, str] | None = None
) -> str:
    """Who looked at a citizen's data, as one printable page (organisation, when, why, what, which data)."""
    lang, labels = words.language(lang), labels or {}
    return _ENV.get_template("access_report.html").render(
        citizen_id=citizen_id,
        entries=list(reversed(entries)),
        lang=lang,
        say=lambda key, **v: words.phrase(key, lang, **v),
        did=lambda action: words.action_words(action, lang),
        disclosed=lambda item: words.disclosed(item, labels, lang),
        source_labels=lambda ss: ", ".join(words.source_label(s, labels) for s in ss),
    )


def served_speech(serving_dir: Path) -> tuple[str, dict[str, str]]:
    """The language and source labels of the view published in `serving_dir` (English and none before the first)."""
    return read_current_view(serving_dir, words.view_speech, (words.DEFAULT_LANGUAGE, {}))

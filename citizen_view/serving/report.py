"""The citizen's access report as a standalone HTML page (what `citizen-view audit export --format html` writes)."""

from __future__ import annotations

from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape

_ENV = Environment(
    loader=FileSystemLoader(Path(__file__).with_name("templates")), autoescape=select_autoescape(["html"])
)


def render_access_report_html(citizen_id: str, entries: list[dict]) -> str:
    """Who looked at a citizen's data, as one printable page (organisation, when, why, what, which data)."""
    return _ENV.get_template("access_report.html").render(citizen_id=citizen_id, entries=list(reversed(entries)))

"""The pages' templates, and `render`: every page in the deployment's words, with the navigation of the signed-in
role and the session's purpose remembered."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import HTTPException, Request
from fastapi.templating import Jinja2Templates
from starlette.responses import Response

from citizen_view.serving import vocabulary as words
from citizen_view.serving.deps import COOKIE, PURPOSE_COOKIE, remember_purpose

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))


@dataclass(frozen=True)
class Speech:
    """How the pages of one served view speak: its language and the labels its sources carry."""

    language: str = words.DEFAULT_LANGUAGE
    sources: dict[str, str] = field(default_factory=dict)


_SPOKEN: dict[tuple[str, str], Speech] = {}
_LOCK = threading.Lock()


def speech(request: Request) -> Speech:
    """The language and source labels of the view being served (read once per view; defaults without a view)."""
    parts = request.app.state.parts
    try:
        with parts.views.cursor() as (cur, view):
            key = (str(parts.serving_folder), view)
            with _LOCK:
                if key not in _SPOKEN:
                    _SPOKEN[key] = _read_speech(cur)
                return _SPOKEN[key]
    except HTTPException:  # no view published yet: the error page still speaks
        return Speech()


def _read_speech(cur: Any) -> Speech:
    return Speech(*words.view_speech(cur))


def render(request: Request, name: str, context: dict[str, Any], *, status_code: int = 200) -> Response:
    """A page: `name` with `context`, the signed-in user, the deployment's words, and the session's purpose."""
    spoken = speech(request)
    lang = spoken.language
    trail = getattr(request.state, "trail", None)
    context = {
        "who": trail.principal if trail is not None else None,
        "stated": getattr(request.state, "purpose", None),
        "lang": lang,
        "label": lambda f: words.label(f, lang),
        "say": lambda key, **v: words.phrase(key, lang, **v),
        "said": lambda key, **v: words.said(key, lang, **v),
        "did": lambda action: words.action_words(action, lang),
        "decimal": lambda value, places=3: words.number(value, lang, places),
        "say_or": lambda key, fallback: words.optional(key, fallback, lang),
        "plain": lambda text: words.plain(text, lang),
        "shown_date": lambda v, typed=None: words.shown_date(v, typed, lang),
        "source_label": lambda s: words.source_label(s, spoken.sources),
        "source_labels": lambda ss: ", ".join(words.source_label(s, spoken.sources) for s in ss),
        "disclosed": lambda f: words.disclosed(f, spoken.sources, lang),
        "here": request.url.path,
        **context,
    }
    response = TEMPLATES.TemplateResponse(request, name, context, status_code=status_code)
    remember = getattr(request.state, "purpose_to_remember", None)
    token = request.cookies.get(COOKIE) if not request.headers.get("authorization") else None
    if remember is not None and token and status_code < 400:
        value = remember_purpose(request.app.state.parts, token, remember)
        response.set_cookie(PURPOSE_COOKIE, value, httponly=True, samesite="strict")
    return response

"""Moved to `citizen_view.audit`; this name stays so existing imports keep working."""

from __future__ import annotations

from citizen_view.audit import *  # noqa: F403
from citizen_view.audit import __all__  # noqa: F401

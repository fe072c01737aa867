"""Record linkage: one door, `Linkage` (collect, train, score, link, golden, update, explain); the rest are its rooms."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from citizen_view.linkage.linker import Linkage, LinkageRun

__all__ = ["Linkage", "LinkageRun"]


def __getattr__(name: str) -> Any:
    # Imported on first use: the serving side imports `linkage.golden` and should not pay for Splink.
    if name in __all__:
        import citizen_view.linkage.linker as linker

        return getattr(linker, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

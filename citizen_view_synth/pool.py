"""`Pool`: a fixed list of values drawn with Zipf-like (common-first) or explicit weights."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Iterable, Sequence
from itertools import accumulate
from random import Random
from typing import Generic, TypeVar

T = TypeVar("T")


class Pool(Generic[T]):
    """Values with cumulative weights; `pick` is one `random()` call and one bisect."""

    __slots__ = ("items", "_cum", "_total", "_last")

    def __init__(self, items: Sequence[T], weights: Sequence[float]) -> None:
        if not items or len(items) != len(weights):
            raise ValueError("a Pool needs a non-empty list of items and one weight per item")
        self.items: tuple[T, ...] = tuple(items)
        self._cum = list(accumulate(weights))
        self._total = self._cum[-1]
        self._last = len(self.items) - 1

    @classmethod
    def zipf(cls, items: Sequence[T], *, exponent: float = 1.0, offset: float = 2.0) -> Pool[T]:
        """Rank-weighted pool: the first item is the most common, weight 1 / (rank + offset) ** exponent."""
        return cls(items, [1.0 / (r + offset) ** exponent for r in range(len(items))])

    def pick(self, rng: Random) -> T:
        """One value, drawn by weight."""
        i = bisect_right(self._cum, rng.random() * self._total)
        return self.items[i if i <= self._last else self._last]

    def __len__(self) -> int:
        return len(self.items)


def ranked(
    common: Iterable[str], rest: Iterable[str], *, shuffle_seed: str, keep: Callable[[str], bool] | None = None
) -> list[str]:
    """`common` names in the given order, then the remaining `rest` names in a fixed shuffled order, deduplicated."""
    seen: set[str] = set()
    head: list[str] = []
    for name in common:
        if name not in seen and (keep is None or keep(name)):
            seen.add(name)
            head.append(name)
    tail = sorted({n for n in rest if n not in seen and (keep is None or keep(n))})
    Random(shuffle_seed).shuffle(tail)
    return head + tail


def by_age(age: int, bands: tuple[tuple[int, float], ...], older: float) -> float:
    """The value of the first band (upper age bound, exclusive; value) the age falls under, else `older`."""
    return next((value for below, value in bands if age < below), older)

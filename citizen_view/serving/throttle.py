"""Failed sign-ins per client address: a token guesser is slowed down, a caseworker who mistypes is not.

An address that sent `limit` unknown tokens within `window` seconds is refused with 429 and `Retry-After` (a right
token too: an answer that told a good guess from a bad one would let the guessing go on) until the oldest of those
failures is `window` seconds old. A request without any token is no failed sign-in. The count is per service
process: `serve --workers N` lets an address try up to N x `limit` tokens a window. Behind a proxy every client has
the proxy's address unless the proxy is named with `--trusted-proxy`, so that its X-Forwarded-For counts.
`serve --failed-sign-ins N` sets the limit (0: off, e.g. for a fuzzing test that sends unknown tokens on purpose).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable

FAILURES_ALLOWED = 10
WINDOW_SECONDS = 60.0
ADDRESSES_KEPT = 100_000  # the oldest address is forgotten beyond this (memory stays bounded under a spray)


class SignInThrottle:
    def __init__(
        self,
        *,
        limit: int = FAILURES_ALLOWED,
        window: float = WINDOW_SECONDS,
        kept: int = ADDRESSES_KEPT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if limit < 0 or window <= 0:
            raise ValueError("a throttle needs a limit of 0 (off) or more failures and a window of more than 0 seconds")
        self.limit, self.window, self.kept, self.clock = limit, window, kept, clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def retry_after(self, address: str | None) -> int | None:
        """Whole seconds until `address` may sign in again, or None when it may now."""
        if not self.limit:
            return None
        with self._lock:
            recent = self._recent(address or "", self.clock())
            if recent is None or len(recent) < self.limit:
                return None
            return max(1, int(recent[0] + self.window - self.clock() + 0.999))

    def failed(self, address: str | None) -> None:
        """Count one unknown token sent from `address`."""
        if not self.limit:
            return
        key, now = address or "", self.clock()
        with self._lock:
            recent = self._recent(key, now)
            if recent is None:
                recent = self._failures[key] = deque(maxlen=self.limit)
                while len(self._failures) > self.kept:
                    self._failures.popitem(last=False)
            recent.append(now)
            self._failures.move_to_end(key)

    def _recent(self, key: str, now: float) -> deque[float] | None:
        recent = self._failures.get(key)
        if recent is None:
            return None
        while recent and recent[0] <= now - self.window:
            recent.popleft()
        if not recent:
            del self._failures[key]
            return None
        return recent

"""The service's outermost layer: every response audited with the status actually sent, bodies over the limit refused.

A raw ASGI middleware rather than an HTTP one, because it must see what the wire sees: the status of the
`http.response.start` message (written to the audit log *before* that message goes out, so a failed audit
write turns the answer into a 500 and never leaves a 200 in the log for a 500 on the wire), WebSocket
upgrades (refused: the service has none), and a body's size before it is read.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from starlette.responses import JSONResponse

from citizen_view.serving.access import Principal

log = logging.getLogger(__name__)
# The threads that run blocking work (a look at the view, an fsync'ed audit write) off the event loop: a plain executor
# hop costs a fraction of anyio's (capacity limiter, cancel scopes, context copy), paid on every request. Many threads,
# because most of them wait on the audit log's fsync, where waiting together is what makes group commit pay.
BLOCKING = ThreadPoolExecutor(max_workers=32, thread_name_prefix="citizen-view")


async def offload(fn: Callable[..., Any], *args: Any) -> Any:
    """`fn(*args)` in a BLOCKING thread, awaited (its exception raised here)."""
    return await asyncio.get_running_loop().run_in_executor(BLOCKING, functools.partial(fn, *args))


Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


# Every key a handler writes into `Trail.details` (and so into the audit entry's query), and the prefix of resolve's
# looked-up values: a request parameter with one of these names is kept as "param:<name>", in every request, so that
# no caller can write what looks like the service's own words into the log.
DETAIL_KEYS = frozenset({"claim", "decision", "note", "pair", "purpose", "reason", "record_keys", "resolution_id"})
DETAIL_PREFIXES = ("record.", "param:")


@dataclass
class Trail:
    """What a request did, filled in by the handler and written to the audit log by `AuditEveryResponse`."""

    action: str = "request"
    principal: Principal | None = None
    citizen_ids: list[str] = field(default_factory=list)
    fields: list[str] = field(default_factory=list)
    # per citizen, what this response returned of them: {"fields": [...], "sources": [...]}
    disclosed: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    details: dict[str, str] = field(default_factory=dict)
    on_behalf_of: str | None = None
    refusal: str | None = None  # a refusal's precise reason for the metrics (one of metrics.NAMED_REASONS)
    purpose: str | None = None  # the purpose remembered for a browser session, when the request itself states none
    case_reference: str | None = None
    audited: int | None = None  # the status already written to the audit log by `audit_now`, if any
    writer: Callable[[int], None] | None = field(default=None, repr=False)  # set by `AuditEveryResponse`

    def audit_now(self, status: int) -> None:
        """Write this request's audit entry for `status` now, in the calling (handler) thread: for a handler that has
        built its answer, so the entry is durable before the answer goes out without another threadpool hop. Raises
        when it could not be written (the handler then fails, and its 500 is audited as any other)."""
        if self.writer is not None:
            self.writer(status)
            self.audited = status


# record(scope, trail, status, anchor): write the audit entry for a response with `status` (anchoring the log first
# when `anchor`); raises when it could not.
Recorder = Callable[[Scope, Trail, int, bool], None]


class AuditEveryResponse:
    """Audits every HTTP response (and refused WebSocket upgrade) before it is sent; refuses oversized bodies with 413."""

    def __init__(
        self,
        app: Callable[[Scope, Receive, Send], Awaitable[None]],
        *,
        record: Recorder,
        max_body_bytes: int,
        probes: frozenset[str] = frozenset(),
        audit_problem: Callable[[], str | None] = lambda: None,
    ):
        self.app = app
        self.audit_problem = audit_problem  # why the log cannot be written, when a check can tell
        self.record = record
        self.max_body_bytes = max_body_bytes
        # Readiness probes: an answer that cannot be audited is a 503 "not ready" (what a platform acts on), not a 500.
        self.probes = probes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        trail = scope.setdefault("state", {})["trail"] = Trail()
        trail.writer = lambda status: self.record(scope, trail, status, True)
        if scope["type"] == "websocket":
            # no route speaks WebSocket: a close before accept is answered 403 by the server
            trail.action = "websocket"
            await self._write(scope, trail, 403)
            await send({"type": "websocket.close", "code": 1008})
            return
        started = replaced = False  # replaced: the app's answer is dropped (a 500 or 413 was sent instead)

        async def send_audited(message: Message) -> None:
            nonlocal started, replaced
            if replaced:
                return
            if message["type"] == "http.response.start":
                started = True
                if trail.audited == message["status"]:
                    pass  # the handler wrote this very entry before it answered (Trail.audit_now)
                elif not await self._write(scope, trail, message["status"]):
                    replaced = True
                    await _answer(send, *self._unaudited(scope))
                    return
            await send(message)

        async def refuse_body() -> None:
            nonlocal replaced
            trail.action = "oversized_body"
            await _answer(send_audited, 413, f"the request body is larger than {self.max_body_bytes} bytes")
            replaced = True

        received = 0

        async def receive_limited() -> Message:
            nonlocal received
            if replaced:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    # answered now: the app (a form parser may turn any error into its own 400) sees a disconnect
                    await refuse_body()
                    return {"type": "http.disconnect"}
            return message

        declared = _header(scope, b"content-length")
        if declared is not None and (
            not (declared.isascii() and declared.isdigit()) or int(declared) > self.max_body_bytes
        ):
            await refuse_body()
            return
        try:
            await self.app(scope, receive_limited, send_audited)
        except Exception:  # a crash is answered and audited like any other response, never a stack trace
            if replaced:
                return
            log.exception("request %s %s failed", scope.get("method"), scope.get("path"))
            if not started:
                await _answer(send_audited, 500, "internal error; it has been logged")

    async def _write(self, scope: Scope, trail: Trail, status: int) -> bool:
        """Audit a response; when that fails, try to audit it as the 500 it becomes. True when `status` was audited."""
        try:
            await offload(self.record, scope, trail, status, True)  # the append is fsync'ed: off the event loop
            return True
        except Exception:
            log.exception("audit write failed for %s %s; answering 500", scope.get("method"), scope.get("path"))
        instead = self._unaudited(scope)[0]
        try:  # unanchored: the anchor may be what failed (the same status again when it was already the 500)
            await offload(self.record, scope, trail, instead, False)
        except Exception:
            log.exception("the audit entry of the %s could not be written either", instead)
            return False
        return status == instead

    def _unaudited(self, scope: Scope) -> tuple[int, str]:
        """The status and error sent instead of an answer that could not be audited."""
        if scope.get("path") in self.probes:
            why = self.audit_problem() or "the audit log cannot be written (the service's log names the cause)"
            return 503, f"not ready: {why}"
        return 500, "internal error: the request could not be audited, so it was not answered"


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1").strip()
    return None


async def _answer(send: Send, status: int, error: str) -> None:
    body = JSONResponse({"error": error, "status": status}, status_code=status)
    await send({"type": "http.response.start", "status": status, "headers": body.raw_headers})
    await send({"type": "http.response.body", "body": body.body})

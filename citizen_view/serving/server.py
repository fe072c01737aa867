"""Running the caseworker service: uvicorn set up so that every response it sends is audited.

uvicorn answers some requests itself, before the application sees them: a malformed request gets
"400 Invalid HTTP request" from the HTTP parser, and the protocol class below answers 431 to a request
whose headers pass `RequestLimits` while they are still arriving (uvicorn's httptools parser has no
limit of its own and would read a 200 MB header into memory). Those refusals are audited too. Proxy
headers are off: the client address in the audit log is the socket's, unless the request comes from a
configured trusted proxy (see `addresses.client_address`).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from citizen_view.audit import AuditEvent
from citizen_view.contract import ConfigError

if TYPE_CHECKING:
    from fastapi import FastAPI

    from citizen_view.audit import AuditLog
    from citizen_view.serving.metrics import ServiceMetrics


log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RequestLimits:
    """How large a request may be: headers past a limit are answered 431, a body past its limit 413, before the
    rest is read. Each can be set in the environment as CITIZEN_VIEW_<NAME> (e.g. CITIZEN_VIEW_MAX_HEADER_BYTES)."""

    max_header_bytes: int = 32 * 1024  # request line and all headers together
    max_headers: int = 100
    max_body_bytes: int = 1024 * 1024  # the service's forms are a few hundred bytes; its API takes no body

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> RequestLimits:
        values = {}
        for f in fields(cls):
            name = f"CITIZEN_VIEW_{f.name.upper()}"
            if (text := environ.get(name)) is None:
                continue
            if not text.strip().isdigit() or int(text) < 1:
                raise ConfigError(f"{name} must be a whole number of at least 1, not {text!r}")
            values[f.name] = int(text)
        return cls(**values)


class _HeadTooLarge(Exception):
    """Raised in a parser callback to stop parsing a request whose headers pass a limit."""


def audited_protocol(
    audit: AuditLog, limits: RequestLimits = RequestLimits(), metrics: ServiceMetrics | None = None
) -> type[HttpToolsProtocol]:
    """uvicorn's HTTP protocol, with header limits (431) and the refusals it sends on its own written to the audit log
    (and counted in `metrics`)."""

    class AuditedHttpTools(HttpToolsProtocol):
        _in_head = False  # between a request's first byte and the end of its headers
        _head_bytes = 0
        _head_count = 0
        _too_large: str | None = None

        _parsed_bytes = 0  # of the request line and headers the parser has handed over, however they arrived

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._in_head, self._head_bytes, self._head_count, self._parsed_bytes = True, 0, 0, 0

        def on_url(self, url: bytes) -> None:
            self._parsed_bytes += len(url)
            super().on_url(url)

        def on_header(self, name: bytes, value: bytes) -> None:
            self._head_count += 1
            # headers that arrive whole in the read that also ends them are counted here (data_received only sees
            # what is still unfinished after a read)
            self._parsed_bytes += len(name) + len(value) + 4
            if self._head_count > limits.max_headers:
                self._too_large = f"more than {limits.max_headers} headers"
                raise _HeadTooLarge  # the parser stops; uvicorn answers through send_400_response
            if self._parsed_bytes > limits.max_header_bytes:
                self._too_large = f"request line and headers longer than {limits.max_header_bytes} bytes"
                raise _HeadTooLarge
            super().on_header(name, value)

        def on_headers_complete(self) -> None:
            self._in_head = False
            super().on_headers_complete()

        def data_received(self, data: bytes) -> None:
            if self.transport.is_closing():
                return
            super().data_received(data)
            if self._in_head and not self.transport.is_closing():
                # the parser holds an unfinished request line or header: count it before the next chunk arrives
                self._head_bytes += len(data)
                if self._head_bytes > limits.max_header_bytes:
                    self._too_large = f"request line and headers longer than {limits.max_header_bytes} bytes"
                    self.send_400_response(self._too_large)

        def send_400_response(self, msg: str) -> None:
            status, action = (
                (431, "refused:oversized_headers") if self._too_large else (400, "refused:unreadable_request")
            )
            reason = self._too_large or msg
            client = self.client[0] if getattr(self, "client", None) else None
            written = False
            try:
                audit.append(_refusal(action, reason, status=status, client=client))
                written = True
            finally:
                if metrics is not None:
                    metrics.audited(written=written)
                    metrics.refused(status, "unreadable_request" if status == 400 else None)
                if status == 400:
                    super().send_400_response(msg)
                else:
                    _send_431(self.transport, reason)

    return AuditedHttpTools


def _refusal(action: str, reason: str, *, status: int, client: str | None) -> AuditEvent:
    """The audit entry of a request refused before it reached the app (nobody is known yet)."""
    return AuditEvent(
        user=None,
        role=None,
        organisation=None,
        action=action,
        purpose=None,
        case_reference=None,
        query={"reason": reason},
        citizen_ids=[],
        fields=[],
        status=status,
        authorisation_rule=None,
        client=client,
    )


def _send_431(transport, reason: str) -> None:
    """Answer 431 with the reason and close the connection (uvicorn has no helper for it)."""
    body = reason.encode("ascii")
    transport.write(
        b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain; charset=utf-8\r\n"
        b"content-length: " + str(len(body)).encode("ascii") + b"\r\nconnection: close\r\n\r\n" + body
    )
    transport.close()


def run_server(
    app: FastAPI, *, host: str, port: int, sockets: list | None = None, handed: HandedOver | None = None
) -> None:
    """Serve `app` until stopped. What the process holds by now (modules, the app, its models) lives as long as it
    does: it is frozen out of the garbage collector's full passes, which no longer walk it. Measured at 1M with 8
    clients: full collections paused a worker for 68-70 ms, a burst of stalled requests that put the profile's p95
    at 76-84 ms; frozen, no pause over 5 ms and p95 18 ms."""
    gc.collect()  # what is garbage now is collected, not frozen
    gc.freeze()
    if (parts := getattr(app.state, "parts", None)) is not None:  # resolve's view read with each view opened (~4 s
        # at 1M, in the store's switch thread), not by the first record a caseworker sends
        from citizen_view.serving.resolve import warm_up

        parts.views.on_switch.append(warm_up)
    config = server_config(app, host=host, port=port)
    if handed is not None:  # a worker: connections come from the parent (workers.py), no socket of its own
        HandedOverServer(config, handed).run()
        return
    uvicorn.Server(config).run(sockets=sockets)


def server_config(app: FastAPI, *, host: str, port: int, log_level: str = "warning", **options: Any) -> uvicorn.Config:
    """The uvicorn configuration for the service: one worker (one audit-log writer), no proxy headers trusted, the
    app's request limits."""
    limits = getattr(app.state, "limits", None) or RequestLimits.from_environment()
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        workers=1,
        proxy_headers=False,
        server_header=False,
        http=audited_protocol(app.state.audit, limits, getattr(app.state, "metrics", None)),
        **options,
    )


@dataclass(frozen=True)
class HandedOver:
    """How a worker receives its connections: the parent accepts each one and sends its descriptor over `channel` (a
    Unix socket of this worker's own); `closed` is called once for each of them that closes, so the parent, which
    counts what it sent, knows how many this worker holds (workers.py)."""

    channel: socket.socket
    closed: Callable[[], None]


class HandedOverServer(uvicorn.Server):
    """uvicorn listening on no socket: it serves the connections handed over to it (`HandedOver`), each adopted into
    the event loop as if it had accepted it. When the parent is gone (its end of the channel closed) it shuts down.

    Every adopted connection is counted closed exactly once (the parent balances on those counts): by the protocol
    that holds it when it closes (an upgrade to WebSocket hands the connection to another protocol, counted too), or
    here when it could not be adopted or its descriptor did not arrive."""

    def __init__(self, config: uvicorn.Config, handed: HandedOver) -> None:
        super().__init__(config)
        self.handed = handed
        self._protocol: Callable[[], asyncio.Protocol] | None = None

    async def startup(self, sockets: list | None = None) -> None:
        await super().startup(sockets=[])  # the app's lifespan and the server's state; nothing to listen on
        config, closed = self.config, self.handed.closed

        def counted(protocol_class: type) -> type:
            class Counted(protocol_class):  # type: ignore[misc,valid-type]
                def connection_lost(self, exc: Exception | None) -> None:
                    try:
                        super().connection_lost(exc)
                    finally:
                        closed()

            return Counted

        http = counted(config.http_protocol_class)
        if config.ws_protocol_class is not None:  # an upgrade's connection is lost by the WebSocket protocol
            config.ws_protocol_class = counted(config.ws_protocol_class)
        loop = asyncio.get_running_loop()
        self._protocol = lambda: http(
            config=config, server_state=self.server_state, app_state=self.lifespan.state, _loop=loop
        )
        self.handed.channel.setblocking(False)
        loop.add_reader(self.handed.channel.fileno(), self._take, loop)

    def _take(self, loop: asyncio.AbstractEventLoop) -> int:
        """Adopt every connection waiting on the channel; how many."""
        adopted = 0
        while True:
            try:
                message, fds, _flags, _address = socket.recv_fds(self.handed.channel, 1, 16)
            except BlockingIOError:
                return adopted
            except OSError:
                message, fds = b"", []
            if not message and not fds:  # the parent closed its end (it is stopping or gone), or this worker stops
                loop.remove_reader(self.handed.channel.fileno())
                self.should_exit = True
                return adopted
            if not fds:  # handed over, but no descriptor arrived (this process has none free): the kernel closed it
                log.warning("a connection handed to this worker arrived without its descriptor (out of descriptors?)")
                self.handed.closed()
            for fd in fds:
                connection = socket.socket(fileno=fd)
                connection.setblocking(False)
                loop.create_task(self._adopt(loop, connection))
                adopted += 1

    async def _adopt(self, loop: asyncio.AbstractEventLoop, connection: socket.socket) -> None:
        assert self._protocol is not None
        try:
            await loop.connect_accepted_socket(self._protocol, connection, ssl=self.config.ssl)
        except OSError:  # the client went away before it was adopted: no protocol, so count its close here
            connection.close()
            self.handed.closed()

    async def shutdown(self, sockets: list | None = None) -> None:
        """Take no more connections (the parent's next hand-over to this worker fails, and goes to another), serve
        those already handed over, then shut down as uvicorn does (in-flight requests are answered)."""
        loop = asyncio.get_running_loop()
        loop.remove_reader(self.handed.channel.fileno())
        with contextlib.suppress(OSError):
            self.handed.channel.shutdown(socket.SHUT_RD)
        if self._protocol is not None and self._take(loop):
            await asyncio.sleep(0.1)  # their requests are read and begin: uvicorn's shutdown lets a begun one finish
        await super().shutdown(sockets=sockets)

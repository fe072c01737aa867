"""Running the caseworker service: uvicorn set up so that every response it sends is audited.

uvicorn answers some requests itself, before the application sees them: a request line or headers too
large or malformed get "400 Invalid HTTP request" from the HTTP parser. Those refusals are audited
too, by the HTTP protocol class below. Proxy headers are off: the client address in the audit log is
the socket's, unless the request comes from a configured trusted proxy (see `client_address`).
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from citizen_view.audit import AuditEvent

if TYPE_CHECKING:
    from fastapi import FastAPI

    from citizen_view.audit import AuditLog


def audited_protocol(audit: AuditLog) -> type[HttpToolsProtocol]:
    """uvicorn's HTTP protocol, with the 400s it sends on its own written to the audit log."""

    class AuditedHttpTools(HttpToolsProtocol):
        def send_400_response(self, msg: str) -> None:
            client = self.client[0] if getattr(self, "client", None) else None
            try:
                audit.append(
                    AuditEvent(
                        user=None, role=None, organisation=None, action="refused:unreadable_request", purpose=None,
                        case_reference=None, query={"reason": msg}, citizen_ids=[], fields=[], status=400,
                        authorisation_rule=None, client=client,
                    )  # fmt: skip
                )
            finally:
                super().send_400_response(msg)

    return AuditedHttpTools


def server_config(app: FastAPI, *, host: str, port: int, log_level: str = "warning", **options: Any) -> uvicorn.Config:
    """The uvicorn configuration for the service: one worker (one audit-log writer), no proxy headers trusted."""
    return uvicorn.Config(
        app, host=host, port=port, log_level=log_level, workers=1, proxy_headers=False, server_header=False,
        http=audited_protocol(app.state.audit), **options,
    )  # fmt: skip


def client_address(peer: str | None, forwarded_for: str | None, trusted: frozenset[str]) -> str | None:
    """The address to audit: the socket peer, or, when the peer is a trusted proxy, the nearest untrusted hop
    of its X-Forwarded-For (a client can write anything into that header; only trusted proxies' additions count)."""
    if peer is None or not forwarded_for or not _trusted(peer, trusted):
        return peer
    hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, trusted):
            return hop if _is_address(hop) else peer
    return hops[0] if hops and _is_address(hops[0]) else peer


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return False


def _trusted(address: str, trusted: frozenset[str]) -> bool:
    if address in trusted:
        return True
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    for entry in trusted:
        try:
            if ip in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False

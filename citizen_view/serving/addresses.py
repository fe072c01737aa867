"""Who sent a request: the socket's peer, or the client a trusted proxy names (audited, and counted by the sign-in
throttle)."""

from __future__ import annotations

import ipaddress


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

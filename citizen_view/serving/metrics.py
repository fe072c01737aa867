"""The service's metrics in Prometheus text format: request latency by route, refusals by reason, audit writes and the
served view's age (prometheus_client).

No label can carry personal data: a route is its template (`/api/citizens/{citizen_id}`, never the path asked for),
a request no route matched is `unmatched`, a method outside the HTTP ones is `other`, and a refusal's reason is a
short code from `REASONS` (never an error message, a query or an input value).

With several workers (`serve --workers N`) each process writes its values to files in one folder, named in
PROMETHEUS_MULTIPROC_DIR before prometheus_client is first imported (prometheus_client's multiprocess mode), and
whichever worker answers a scrape sums every worker's files, those of workers that died included, so counters never
go back. The view's age is no stored value: it is read from the served view at scrape time, the same in every worker.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from typing import Any

from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, CollectorRegistry, Counter, Histogram, generate_latest, values
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

from citizen_view.contract import ConfigError
from citizen_view.serving.deps import COOKIE

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
METRICS_TOKEN_ENV = "CITIZEN_VIEW_METRICS_TOKEN"  # the bearer token a scraper sends; unset: /metrics is off
MIN_TOKEN_LENGTH = 16
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
UNMATCHED = "unmatched"  # no route matched (a 404, or refused before routing): the path asked for is no label
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# A refusal's reason by its status; the app names a more precise one in the request's trail where it knows it.
REASONS = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    422: "invalid_input",
    429: "too_many_requests",
    431: "headers_too_large",
}
# The precise reasons the app may name (Trail.refusal): a closed list, so a label can only ever be one of these.
NAMED_REASONS = frozenset(
    {"no_purpose", "no_token", "unknown_token", "unreadable_request", "metrics_token", "metrics_off", "throttled"}
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]]


class ServiceMetrics:
    """The metrics of one service: in this process's memory, or in the multiprocess folder when one is named."""

    def __init__(self, view_age: Callable[[], float | None]) -> None:
        self.folder = os.environ.get(MULTIPROC_ENV) or None
        if self.folder and values.ValueClass is values.MutexValue:
            raise ConfigError(
                f"{MULTIPROC_ENV} was set after prometheus_client was imported: each worker would count alone "
                "(set it before the service starts)"
            )
        # In multiprocess mode the values live in the folder's files, so the objects belong to no registry.
        self._own = None if self.folder else CollectorRegistry()
        self.view_age = ViewAge(view_age)
        self.latency = Histogram(
            "citizen_view_request_duration_seconds",
            "Time from a request's arrival to the end of its answer, by method and route template.",
            ["method", "route"],
            registry=self._own,
        )
        self.refusals = Counter(
            "citizen_view_refusals",
            "Requests answered 4xx, by status and a short reason.",
            ["status", "reason"],
            registry=self._own,
        )
        self.audit_writes = Counter(
            "citizen_view_audit_writes",
            "Audit log entries this service wrote (written) or could not write (failed).",
            ["outcome"],
            registry=self._own,
        )
        if self._own is not None:
            self._own.register(self.view_age)

    def refused(self, status: int, reason: str | None = None) -> None:
        """Count a 4xx answer; `reason` when it is one of NAMED_REASONS, else the status's own."""
        named = reason if reason in NAMED_REASONS else None
        self.refusals.labels(str(status), named or REASONS.get(status, "other")).inc()

    def audited(self, *, written: bool) -> None:
        self.audit_writes.labels("written" if written else "failed").inc()

    def exposition(self) -> bytes:
        """Every metric in Prometheus text format: this process's, or every worker's summed."""
        if self._own is not None:
            return generate_latest(self._own)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=self.folder)
        registry.register(self.view_age)
        return generate_latest(registry)


class ViewAge:
    """The served view's age in seconds, read when scraped (no sample before the first view is published)."""

    def __init__(self, age: Callable[[], float | None]) -> None:
        self.age = age

    def describe(self) -> Iterator[Metric]:
        yield self._family()

    def collect(self) -> Iterator[Metric]:
        family = self._family()
        age = self.age()
        if age is not None:
            family.add_metric([], age)
        yield family

    @staticmethod
    def _family() -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "citizen_view_served_view_age_seconds", "Seconds since the view the service answers from was published."
        )


class MeasureRequests:
    """Times every HTTP request by route template and counts its refusal; outside the audit layer, so it sees the
    status actually sent (a 500 or 503 that replaced an answer that could not be audited included)."""

    def __init__(self, app: ASGIApp, *, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), 500

        async def send_measured(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_measured)
        finally:
            self._observe(scope, status, time.perf_counter() - started)

    def _observe(self, scope: Scope, status: int, seconds: float) -> None:
        route = getattr(scope.get("route"), "path", None) or UNMATCHED
        method = scope.get("method", "GET") if scope.get("method") in METHODS else "other"
        self.metrics.latency.labels(method, route).observe(seconds)
        if 400 <= status < 500:
            trail = scope.get("state", {}).get("trail")
            reason = getattr(trail, "refusal", None) or (_credentials(scope) if status == 401 else None)
            self.metrics.refused(status, reason)


def _credentials(scope: Scope) -> str:
    """Why a 401: no token was sent, or the one sent is unknown."""
    for key, value in scope.get("headers", []):
        if key == b"authorization" or (key == b"cookie" and f"{COOKIE}=".encode() in value):
            return "unknown_token"
    return "no_token"

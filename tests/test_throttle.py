"""Failed sign-ins per address: the throttle's own rule, then on a real service on loopback (429, Retry-After,
audited, per address, a right token refused too while it lasts)."""

from __future__ import annotations

import json

import httpx
import pytest

from citizen_view.serving.throttle import SignInThrottle
from tests.service_fixtures import TOKENS, start_service
from tests.test_service_health import PURPOSE, _a_citizen, linked  # noqa: F401 - the module's linked warehouse


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_address_is_refused_after_the_limit_until_its_oldest_failure_leaves_the_window():
    clock = Clock()
    throttle = SignInThrottle(limit=3, window=60, clock=clock)
    for _ in range(2):
        throttle.failed("10.0.0.1")
        clock.now += 1
    assert throttle.retry_after("10.0.0.1") is None  # 2 of 3: a caseworker who mistyped twice goes on
    throttle.failed("10.0.0.1")
    assert throttle.retry_after("10.0.0.1") == 58  # the first failure leaves the window at 1060; it is now 1002
    assert throttle.retry_after("10.0.0.2") is None  # another address is not affected
    clock.now = 1060.0
    assert throttle.retry_after("10.0.0.1") is None


def test_memory_stays_bounded_when_failures_come_from_many_addresses():
    throttle = SignInThrottle(limit=2, window=60, kept=100, clock=Clock())
    for n in range(1000):
        throttle.failed(f"10.0.{n // 256}.{n % 256}")
    assert len(throttle._failures) == 100
    with pytest.raises(ValueError):
        SignInThrottle(limit=-1)


def test_a_limit_of_zero_turns_the_throttle_off():
    throttle = SignInThrottle(limit=0, clock=Clock())
    for _ in range(100):
        throttle.failed("10.0.0.1")
    assert throttle.retry_after("10.0.0.1") is None and not throttle._failures


def test_a_token_guesser_is_refused_with_429_and_audited_while_others_go_on(linked, tmp_path):  # noqa: F811
    audit_log = tmp_path / "audit" / "access.jsonl"
    svc = start_service(linked, audit_log, trusted_proxies=["127.0.0.1"])  # so X-Forwarded-For names the client
    citizen = _a_citizen(linked)
    url = f"{svc.url}/api/citizens/{citizen}"

    def ask(token: str, address: str) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}", "X-Forwarded-For": address}
        return httpx.get(url, params=PURPOSE, headers=headers, timeout=30)

    try:
        guesses = [ask(f"guess-{n}", "203.0.113.9").status_code for n in range(10)]
        refused = ask("guess-10", "203.0.113.9")
        right_token = ask(TOKENS["benefits_caseworker"], "203.0.113.9")
        elsewhere = ask(TOKENS["benefits_caseworker"], "198.51.100.4")
        form = httpx.post(
            f"{svc.url}/login", data={"token": "guess-11"}, headers={"X-Forwarded-For": "203.0.113.9"}, timeout=30
        )
    finally:
        svc.stop()
    assert guesses == [401] * 10
    assert refused.status_code == 429 and 1 <= int(refused.headers["Retry-After"]) <= 60
    assert "too many unknown tokens" in refused.json()["error"]
    assert right_token.status_code == 429 and citizen not in right_token.text  # no answer tells a right guess apart
    assert elsewhere.status_code == 200  # a caseworker at another address is not held up
    assert form.status_code == 429  # the sign-in form counts the same way
    entries = [json.loads(line) for line in audit_log.read_text(encoding="utf-8").splitlines()]
    throttled = [e for e in entries if e["status"] == 429]
    assert len(throttled) == 3 and {e["client"] for e in throttled} == {"203.0.113.9"}

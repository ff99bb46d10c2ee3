"""The seam between cio-sync and urllib3's Retry: each hook PacedRetry overrides, checked against
the urllib3 that is installed (a change in urllib3's internals fails here first)."""

from __future__ import annotations

import base64

import pytest
import urllib3
from urllib3.response import HTTPResponse

from cio_sync.emulator import Emulator
from cio_sync.pacing import Gate
from cio_sync.retry import PacedRetry, backoff

from .conftest import API_KEY, SITE_ID


def answer(status: int, retry_after: str | None = None) -> HTTPResponse:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    return HTTPResponse(body=b"", headers=headers, status=status, preload_content=False)


def paced(gate: Gate, status: int = 2, rate_limited: int = 0, retry_after_cap: float = 300.0) -> PacedRetry:
    return PacedRetry(
        total=None,
        status=status,
        status_forcelist={429, 500},
        backoff_factor=0,
        gate=gate,
        rate_limited=rate_limited,
        retry_after_cap=retry_after_cap,
    )


def test_increment_carries_the_gate_and_budgets_into_the_next_retry() -> None:
    gate = Gate()
    retry = paced(gate, rate_limited=3, retry_after_cap=7.5)
    following = retry.increment("PUT", "/x", response=answer(500))
    assert isinstance(following, PacedRetry)
    assert (following.gate, following.rate_limited, following.retry_after_cap) == (gate, 3, 7.5)
    assert following.status == 1
    assert len(following.history) == 1


def test_a_429_spends_its_own_budget_first() -> None:
    retry = paced(Gate(), rate_limited=1)
    spared = retry.increment("PUT", "/x", response=answer(429))
    assert (spared.status, spared.rate_limited) == (2, 0)
    counted = spared.increment("PUT", "/x", response=answer(429))
    assert (counted.status, counted.rate_limited) == (1, 0)


def test_a_429_pauses_everyone_and_a_500_only_its_own_request() -> None:
    shared = Gate()
    shared.succeeded()  # a 429 after an accepted request is news about the rate
    paced(shared).sleep(answer(429, retry_after="0"))
    assert shared.rate is not None  # throttled: the gate now paces every worker
    alone = Gate()
    paced(alone).sleep(answer(500))
    assert alone.rate is None


@pytest.mark.parametrize(("value", "expected"), [("0.25", 0.25), ("9999", 1.5), ("soon", None), ("-1", None)])
def test_retry_after_is_read_leniently_and_capped(value: str, expected: float | None) -> None:
    assert paced(Gate(), retry_after_cap=1.5).get_retry_after(answer(429, retry_after=value)) == expected


def test_backoff_grows_and_stays_under_its_cap() -> None:
    assert backoff(0, 30, 3) == 0.0
    assert 0.5 <= backoff(1.0, 30, 1) <= 1.0
    assert 2.0 <= backoff(1.0, 30, 3) <= 4.0
    assert 15.0 <= backoff(1.0, 30, 10) <= 30.0


def test_urllib3_drives_the_overrides_over_a_real_socket() -> None:
    with Emulator(SITE_ID, API_KEY) as emulator:
        emulator.add_fault(status=429, retry_after="0", times=2)
        gate = Gate()
        retry = paced(gate, status=0, rate_limited=2)
        token = base64.b64encode(f"{SITE_ID}:{API_KEY}".encode()).decode()
        with urllib3.PoolManager(retries=retry) as pool:
            response = pool.request(
                "PUT",
                emulator.url + "/api/v1/customers/p1",
                body=b'{"name": "Ada"}',
                headers={"Authorization": f"Basic {token}", "Content-Type": "application/json"},
            )
        assert response.status == 200  # two 429s resent on their own budget, with no status budget at all
        assert [r.status for r in emulator.requests()] == [429, 429, 200]
        assert response.retries is not None and isinstance(response.retries, PacedRetry)
        assert response.retries.gate is gate
        assert gate.resends == 2  # both resends waited their turn at the gate

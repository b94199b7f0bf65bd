"""Rate-limit pacing (_pacing: RateBudget and Admission, via Core.admit/settle) and its use by
the clients: requests spaced by the X-RateLimit-* budget the server reports, shared by every call
of a client, so that a pool of calls runs at the server's rate instead of into 429s.

Core tests run on the shared fake clock (tests/helpers); a few end-to-end tests run the
clients against the simulator's token-bucket limiter.
"""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Callable, Generator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from helpers import FakeClock, FlowDriver, simulator

from hostup_pulumi import (
    AgentAvailability,
    AsyncHostupClient,
    HostupClient,
    RateLimitError,
    Settings,
)
from hostup_pulumi._core import Core
from hostup_pulumi._pacing import RateBudget, rate_observation
from hostup_pulumi._retry import RetryPolicy
from hostup_pulumi._steps import Send, Sleep
from hostup_pulumi.testing import Fault

KEY = "hk_test_pacing_0123456789"
BASE = "https://api.example.test"
VID = "vps_01hxa3b4c5d6e7f8g9h0j1k2m3"
OK_PROBE = {"available": True, "reason": None, "vmRunning": True}


def make_core(clock: FakeClock, *, max_retries: int = 2) -> Core:
    settings = Settings.resolve(api_key=KEY, base_url=BASE, env={})
    return Core(
        settings,
        retry=RetryPolicy(max_retries=max_retries),
        rng=random.Random(7),
        clock=clock,
        now=clock.wall,
    )


def iso(clock: FakeClock, seconds_from_now: float) -> str:
    """An X-RateLimit-Reset value, ISO 8601 with milliseconds as HostUp sends it."""
    when = clock.wall() + timedelta(seconds=seconds_from_now)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def budget_headers(clock: FakeClock, limit: int, remaining: int, reset_in: float) -> dict[str, str]:
    return {
        "X-RateLimit-Limit": str(limit),
        "X-RateLimit-Remaining": str(remaining),
        "X-RateLimit-Reset": iso(clock, reset_in),
    }


def ok(clock: FakeClock, limit: int, remaining: int, reset_in: float) -> httpx.Response:
    return httpx.Response(
        200, json=OK_PROBE, headers=budget_headers(clock, limit, remaining, reset_in)
    )


class Bucket:
    """A token bucket like the simulator's, on the fake clock: X-RateLimit-Reset is when the
    bucket is full again, or (on a 429) when the next token arrives."""

    def __init__(self, clock: FakeClock, rate: float, burst: int) -> None:
        self.clock, self.rate, self.burst = clock, rate, burst
        self.tokens, self.stamp = float(burst), clock.t
        self.statuses: list[int] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        now = self.clock.t
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            wait = (self.burst - self.tokens) / self.rate
            status, extra = 200, {}
        else:
            wait = (1 - self.tokens) / self.rate
            status, extra = 429, {"Retry-After": str(max(1, int(wait + 0.999999)))}
        self.statuses.append(status)
        headers = {**budget_headers(self.clock, self.burst, int(self.tokens), wait), **extra}
        body = OK_PROBE if status == 200 else {"status": 429, "code": "rate_limited"}
        return httpx.Response(status, json=body, headers=headers)


def drive(
    clock: FakeClock, flow: Generator[Any, Any, Any], answer: Callable[[httpx.Request], Any]
) -> tuple[Any, list[Sleep]]:
    """Run one flow to the end on ``clock``; return its result and its sleeps."""
    driver = FlowDriver(answer, clock)
    return driver.run(flow), driver.steps


def probe(core: Core) -> Generator[Any, Any, AgentAvailability]:
    return core.get_agent_availability(VID)


# -- reading the headers ----------------------------------------------------------------------


def test_a_report_needs_all_three_usable_headers() -> None:
    clock = FakeClock()
    full = httpx.Headers(budget_headers(clock, 20, 7, 1.5))
    report = rate_observation(full, clock.t, clock.wall())
    assert report is not None
    assert (report.limit, report.remaining) == (20, 7)
    assert report.reset_at == pytest.approx(1.5)
    for missing in ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"):
        headers = httpx.Headers({k: v for k, v in full.items() if k.lower() != missing.lower()})
        assert rate_observation(headers, 0.0, clock.wall()) is None
    for bad in ({"X-RateLimit-Remaining": "lots"}, {"X-RateLimit-Remaining": "21"},
                {"X-RateLimit-Limit": "0"}, {"X-RateLimit-Reset": "soon"}):  # fmt: skip
        headers = httpx.Headers({**dict(full.items()), **bad})
        assert rate_observation(headers, 0.0, clock.wall()) is None


# -- the budget alone ---------------------------------------------------------------------------

MARGIN = RateBudget.MARGIN


def report(clock: FakeClock, limit: int, remaining: int, reset_in: float) -> Any:
    headers = httpx.Headers(budget_headers(clock, limit, remaining, reset_in))
    return rate_observation(headers, clock.t, clock.wall())


def answer(
    budget: RateBudget, clock: FakeClock, limit: int, remaining: int, reset_in: float
) -> None:
    """One request admitted now and answered with this report."""
    budget.settle(budget.admit(clock.t), report(clock, limit, remaining, reset_in))


def test_without_a_report_nothing_is_paced() -> None:
    budget = RateBudget()
    assert budget.wait(0.0) == 0.0
    budget.settle(budget.admit(0.0), None)  # answered, without rate-limit headers
    for _ in range(100):
        assert budget.wait(0.0) == 0.0
        budget.admit(0.0)


def test_until_the_first_answer_the_others_wait_for_it_briefly() -> None:
    budget = RateBudget()
    first = budget.admit(0.0)
    assert 0 < budget.wait(0.0) <= RateBudget.FIRST_POLL
    assert budget.wait(RateBudget.FIRST_HOLD) == 0.0  # a slow first answer holds no longer
    budget.settle(first, None)
    assert budget.wait(0.0) == 0.0


def test_fixed_window_remaining_zero_waits_until_reset() -> None:
    clock, budget = FakeClock(), RateBudget()
    # Two reports of one window: the same Reset, less remaining. Not a refilling bucket.
    answer(budget, clock, 10, 1, 30.0)
    clock.t = 1.0
    answer(budget, clock, 10, 0, 29.0)
    assert budget.refills is False
    assert budget.wait(clock.t) == pytest.approx(29.0 + MARGIN)
    clock.t = 20.0
    assert budget.wait(clock.t) == pytest.approx(10.0 + MARGIN)  # nothing back before Reset
    clock.t = 30.0
    assert budget.wait(clock.t) == 0.0  # the whole budget is back


def test_a_refilling_bucket_waits_one_token_not_until_reset() -> None:
    clock, budget = FakeClock(), RateBudget()
    # Rate 100/s, burst 20: Reset (bucket full) moves on with every request.
    answer(budget, clock, 20, 1, 0.19)
    clock.t = 0.001
    answer(budget, clock, 20, 0, 0.199)
    assert budget.refills is True
    # 20 tokens over 0.199 s: the next one is expected ~10 ms after the report.
    assert budget.wait(clock.t) == pytest.approx(0.199 / 20 + MARGIN, rel=0.01)
    clock.t += 0.2
    assert budget.wait(clock.t) == 0.0


def test_a_fixed_window_after_a_refilling_report_is_recognised_again() -> None:
    clock, budget = FakeClock(), RateBudget()
    answer(budget, clock, 20, 5, 0.15)
    answer(budget, clock, 20, 5, 0.16)
    assert budget.refills is True
    answer(budget, clock, 20, 4, 0.16)
    assert budget.refills is False


def test_requests_in_flight_count_against_the_report() -> None:
    clock, budget = FakeClock(), RateBudget()
    answer(budget, clock, 10, 3, 30.0)
    assert budget.wait(0.0) == 0.0
    tickets = [budget.admit(0.0) for _ in range(3)]  # may each spend one of the 3 left
    assert budget.wait(0.0) == pytest.approx(30.0 + MARGIN)
    # A transport error: the request is over without a report; it stops counting.
    budget.settle(tickets[0], None)
    assert budget.wait(0.0) == 0.0


def test_the_newest_report_is_the_one_counted_last_not_answered_last() -> None:
    # Concurrent requests: the server counted them in one order, answers come in another.
    clock, budget = FakeClock(), RateBudget()
    tickets = [budget.admit(0.0) for _ in range(3)]
    # A refilling bucket: each count moves "full again" (Reset) 10 ms on.
    budget.settle(tickets[2], report(clock, 20, 1, 0.19))  # counted last, answered first
    budget.settle(tickets[0], report(clock, 20, 3, 0.17))  # counted first
    budget.settle(tickets[1], report(clock, 20, 2, 0.18))
    # Still "1 left" (a stale report must not bring back the 2 or 3 of earlier counts).
    assert budget.wait(0.0) == 0.0
    budget.admit(0.0)
    assert budget.wait(0.0) > 0


def test_requests_in_flight_when_the_report_came_count_against_it() -> None:
    clock, budget = FakeClock(), RateBudget()
    early = [budget.admit(0.0) for _ in range(5)]
    # The server may have counted the other four before this answer, or not yet.
    budget.settle(early[-1], report(clock, 10, 4, 30.0))
    assert budget.wait(0.0) > 0
    for ticket in early[:-1]:  # they come back, counted before (an older Reset is no news)
        budget.settle(ticket, report(clock, 10, 5, 29.0))
    assert budget.wait(0.0) == 0.0


def test_an_older_report_does_not_replace_a_newer_one() -> None:
    clock, budget = FakeClock(), RateBudget()
    first, second = budget.admit(0.0), budget.admit(0.0)
    budget.settle(second, report(clock, 10, 0, 30.0))
    budget.settle(first, report(clock, 10, 1, 30.0))  # same window, more left: counted earlier
    assert budget.wait(0.0) == pytest.approx(30.0 + MARGIN)


def test_more_in_flight_than_the_whole_budget_polls_briefly() -> None:
    clock, budget = FakeClock(), RateBudget()
    answer(budget, clock, 2, 2, 0.0)
    budget.admit(0.0)
    budget.admit(0.0)
    wait = budget.wait(5.0)  # long after Reset, yet both requests may still spend the budget
    assert 0 < wait <= 1.0


# -- the core: admission in every request flow -----------------------------------------------


def test_the_core_paces_a_pool_of_calls_at_the_bucket_rate_without_429s() -> None:
    clock = FakeClock()
    core = make_core(clock)
    bucket = Bucket(clock, rate=100.0, burst=20)
    for _ in range(200):
        drive(clock, probe(core), bucket)
    assert bucket.statuses.count(429) == 0
    assert len(bucket.statuses) == 200
    # The first 20 come out of the burst; the other 180 at ~100/s.
    assert 1.8 <= clock.t <= 1.8 * 1.1


def test_pacing_waits_are_admission_sleeps() -> None:
    clock = FakeClock()
    core = make_core(clock)
    drive(clock, probe(core), lambda r: ok(clock, 10, 0, 5.0))
    _, sleeps = drive(clock, probe(core), lambda r: ok(clock, 10, 9, 5.0))
    assert [s.seconds for s in sleeps] == [pytest.approx(5.0 + MARGIN)]
    assert sleeps[0].admission is True
    assert Sleep(5.0, admission=True) == Sleep(5.0)  # the flag is advice to the shell only


def test_a_429_still_waits_the_servers_retry_after() -> None:
    clock = FakeClock()
    core = make_core(clock)
    limited = httpx.Response(
        429,
        json={"status": 429, "code": "rate_limited"},
        headers={**budget_headers(clock, 10, 0, 0.05), "Retry-After": "2"},
    )
    answers = [limited, ok(clock, 10, 9, 0.1)]
    result, sleeps = drive(clock, probe(core), lambda r: answers.pop(0))
    assert result.available
    assert sum(s.seconds for s in sleeps) == pytest.approx(2.0)


def test_a_pacing_wait_beyond_the_longest_server_wait_sends_anyway() -> None:
    clock = FakeClock()
    core = make_core(clock, max_retries=0)
    # Spent until an hour from now: no silent hour-long sleep; the server's 429 decides.
    drive(clock, probe(core), lambda r: ok(clock, 10, 0, 3600.0))
    limited = httpx.Response(429, json={"status": 429}, headers={"Retry-After": "3600"})
    with pytest.raises(RateLimitError):
        drive(clock, probe(core), lambda r: limited)
    assert clock.t == 0.0


def test_a_closed_flow_gives_its_place_back() -> None:
    clock = FakeClock()
    core = make_core(clock)
    drive(clock, probe(core), lambda r: ok(clock, 2, 1, 30.0))
    flow = probe(core)
    assert isinstance(flow.send(None), Send)  # admitted: spends the last of the budget
    assert core.admit()[0] > 0
    flow.close()  # cancelled while its request was in flight
    wait, ticket = core.admit()
    assert (wait, ticket > 0) == (0.0, True)


def test_admission_is_thread_safe() -> None:
    clock = FakeClock()
    core = make_core(clock)
    drive(clock, probe(core), lambda r: ok(clock, 1000, 50, 30.0))
    admitted: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(40):
            wait, ticket = core.admit()
            if wait == 0:
                with lock:
                    admitted.append(ticket)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Exactly the 50 left were handed out, each once.
    assert len(admitted) == len(set(admitted)) == 50


# -- the clients against the simulator's limiter ---------------------------------------------


def test_sync_client_spaces_its_calls_instead_of_meeting_a_429() -> None:
    with simulator(rate_limit=20.0, burst=2) as sim:
        target = sim.add_vps(name="web-01")
        with HostupClient(sim.api_key, base_url=sim.base_url) as client:
            for _ in range(4):
                assert client.get_agent_availability(target).available
        statuses = [r.status for r in sim.requests]
    assert statuses == [200] * 4


def test_async_pool_runs_at_the_server_rate_without_429s() -> None:
    with simulator(rate_limit=50.0, burst=5, latency=0.01) as sim:
        ids = [sim.add_vps(name=f"n{i:02d}") for i in range(40)]

        async def run() -> list[AgentAvailability]:
            async with AsyncHostupClient(sim.api_key, base_url=sim.base_url) as client:
                return await asyncio.gather(*(client.get_agent_availability(i) for i in ids))

        results = asyncio.run(run())
        statuses = [r.status for r in sim.requests]
        times = [r.time for r in sim.requests]
    assert all(r.available for r in results)
    assert statuses.count(429) == 0
    assert len(statuses) == 40
    # 5 from the burst, 35 at 50/s: at least 0.7 s, and not much more.
    assert 0.6 <= times[-1] - times[0] <= 2.5


def test_a_429_holds_back_calls_still_queued_for_a_slot() -> None:
    # The pool decides admission when a call holds a slot, so calls queued behind the one
    # limited see the gate too (not only those that had not started yet).
    with simulator(latency=0.02) as sim:
        ids = [sim.add_vps(name=f"n{i}") for i in range(6)]

        async def run() -> list[AgentAvailability]:
            async with AsyncHostupClient(
                sim.api_key, base_url=sim.base_url, max_concurrency=2
            ) as client:
                await client.get_agent_availability(ids[0])  # no rate-limit headers: no pacing
                sim.inject("probe", Fault.rate_limited(retry_after="0.4"))
                return await asyncio.gather(*(client.get_agent_availability(i) for i in ids))

        results = asyncio.run(run())
        log = sim.requests
    assert all(r.available for r in results)
    limited_at = next(r.time for r in log if r.status == 429)
    # Only the one request already in flight beside it may arrive during the server's wait.
    during = [r for r in log if limited_at < r.time < limited_at + 0.35]
    assert len(during) <= 1
    assert len(log) == 8

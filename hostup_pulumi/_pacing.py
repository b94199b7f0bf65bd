"""Pacing: when the next request may go.

A client's calls share one :class:`Admission`: the gate a 429 closes for the server's
``Retry-After``, and the :class:`RateBudget` read from the ``X-RateLimit-*`` headers of every
response, so that a pool of calls spends the budget at the rate it comes back. The waits'
poll schedules (:class:`PollSchedule`) live here too. No I/O here.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime

import httpx

from ._retry import parse_rate_limit_reset

__all__ = [
    "AVAILABILITY_POLL",
    "EXEC_POLL",
    "Admission",
    "PollSchedule",
    "RateBudget",
    "RateObservation",
    "rate_observation",
]


@dataclass(frozen=True)
class RateObservation:
    """What one response said about the rate-limit budget (``X-RateLimit-*``)."""

    limit: int
    remaining: int
    observed_at: float  # monotonic
    reset_at: float  # monotonic time by which the whole budget is back
    # When the server counted the request, in order: a later count has a later Reset (a
    # bucket's "full again" moves on with every request; a new window starts later) or,
    # within one Reset, fewer remaining. The answers of concurrent requests arrive in no
    # set order, so this, not their arrival, tells which report is the newest.
    order: tuple[float, int]


def rate_observation(headers: httpx.Headers, clock: float, now: datetime) -> RateObservation | None:
    """The budget a response reports, or None unless it carries all three usable headers."""
    try:
        limit = int(headers.get("x-ratelimit-limit", ""))
        remaining = int(headers.get("x-ratelimit-remaining", ""))
    except ValueError:
        return None
    until_reset = parse_rate_limit_reset(headers.get("x-ratelimit-reset"), now)
    if until_reset is None or limit < 1 or not 0 <= remaining <= limit:
        return None
    # Rounded to the header's millisecond, so one Reset read at two moments compares equal.
    order = (round(now.timestamp() + until_reset, 3), -remaining)
    return RateObservation(limit, remaining, clock, clock + until_reset, order)


class RateBudget:
    """Client-side pacing from the ``X-RateLimit-*`` headers of every response.

    The server reports its budget (``Limit``), what is left (``Remaining``) and when the whole
    budget is back (``Reset``). A request is admitted while the estimated budget covers it
    and every request still in flight; otherwise it waits until the budget is expected
    back. So a pool of calls spends the budget at the rate it returns instead of running
    into 429s, each of which costs a whole-second ``Retry-After``.

    The newest report is the one the server counted last (see ``RateObservation.order``).
    Every request in flight counts against it, as the server may not have counted it yet
    (erring on the slow side when it has). Requests that end without a report
    (transport errors) stop counting, so failures cannot leave the pool waiting forever.

    Between reports nothing comes back before Reset (a fixed window: Remaining=0 means wait
    until Reset), unless the reports show a bucket that refills continuously (Reset moves
    while the previous one is still ahead; a fixed window keeps one Reset per window): then
    the budget is taken to grow linearly from Remaining to Limit at Reset. That line lies
    below the true level of a token bucket (Remaining is rounded down), so the estimate errs
    on the slow side. A 429 still closes the :class:`Admission` gate for the server's
    ``Retry-After``; pacing only keeps 429s rare.

    Not thread-safe by itself: :class:`Admission` calls it under its lock.
    """

    #: Added to every pacing wait: the Reset header is rounded (to the millisecond), and the
    #: estimate is exact at its boundary.
    MARGIN = 0.002
    #: Until the first answer, other requests wait for it (polling this often, at most
    #: ``FIRST_HOLD`` seconds): one request learns the budget, rather than a whole pool
    #: running into 429s when the burst is smaller than the pool.
    FIRST_POLL = 0.01
    FIRST_HOLD = 1.0

    def __init__(self) -> None:
        self._latest: RateObservation | None = None
        self._refills = False
        self._tickets = 0
        self._in_flight: set[int] = set()
        self._answered = False
        self._first_sent_at = 0.0

    @property
    def refills(self) -> bool:
        """Whether the reports showed a continuously refilling bucket."""
        return self._refills

    def wait(self, now: float) -> float:
        """Seconds until one more request fits the estimated budget (0: it fits now)."""
        seen = self._latest
        if seen is None:
            if self._answered or not self._in_flight:
                return 0.0  # nothing to pace by (the 429 gate still applies)
            held = now - self._first_sent_at
            return 0.0 if held >= self.FIRST_HOLD else min(self.FIRST_POLL, self.FIRST_HOLD - held)
        needed = len(self._in_flight) + 1  # the level at which one more request fits
        span = seen.reset_at - seen.observed_at
        rate = (seen.limit - seen.remaining) / span if self._refills and span > 0 else 0.0
        if now >= seen.reset_at:
            level = float(seen.limit)
        else:
            level = min(seen.limit, seen.remaining + rate * (now - seen.observed_at))
        if level >= needed:
            return 0.0
        if needed > seen.limit:
            # More in flight than the whole budget (a limit below the concurrency): wait
            # for their answers to bring a newer report, a token's time at a time.
            return max(0.005, min(1.0, 1.0 / rate if rate else span / seen.limit))
        # A refilling bucket: when the line reaches the level needed; a window: its end.
        until = seen.observed_at + (needed - seen.remaining) / rate if rate else seen.reset_at
        return max(0.0, until - now) + self.MARGIN

    def admit(self, now: float) -> int:
        """Count a request as sent at ``now``; return its ticket for :meth:`settle`."""
        if self._tickets == 0:
            self._first_sent_at = now
        self._tickets += 1
        self._in_flight.add(self._tickets)
        return self._tickets

    def settle(self, ticket: int, report: RateObservation | None) -> None:
        """Request ``ticket`` is over; ``report`` is what its response said (None: nothing
        usable, or no response)."""
        self._in_flight.discard(ticket)
        self._answered = True
        previous = self._latest
        if report is None or (previous is not None and report.order <= previous.order):
            return  # counted before the newest report, so already in it
        if previous is not None and previous.reset_at > report.observed_at:
            # Reset moved while the previous one was still ahead: a refilling bucket.
            # Spent within one unchanged Reset: a fixed window.
            self._refills = report.order[0] != previous.order[0]
        self._latest = report


class Admission:
    """The 429 gate and the rate budget of one client, behind one lock (async tasks and
    threads may share a client)."""

    def __init__(self) -> None:
        # After a 429, every call waits until this (monotonic) time, so that a pool of
        # concurrent calls slows down together instead of each hammering on its own.
        self._gate_until = 0.0
        self._lock = threading.Lock()
        self._budget = RateBudget()

    def gate_wait(self, now: float) -> float:
        """How long a new attempt must wait because of a recent 429 (0 when none)."""
        with self._lock:
            return max(0.0, self._gate_until - now)

    def close_gate(self, seconds: float, now: float) -> None:
        """Hold back every call for ``seconds`` (a 429's wait)."""
        with self._lock:
            self._gate_until = max(self._gate_until, now + seconds)

    def admit(self, now: float, longest: float) -> tuple[float, int]:
        """``(seconds to wait, 0)`` while the gate is closed or the budget is spent, else
        ``(0, ticket)``: the request counts as sent, and :meth:`settle` must follow. A
        pacing wait over ``longest`` seconds is not waited: the server's answer decides."""
        with self._lock:
            wait = max(self._gate_until - now, 0.0)
            if wait <= 0:
                wait = self._budget.wait(now)
                if wait > longest:
                    wait = 0.0
            if wait > 0:
                return wait, 0
            return 0.0, self._budget.admit(now)

    def settle(self, ticket: int, report: RateObservation | None) -> None:
        """Request ``ticket`` is over; ``report`` is the budget its response gave, if any."""
        with self._lock:
            self._budget.settle(ticket, report)


@dataclass(frozen=True)
class PollSchedule:
    """When a wait polls: at once, then each poll ``first + growth * t`` seconds after the
    previous one was *sent* at ``t`` seconds into the wait (at most ``cap`` apart).

    Timed from the send, not from the answer, so a slow round trip does not add to the gap.
    With the exec defaults (0.5 s, 0.1) the polls go at t(k+1) = 1.1 t(k) + 0.5: the poll that
    first sees a command exited is sent within 0.1 T + 0.5 s of its exit at T, with the
    fewest polls that guarantee it (3, 9, 18 and 35 for T = 1, 5, 20 and 120 s).
    ``bench/poll.py`` measures it against the simulator.
    """

    first: float = 0.5
    growth: float = 0.1
    #: A safety bound on the gap, far above what a wait of minutes reaches.
    cap: float = 60.0

    def interval(self, elapsed: float) -> float:
        """The gap after a poll sent ``elapsed`` seconds after the wait began."""
        return min(self.cap, self.first + self.growth * max(0.0, elapsed))

    def next_poll(self, sent: float) -> float:
        """When (seconds into the wait) to send the poll after one sent at ``sent``."""
        return sent + self.interval(sent)


EXEC_POLL = PollSchedule()
AVAILABILITY_POLL = PollSchedule(first=1.0, growth=0.1, cap=10.0)

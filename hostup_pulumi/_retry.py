"""Retry rules: which failures are retried, and how long to wait first.

GET requests retry on connection errors, timeouts, 408, 429 and 5xx. The POST that starts a
command is retried only when it provably never reached the server (the connection was never
made) or on a 429 (the server refused it unrun). The wait is the server's when it gives one
(``Retry-After`` in seconds or as an HTTP date, else ``X-RateLimit-Reset``), otherwise
exponential backoff with jitter. 429s do not spend ``max_retries``: they are retried while
their waits add up to at most ``max_server_wait``. No I/O here.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

import httpx

from ._endpoints import Operation
from .errors import APIConnectionError, APIStatusError, HostupError

__all__ = [
    "RETRY_STATUSES",
    "RetryPolicy",
    "never_sent",
    "parse_rate_limit_reset",
    "parse_retry_after",
    "retried_by_waits",
    "retry_delay",
    "server_wait",
]

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """How many times to retry, and how long to wait: exponential backoff with jitter,
    unless the server says how long (``Retry-After``, then ``X-RateLimit-Reset``)."""

    max_retries: int = 2
    initial_delay: float = 0.5
    max_delay: float = 8.0
    jitter: float = 0.25
    # A server asking for a longer wait than this gets an error, not a silent long sleep.
    max_server_wait: float = 60.0

    def backoff(self, retry_number: int, rng: random.Random) -> float:
        """Delay before retry ``retry_number`` (0-based): capped exponential, minus up to
        ``jitter`` of itself so that many clients do not retry in step."""
        delay = min(self.max_delay, self.initial_delay * (2.0**retry_number))
        return delay * (1 - self.jitter * rng.random())

    def rate_limit_charge(self, delay: float) -> float:
        """What a 429's wait of ``delay`` costs of a request's ``max_server_wait``: at least
        ``initial_delay``, so that a server answering "Retry-After: 0" to every try is given
        up on (after 120 tries with the defaults)."""
        return max(delay, self.initial_delay)

    def gate_after(self, hinted: float | None, limited: int, rng: random.Random) -> float:
        """How long a client's calls wait after a 429 that is not retried: the server's
        wait when it is a sane one, else the backoff after ``limited`` earlier 429s."""
        if hinted is not None and hinted <= self.max_server_wait:
            return hinted
        return self.backoff(limited, rng)


# -- the server's requested wait ------------------------------------------------------------


def _seconds_until(when: datetime, now: datetime) -> float:
    # A time without a zone is taken as UTC, as the API's times are.
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - now).total_seconds())


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        return _seconds_until(when, now)
    return max(0.0, seconds) if math.isfinite(seconds) else None


def parse_rate_limit_reset(value: str | None, now: datetime) -> float | None:
    """Seconds until ``X-RateLimit-Reset``: an ISO 8601 time (documented); epoch seconds are
    tolerated too."""
    if not value:
        return None
    value = value.strip()
    try:
        number = float(value)
    except ValueError:
        try:
            when = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            return None
        return _seconds_until(when, now)
    if not math.isfinite(number):
        return None
    # A large number is an epoch time; a small one is a delay.
    return max(0.0, number - now.timestamp()) if number > 1e9 else max(0.0, number)


def server_wait(headers: httpx.Headers, now: datetime) -> float | None:
    """The wait the server asked for: ``Retry-After`` first, else ``X-RateLimit-Reset``."""
    wait = parse_retry_after(headers.get("retry-after"), now)
    if wait is None:
        wait = parse_rate_limit_reset(headers.get("x-ratelimit-reset"), now)
    return wait


# -- which failures retry -------------------------------------------------------------------


def never_sent(exc: Exception) -> bool:
    """Whether the connection was never made, so the request cannot have reached the server."""
    return isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)


def _transport_retryable(exc: httpx.TransportError) -> bool:
    # Errors in our own request (bad URL, protocol misuse) will not fix themselves.
    return not isinstance(exc, httpx.UnsupportedProtocol | httpx.LocalProtocolError)


def retry_delay(
    policy: RetryPolicy,
    op: Operation,
    retry_number: int,
    outcome: httpx.Response | Exception,
    *,
    clock: float,
    now: datetime,
    rng: random.Random,
    limited: int = 0,
    rate_waited: float = 0.0,
) -> float | None:
    """Seconds to wait before retrying ``op`` after ``outcome`` (``clock``: the core's clock
    now, against which ``op.deadline`` is set), or None when it must not be retried.

    ``retry_number`` counts the failed attempts that spend ``max_retries``: all but 429s.
    A 429 turned the request away unrun and says when to come back, so it does not spend a
    retry (two clients sharing a key come back in step and collide again, so 429s come in
    runs); ``limited`` 429s that asked for ``rate_waited`` seconds in all came before, and
    the next is retried while the waits add up to at most ``max_server_wait`` (each
    counted as ``rate_limit_charge``).
    ``max_retries`` 0 turns every retry off, 429s too."""
    if isinstance(outcome, httpx.Response) and outcome.status_code == 429:
        if policy.max_retries == 0:
            return None
        hinted = server_wait(outcome.headers, now)
        delay = hinted if hinted is not None else policy.backoff(limited, rng)
        if rate_waited + policy.rate_limit_charge(delay) > policy.max_server_wait:
            return None  # never a silent long sleep, in one wait or in many
        return _within_deadline(op, clock, delay)
    if retry_number >= policy.max_retries:
        return None
    if isinstance(outcome, httpx.Response):
        status = outcome.status_code
        if op.starts_command or status not in RETRY_STATUSES:
            return None  # a start is retried after a 429 only (above)
        hinted = server_wait(outcome.headers, now)
        if hinted is not None and hinted > policy.max_server_wait:
            return None
        delay = hinted if hinted is not None else policy.backoff(retry_number, rng)
    elif isinstance(outcome, httpx.TransportError):
        safe = never_sent(outcome) if op.starts_command else _transport_retryable(outcome)
        if not safe:
            return None
        delay = policy.backoff(retry_number, rng)
    else:
        return None
    return _within_deadline(op, clock, delay)


def _within_deadline(op: Operation, clock: float, delay: float) -> float | None:
    if op.deadline is not None and clock + delay > op.deadline:
        return None
    return delay


def retried_by_waits(error: HostupError) -> bool:
    """Whether a wait polls again after a poll failed with ``error`` (after the poll's own
    retries): the statuses a request retries, any 5xx, and connection failures."""
    if isinstance(error, APIStatusError):
        return error.status_code in RETRY_STATUSES or error.status_code >= 500
    return isinstance(error, APIConnectionError)

"""The sans-I/O heart shared by the sync and async clients.

Every decision lives here: building requests, classifying responses, whether and how long to
wait before a retry, polling schedules and deadlines. Each operation is a generator ("flow")
that yields :class:`Send` and :class:`Sleep` steps and receives, for a ``Send``, the read
``httpx.Response`` or the ``httpx.TransportError`` it raised. The clients only carry the steps
out, so the sync and async clients cannot drift apart.
"""

from __future__ import annotations

import json
import logging
import math
import random
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar
from urllib.parse import parse_qs, quote, urljoin, urlsplit

import httpx
import pydantic

from ._validation import validate_command, validate_pid, validate_seconds, validate_vps_id
from ._version import __version__
from .errors import (
    AgentUnavailableError,
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    CommandTimeoutError,
    HostupError,
    RateLimitError,
    ValidationError,
    error_from_response,
)
from .models import AgentAvailability, AgentExecOutput, AgentExecStarted, VpsPage
from .settings import Settings

__all__ = [
    "USER_AGENT",
    "Core",
    "Flow",
    "Operation",
    "PollSchedule",
    "RateBudget",
    "RetryPolicy",
    "Send",
    "Sleep",
]

logger = logging.getLogger("hostup_pulumi")

USER_AGENT = f"hostup-pulumi/{__version__} python-httpx/{httpx.__version__}"
READ_SCOPE = "read:vm"
WRITE_SCOPE = "write:vm"
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})

T = TypeVar("T")
M = TypeVar("M", bound=pydantic.BaseModel)


@dataclass(frozen=True)
class Send:
    """Send this request and hand back the read response, or the TransportError raised.

    httpx's read timeout bounds each read, not the whole body: a server that trickles bytes
    could hold a call forever. So the shell reads the body in chunks and calls
    :meth:`overrun` after each; past ``deadline`` (on ``clock``) or ``max_bytes`` it raises.
    """

    request: httpx.Request
    deadline: float = math.inf
    clock: Callable[[], float] = field(default=time.monotonic, compare=False, repr=False)
    max_bytes: int = 8 * 1024 * 1024

    def overrun(self, size: int) -> None:
        """Raise an httpx error once the body is too slow (past the deadline) or too big."""
        if self.clock() > self.deadline:
            raise httpx.ReadTimeout(
                "the response took longer than the call allows", request=self.request
            )
        if size > self.max_bytes:
            raise httpx.ReadError(
                f"the response body is larger than {self.max_bytes} bytes", request=self.request
            )


@dataclass(frozen=True)
class Sleep:
    """Wait this many seconds.

    ``admission`` marks a wait that holds back the next request (the 429 gate or rate-limit
    pacing): a shell with a concurrency limit keeps the request's slot while it sleeps, so
    that other calls queue for slots instead of all waking to re-check the budget.
    """

    seconds: float
    admission: bool = field(default=False, compare=False)


Step = Send | Sleep
Flow = Generator[Step, Any, T]


@dataclass(frozen=True)
class Operation:
    """One API call: what to send, which scope it needs, and whether it may be retried freely."""

    name: str
    method: str
    path: str
    scope: str
    params: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] | None = None
    # POST agent/exec is not idempotent: retried only when it provably never arrived.
    starts_command: bool = False
    timeout: float | None = None
    deadline: float | None = None

    @property
    def target(self) -> str:
        """Path and query, for logs and error messages (never carries credentials)."""
        if not self.params:
            return self.path
        return self.path + "?" + "&".join(f"{k}={quote(v)}" for k, v in self.params.items())


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


@dataclass(frozen=True)
class PollSchedule:
    """Interval between polls: fast first, growing with elapsed time, capped.

    ``first + growth * elapsed`` keeps the lag between a command's exit and its detection
    within ``growth`` of its run time plus ``first`` seconds (plus one request's round trip:
    the interval is slept after each answer), with few requests for long runs.
    ``bench/poll.py`` measures it.
    """

    first: float = 0.5
    growth: float = 0.1
    cap: float = 5.0

    def interval(self, elapsed: float) -> float:
        """Seconds to wait before the next poll, ``elapsed`` seconds after the wait began."""
        return min(self.cap, self.first + self.growth * max(0.0, elapsed))


EXEC_POLL = PollSchedule()
AVAILABILITY_POLL = PollSchedule(first=1.0, growth=0.1, cap=10.0)


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


def _never_sent(exc: httpx.TransportError) -> bool:
    # The connection was never made, so the request cannot have reached the server.
    return isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)


def _transport_retryable(exc: httpx.TransportError) -> bool:
    # Errors in our own request (bad URL, protocol misuse) will not fix themselves.
    return not isinstance(exc, httpx.UnsupportedProtocol | httpx.LocalProtocolError)


def _validation_summary(exc: pydantic.ValidationError) -> str:
    # include_input=False: the rejected values may be command output.
    parts = [
        f"{'.'.join(str(p) for p in err['loc']) or '(body)'}: {err['msg']}"
        for err in exc.errors(include_input=False, include_url=False)[:5]
    ]
    return "; ".join(parts)


@dataclass(frozen=True)
class _Observation:
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


def rate_observation(headers: httpx.Headers, clock: float, now: datetime) -> _Observation | None:
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
    return _Observation(limit, remaining, clock, clock + until_reset, order)


class RateBudget:
    """Client-side pacing from the ``X-RateLimit-*`` headers of every response.

    The server reports its budget (``Limit``), what is left (``Remaining``) and when the whole
    budget is back (``Reset``). A request is admitted while the estimated budget covers it
    and every request still in flight; otherwise it waits until the budget is expected
    back. So a pool of calls spends the budget at the rate it returns instead of running
    into 429s, each of which costs a whole-second ``Retry-After``.

    The newest report is the one the server counted last (see ``_Observation.order``).
    Every request in flight counts against it, as the server may not have counted it yet
    (erring on the slow side when it has). Requests that end without a report
    (transport errors) stop counting, so failures cannot leave the pool waiting forever.

    Between reports nothing comes back before Reset (a fixed window: Remaining=0 means wait
    until Reset), unless the reports show a bucket that refills continuously (Reset moves
    while the previous one is still ahead; a fixed window keeps one Reset per window): then
    the budget is taken to grow linearly from Remaining to Limit at Reset. That line lies
    below the true level of a token bucket (Remaining is rounded down), so the estimate errs
    on the slow side. A 429 still closes :class:`Core`'s gate for the server's
    ``Retry-After``; pacing only keeps 429s rare.

    Not thread-safe by itself: :class:`Core` calls it under its gate lock.
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
        self._latest: _Observation | None = None
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

    def settle(self, ticket: int, report: _Observation | None) -> None:
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


class Core:
    """Decisions shared by both clients. Holds settings, the shared rate-limit gate and the
    rate-limit budget (pacing)."""

    #: list_vps stops here even if the API keeps handing out new cursors (a million VPSes).
    MAX_PAGES = 10_000

    def __init__(
        self,
        settings: Settings,
        *,
        retry: RetryPolicy | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    ) -> None:
        self.settings = settings
        self.retry = retry or RetryPolicy(max_retries=settings.max_retries)
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._clock = clock
        self._now = now
        # After a 429, every call through this core waits until this monotonic time, so that
        # a pool of concurrent calls slows down together instead of each hammering on its own.
        self._gate_until = 0.0
        self._gate_lock = threading.Lock()
        # Requests are paced by the budget the server reports, shared by all calls.
        self._budget = RateBudget()

    def __repr__(self) -> str:
        return f"Core({self.settings!r})"

    # -- building requests ------------------------------------------------------------

    def timeout(self, seconds: float | None = None) -> httpx.Timeout:
        """The httpx timeout for one request: ``seconds`` (or the default) for reads."""
        read = seconds if seconds is not None else self.settings.timeout
        return httpx.Timeout(read, connect=min(self.settings.connect_timeout, read))

    def build_request(self, op: Operation) -> httpx.Request:
        """The httpx request for ``op``, with auth, JSON and a bounded timeout."""
        if op.timeout is not None:
            validate_seconds(op.timeout)  # a per-call timeout= must be a positive number
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        if self.settings.api_key:
            headers["Authorization"] = f"Bearer {self.settings.api_key}"
        elif self.settings.session_cookie:
            headers["Cookie"] = f"hostup_session={self.settings.session_cookie}"
        content = None
        if op.body is not None:
            headers["Content-Type"] = "application/json"
            content = json.dumps(op.body).encode()
        seconds = op.timeout
        if op.deadline is not None:
            # A wait's deadline bounds each request too (at least 1 s, to get an answer).
            remaining = max(1.0, op.deadline - self._clock())
            seconds = min(seconds or self.settings.timeout, remaining)
        return httpx.Request(
            op.method,
            self.settings.base_url + op.path,
            params=op.params or None,
            headers=headers,
            content=content,
            extensions={"timeout": self.timeout(seconds).as_dict()},
        )

    def attempt_deadline(self, op: Operation, started: float) -> float:
        """When one attempt must be over, body included: connect plus read timeout, and
        never past the call's own deadline."""
        seconds = op.timeout if op.timeout is not None else self.settings.timeout
        limit = started + self.settings.connect_timeout + seconds
        return limit if op.deadline is None else min(limit, max(op.deadline, started + 1.0))

    @staticmethod
    def _vps_path(vps_id: str, suffix: str = "") -> str:
        return f"/api/v2/vps/{quote(validate_vps_id(vps_id), safe='')}{suffix}"

    def probe_op(
        self, vps_id: str, timeout: float | None = None, deadline: float | None = None
    ) -> Operation:
        """``GET /api/v2/vps/{id}/agent/exec``: is command execution available?"""
        return Operation(
            "get_agent_availability", "GET", self._vps_path(vps_id, "/agent/exec"),
            READ_SCOPE, timeout=timeout, deadline=deadline,
        )  # fmt: skip

    def output_op(
        self, vps_id: str, pid: int, timeout: float | None = None, deadline: float | None = None
    ) -> Operation:
        """``GET /api/v2/vps/{id}/agent/exec?pid=``: a command's state and output."""
        return Operation(
            "get_agent_exec_output", "GET", self._vps_path(vps_id, "/agent/exec"), WRITE_SCOPE,
            params={"pid": str(validate_pid(pid))}, timeout=timeout, deadline=deadline,
        )  # fmt: skip

    def start_op(self, vps_id: str, command: str, timeout: float | None = None) -> Operation:
        """``POST /api/v2/vps/{id}/agent/exec``: start a command (not idempotent)."""
        return Operation(
            "start_agent_exec", "POST", self._vps_path(vps_id, "/agent/exec"), WRITE_SCOPE,
            body={"command": validate_command(command)}, starts_command=True, timeout=timeout,
        )  # fmt: skip

    def get_vps_op(self, vps_id: str, timeout: float | None = None) -> Operation:
        """``GET /api/v2/vps/{id}``."""
        return Operation("get_vps", "GET", self._vps_path(vps_id), READ_SCOPE, timeout=timeout)

    def list_vps_op(
        self,
        *,
        name: str | None = None,
        primary_ip: str | None = None,
        cursor: str | None = None,
        limit: int = 100,
        timeout: float | None = None,
    ) -> Operation:
        """One page of ``GET /api/v2/vps``."""
        params = {"limit": str(limit)}
        for key, value in (("name", name), ("primaryIp", primary_ip), ("cursor", cursor)):
            if value is not None:
                if not isinstance(value, str) or not value.strip():
                    raise ValidationError(f"list_vps: {key} must be a non-empty string")
                params[key] = value
        return Operation("list_vps", "GET", "/api/v2/vps", READ_SCOPE, params, timeout=timeout)

    # -- the rate-limit gate ------------------------------------------------------------

    def gate_wait(self) -> float:
        """How long a new attempt must wait because of a recent 429 (0 when none)."""
        with self._gate_lock:
            return max(0.0, self._gate_until - self._clock())

    def _close_gate(self, seconds: float) -> None:
        with self._gate_lock:
            self._gate_until = max(self._gate_until, self._clock() + seconds)

    def admit(self) -> tuple[float, int]:
        """Admission of the next request: ``(seconds to wait, 0)`` while the 429 gate is
        closed or the rate-limit budget is spent, else ``(0, ticket)``: the request counts
        as sent, and ``settle(ticket, outcome)`` must follow."""
        with self._gate_lock:
            now = self._clock()
            wait = max(self._gate_until - now, 0.0)
            if wait <= 0:
                wait = self._budget.wait(now)
                if wait > self.retry.max_server_wait:
                    # Not a silent long sleep: send, and let the server's answer decide.
                    wait = 0.0
            if wait > 0:
                return wait, 0
            return 0.0, self._budget.admit(now)

    def settle(self, ticket: int, outcome: httpx.Response | Exception | None) -> None:
        """Learn the budget a response reports; ``outcome`` None: the request was abandoned."""
        report = None
        if isinstance(outcome, httpx.Response):
            report = rate_observation(outcome.headers, self._clock(), self._now())
        with self._gate_lock:
            self._budget.settle(ticket, report)

    # -- classifying outcomes -----------------------------------------------------------

    def _error_for(self, op: Operation, outcome: httpx.Response | Exception) -> HostupError:
        if isinstance(outcome, httpx.Response):
            now = self._now()
            return error_from_response(
                status_code=outcome.status_code,
                headers=outcome.headers,
                body=outcome.content,
                method=op.method,
                path=op.target,
                required_scope=op.scope,
                retry_after=server_wait(outcome.headers, now),
                command_may_have_started=op.starts_command and outcome.status_code >= 500,
            )
        may_have_started = op.starts_command and not _never_sent(outcome)  # type: ignore[arg-type]
        cls = APITimeoutError if isinstance(outcome, httpx.TimeoutException) else APIConnectionError
        kind = type(outcome).__name__
        return cls(
            f"{op.method} {op.target} failed: {kind}: {outcome}",
            method=op.method,
            path=op.target,
            command_may_have_started=may_have_started,
        )

    def retry_delay(
        self, op: Operation, retry_number: int, outcome: httpx.Response | Exception
    ) -> float | None:
        """Seconds to wait before retrying ``op``, or None when it must not be retried."""
        if retry_number >= self.retry.max_retries:
            return None
        hinted: float | None = None
        if isinstance(outcome, httpx.Response):
            status = outcome.status_code
            retryable = status == 429 if op.starts_command else status in RETRY_STATUSES
            if not retryable:
                return None
            hinted = server_wait(outcome.headers, self._now())
            if hinted is not None and hinted > self.retry.max_server_wait:
                return None
        elif isinstance(outcome, httpx.TransportError):
            safe = _never_sent(outcome) if op.starts_command else _transport_retryable(outcome)
            if not safe:
                return None
        else:
            return None
        delay = hinted if hinted is not None else self.retry.backoff(retry_number, self._rng)
        if op.deadline is not None and self._clock() + delay > op.deadline:
            return None
        return delay

    def parse(self, op: Operation, response: httpx.Response, model: type[M]) -> M:
        """Validate a 2xx body against ``model``; anything else is APIResponseValidationError."""
        try:
            data = json.loads(response.content)
        except (ValueError, RecursionError):
            raise self._invalid(op, response, "a body that is not valid JSON") from None
        try:
            return model.model_validate(data)
        except pydantic.ValidationError as exc:
            raise self._invalid(op, response, _validation_summary(exc)) from None

    def _invalid(self, op: Operation, response: httpx.Response, what: str) -> HostupError:
        note = (
            ". The command may have started on the VPS; check before starting it again"
            if op.starts_command
            else ""
        )
        return APIResponseValidationError(
            f"{op.method} {op.target} returned HTTP {response.status_code} with an unexpected "
            f"body ({what}){note}",
            method=op.method,
            path=op.target,
            status_code=response.status_code,
            command_may_have_started=op.starts_command,
        )

    # -- flows ----------------------------------------------------------------------------

    def request(self, op: Operation) -> Flow[httpx.Response]:
        """Send ``op`` with retries; return the 2xx response or raise the typed error."""
        retry_number = 0
        while True:
            wait, ticket = self.admit()
            while wait > 0:
                if op.deadline is not None and self._clock() + wait > op.deadline:
                    # A 429 gate or the rate-limit budget would hold this call past its deadline.
                    raise APITimeoutError(
                        f"{op.method} {op.target} not sent: the API's rate limit asks to wait "
                        f"{wait:.2f}s, past this call's deadline",
                        method=op.method,
                        path=op.target,
                    )
                yield Sleep(wait, admission=True)
                wait, ticket = self.admit()
            started = self._clock()
            try:
                request = self.build_request(op)
                outcome = yield Send(request, self.attempt_deadline(op, started), self._clock)
            except BaseException:
                # The flow was closed mid-request (a cancelled call): it no longer counts.
                self.settle(ticket, None)
                raise
            self.settle(ticket, outcome)
            elapsed = self._clock() - started
            self._log_attempt(op, outcome, retry_number, elapsed)
            if isinstance(outcome, httpx.Response) and outcome.is_success:
                return outcome
            delay = self.retry_delay(op, retry_number, outcome)
            if isinstance(outcome, httpx.Response) and outcome.status_code == 429:
                # Not retrying (retries used up) still slows the next calls by the server's
                # wait when it is a sane one, else by the backoff.
                gate = delay
                if gate is None:
                    hinted = server_wait(outcome.headers, self._now())
                    sane = hinted is not None and hinted <= self.retry.max_server_wait
                    gate = hinted if sane else self.retry.backoff(retry_number, self._rng)
                self._close_gate(gate)  # type: ignore[arg-type]
            if delay is None:
                raise self._error_for(op, outcome)
            logger.warning(
                "retrying %s %s in %.2fs after %s (retry %d of %d)",
                op.method, op.target, delay, _describe(outcome), retry_number + 1,
                self.retry.max_retries,
            )  # fmt: skip
            yield Sleep(delay)
            retry_number += 1

    def _log_attempt(
        self, op: Operation, outcome: httpx.Response | Exception, retry_number: int, elapsed: float
    ) -> None:
        if not logger.isEnabledFor(logging.DEBUG):
            return
        request_id = (
            outcome.headers.get("x-request-id", "-") if isinstance(outcome, httpx.Response) else "-"
        )
        logger.debug(
            "%s %s -> %s (request %s, attempt %d/%d, %.3fs)",
            op.method, op.target, _describe(outcome), request_id, retry_number + 1,
            self.retry.max_retries + 1, elapsed,
        )  # fmt: skip

    def call(self, op: Operation, model: type[M]) -> Flow[M]:
        """Send ``op`` and parse its body as ``model``."""
        response = yield from self.request(op)
        return self.parse(op, response, model)

    def start(self, op: Operation) -> Flow[AgentExecStarted]:
        """Start a command. A missing ``pid`` is taken from ``pollUrl`` when it carries one;
        ``poll_url`` is made absolute."""
        response = yield from self.request(op)
        raw = self.parse(op, response, _StartBody)
        pid = raw.pid
        if pid is None and raw.poll_url:
            values = parse_qs(urlsplit(raw.poll_url).query).get("pid", [])
            # isascii: str.isdigit() is also true of '²', which int() refuses.
            ok = values and values[0].isascii() and values[0].isdigit()
            pid = int(values[0]) if ok else None
        if pid is None or pid <= 0:
            raise self._invalid(op, response, "no pid in the response")
        poll_url = raw.poll_url or None
        if poll_url and poll_url.startswith("/") and not poll_url.startswith("//"):
            # A path from the API root: prefix the base URL (keeping any path in it), as
            # every request of this client is sent to base_url + path.
            poll_url = self.settings.base_url + poll_url
        elif poll_url:
            poll_url = urljoin(self.settings.base_url + "/", poll_url)
        return AgentExecStarted.model_validate({**raw.extras, "pid": pid, "pollUrl": poll_url})

    def list_vps_pages(
        self, name: str | None, primary_ip: str | None, limit: int, timeout: float | None
    ) -> Generator[Flow[VpsPage], VpsPage, None]:
        """The flows for each page of ``list_vps``, following ``nextCursor``.

        Yields one page flow at a time and receives its result; stops at the last page and
        refuses a cursor the server already gave (a loop) or more than ``MAX_PAGES`` pages.
        """
        seen: set[str] = set()
        cursor: str | None = None
        while True:
            op = self.list_vps_op(name=name, primary_ip=primary_ip, cursor=cursor, limit=limit,
                                  timeout=timeout)  # fmt: skip
            page = yield self.call(op, VpsPage)
            if not page.has_more or not page.next_cursor:
                return
            if page.next_cursor in seen:
                raise APIResponseValidationError(
                    f"GET /api/v2/vps returned the cursor {page.next_cursor!r} twice; "
                    "stopping instead of looping",
                    method="GET",
                    path="/api/v2/vps",
                )
            if len(seen) + 1 >= self.MAX_PAGES:
                raise APIResponseValidationError(
                    f"GET /api/v2/vps gave more than {self.MAX_PAGES} pages; stopping",
                    method="GET",
                    path="/api/v2/vps",
                )
            seen.add(page.next_cursor)
            cursor = page.next_cursor

    def wait_for_exec(
        self, vps_id: str, pid: int, timeout: float, schedule: PollSchedule = EXEC_POLL
    ) -> Flow[AgentExecOutput]:
        """Poll a command's output until it exits or ``timeout`` seconds pass."""
        pid = validate_pid(pid)
        validate_seconds(timeout)
        last: AgentExecOutput | None = None

        def poll(deadline: float) -> Flow[AgentExecOutput]:
            return self.call(self.output_op(vps_id, pid, deadline=deadline), AgentExecOutput)

        def done(output: AgentExecOutput) -> bool:
            nonlocal last
            last = output
            return output.exited

        def expired() -> HostupError:
            state = "no answer yet" if last is None else "still running"
            return CommandTimeoutError(
                f"command pid {pid} on {vps_id} did not exit within {timeout:g}s ({state}); "
                "raise the timeout, or read the output later by pid",
                vps_id=vps_id, pid=pid, timeout=timeout, last_output=last,
            )  # fmt: skip

        return (yield from self._poll_until(poll, done, expired, timeout, schedule))

    def wait_for_available(
        self, vps_id: str, timeout: float, schedule: PollSchedule = AVAILABILITY_POLL
    ) -> Flow[AgentAvailability]:
        """Probe until command execution is available or ``timeout`` seconds pass."""
        validate_vps_id(vps_id)
        validate_seconds(timeout)
        last: AgentAvailability | None = None

        def poll(deadline: float) -> Flow[AgentAvailability]:
            return self.call(self.probe_op(vps_id, deadline=deadline), AgentAvailability)

        def done(availability: AgentAvailability) -> bool:
            nonlocal last
            last = availability
            return availability.available

        def expired() -> HostupError:
            reason = last.reason if last is not None and last.reason else "no reason given"
            return CommandTimeoutError(
                f"guest-agent command execution on {vps_id} did not become available within "
                f"{timeout:g}s (last reason: {reason})",
                vps_id=vps_id, timeout=timeout, last_availability=last,
            )  # fmt: skip

        return (yield from self._poll_until(poll, done, expired, timeout, schedule))

    def require_available(self, vps_id: str, wait_timeout: float | None) -> Flow[AgentAvailability]:
        """Probe once; when unavailable and ``wait_timeout`` is given, wait for it. Raise
        AgentUnavailableError (the precondition's one error) when it is still unavailable."""
        if wait_timeout is not None:
            validate_seconds(wait_timeout)  # before any request
        availability = yield from self.call(self.probe_op(vps_id), AgentAvailability)
        if not availability.available and wait_timeout is not None:
            try:
                availability = yield from self.wait_for_available(vps_id, wait_timeout)
            except CommandTimeoutError as exc:
                last = exc.last_availability or availability
                raise AgentUnavailableError(
                    vps_id, last.reason, last.vm_running, waited=wait_timeout
                ) from exc
        if not availability.available:
            raise AgentUnavailableError(vps_id, availability.reason, availability.vm_running)
        return availability

    def _poll_until(
        self,
        poll: Callable[[float], Flow[T]],
        done: Callable[[T], bool],
        expired: Callable[[], HostupError],
        timeout: float,
        schedule: PollSchedule,
    ) -> Flow[T]:
        """Poll until ``done``; at the deadline raise ``expired()``. A 429 or a transient
        failure while polling waits and polls again, within the deadline."""
        began = self._clock()
        deadline = began + timeout
        failures = 0
        while True:
            try:
                result = yield from poll(deadline)
            except (RateLimitError, APIConnectionError, APIStatusError) as exc:
                # The statuses a single request retries, plus connection failures.
                transient = isinstance(exc, RateLimitError | APIConnectionError) or (
                    isinstance(exc, APIStatusError)
                    and (exc.status_code in RETRY_STATUSES or exc.status_code >= 500)
                )
                if not transient:
                    raise
                wait = getattr(exc, "retry_after", None) or self.retry.backoff(failures, self._rng)
                failures += 1
                if self._clock() + wait >= deadline:
                    error = expired()
                    # Say why it stopped before the deadline: the server asked for a longer wait.
                    error.args = (
                        f"{error.args[0]}; stopped early: the API answered "
                        f"{getattr(exc, 'status_code', type(exc).__name__)} and asked to wait "
                        f"{wait:g}s, past the deadline",
                    )
                    raise error from exc
                yield Sleep(wait)
                continue
            if done(result):
                return result
            remaining = deadline - self._clock()
            if remaining <= 0:
                raise expired()
            yield Sleep(min(schedule.interval(self._clock() - began), remaining))


class _StartBody(pydantic.BaseModel):
    # The POST response as sent: both fields are marked optional in the API's schema.
    model_config = pydantic.ConfigDict(extra="allow", populate_by_name=True)
    pid: int | None = None
    poll_url: str | None = pydantic.Field(default=None, alias="pollUrl")

    @property
    def extras(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


def _describe(outcome: httpx.Response | Exception) -> str:
    if isinstance(outcome, httpx.Response):
        return str(outcome.status_code)
    return type(outcome).__name__

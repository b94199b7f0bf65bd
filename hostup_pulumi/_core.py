"""The sans-I/O flows shared by the sync and async clients: call, start, list, wait.

Each operation is a generator ("flow") that yields :class:`Send` and :class:`Sleep` steps
(``_steps``) and receives, for a ``Send``, the read ``httpx.Response`` or the
``httpx.TransportError`` it raised. The clients only carry the steps out, so the sync and
async clients cannot drift apart. The rules the flows follow live beside this module: what
each endpoint sends (``_endpoints``), what an answer means (``_outcomes``), which failures
retry and how long to wait (``_retry``), and when a request may go (``_pacing``).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Generator
from datetime import datetime, timezone
from typing import Any, TypeVar

import httpx
import pydantic

from . import _advice as advisor
from . import _endpoints as endpoints
from . import _listing as listing
from . import _outcomes as outcomes
from ._endpoints import Operation
from ._pacing import (
    AVAILABILITY_POLL,
    EXEC_POLL,
    Admission,
    PollSchedule,
    rate_observation,
)
from ._retry import RetryPolicy, retried_by_waits, retry_delay, server_wait
from ._steps import Flow, Send, Sleep
from ._validation import validate_pid, validate_seconds, validate_vps_id
from .errors import (
    AgentUnavailableError,
    APIConnectionError,
    APITimeoutError,
    CommandTimeoutError,
    HostupError,
)
from .models import AgentAvailability, AgentExecOutput, AgentExecStarted, Vps, VpsPage
from .settings import Settings

__all__ = ["Core"]

logger = logging.getLogger("hostup_pulumi")

T = TypeVar("T")
M = TypeVar("M", bound=pydantic.BaseModel)


class Core:
    """The flows of one client, with its settings, retry policy, clock, and the pacing its
    calls share (the 429 gate and the rate-limit budget)."""

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
        poll: PollSchedule | None = None,
    ) -> None:
        self.settings = settings
        # One schedule for both waits when given; else each wait's own default.
        self._exec_poll = poll or EXEC_POLL
        self._available_poll = poll or AVAILABILITY_POLL
        self.retry = retry or RetryPolicy(max_retries=settings.max_retries)
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._clock = clock
        self._now = now
        self._admission = Admission()
        # Each VPS's last probe answer of available: true, and when (see reuse_within).
        self._available: dict[str, tuple[float, AgentAvailability]] = {}

    def __repr__(self) -> str:
        return f"Core({self.settings!r})"

    # -- requests, admission, retries ---------------------------------------------------

    def timeout(self, seconds: float | None = None) -> httpx.Timeout:
        """The httpx timeout for one request: ``seconds`` (or the default) for reads."""
        return endpoints.http_timeout(self.settings, seconds)

    def build_request(self, op: Operation) -> httpx.Request:
        """The httpx request for ``op``, with auth, JSON and a bounded timeout."""
        return endpoints.build_request(op, self.settings, self._clock())

    def attempt_deadline(self, op: Operation, started: float) -> float:
        """When one attempt must be over, body included."""
        return endpoints.attempt_deadline(op, self.settings, started)

    def gate_wait(self) -> float:
        """How long a new attempt must wait because of a recent 429 (0 when none)."""
        return self._admission.gate_wait(self._clock())

    def admit(self) -> tuple[float, int]:
        """Admission of the next request: ``(seconds to wait, 0)`` while the 429 gate is
        closed or the rate-limit budget is spent, else ``(0, ticket)``: the request counts
        as sent, and ``settle(ticket, outcome)`` must follow."""
        return self._admission.admit(self._clock(), self.retry.max_server_wait)

    def settle(self, ticket: int, outcome: httpx.Response | Exception | None) -> None:
        """Learn the budget a response reports; ``outcome`` None: the request was abandoned."""
        report = None
        if isinstance(outcome, httpx.Response):
            report = rate_observation(outcome.headers, self._clock(), self._now())
        self._admission.settle(ticket, report)

    def retry_delay(
        self,
        op: Operation,
        retry_number: int,
        outcome: httpx.Response | Exception,
        *,
        limited: int = 0,
        rate_waited: float = 0.0,
    ) -> float | None:
        """Seconds to wait before retrying ``op``, or None when it must not be retried
        (``_retry.retry_delay``: ``limited`` 429s, waited ``rate_waited`` s, came before)."""
        return retry_delay(self.retry, op, retry_number, outcome, clock=self._clock(),
                           now=self._now(), rng=self._rng, limited=limited,
                           rate_waited=rate_waited)  # fmt: skip

    def parse(self, op: Operation, response: httpx.Response, model: type[M]) -> M:
        """Validate a 2xx body against ``model``; anything else is APIResponseValidationError."""
        return outcomes.parse(op, response, model)

    # -- the flows ------------------------------------------------------------------------

    def request(self, op: Operation) -> Flow[httpx.Response]:
        """Send ``op`` with retries; return the 2xx response or raise the typed error."""
        retry_number = 0  # failures that spend max_retries: all but 429s
        limited, rate_waited = 0, 0.0  # 429s so far, and the waits they asked for
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
                deadline = self.attempt_deadline(op, started)
                outcome = yield Send(request, deadline, self._clock, started=started)
            except BaseException:
                # The flow was closed mid-request (a cancelled call): it no longer counts.
                self.settle(ticket, None)
                raise
            self.settle(ticket, outcome)
            self._log_attempt(op, outcome, retry_number + limited, self._clock() - started)
            if isinstance(outcome, httpx.Response) and outcome.is_success:
                return outcome
            delay = self.retry_delay(op, retry_number, outcome, limited=limited,
                                     rate_waited=rate_waited)  # fmt: skip
            was_429 = isinstance(outcome, httpx.Response) and outcome.status_code == 429
            if isinstance(outcome, httpx.Response) and was_429:  # retried or not, it slows
                # every call of the client: by the retry's wait, else the sane one asked for.
                gate = delay if delay is not None else self.retry.gate_after(
                    server_wait(outcome.headers, self._now()), limited, self._rng)  # fmt: skip
                self._admission.close_gate(gate, self._clock())
            if delay is None:
                key = self.settings.api_key or ""
                raise outcomes.error_for(op, outcome, now=self._now(), request=request,
                                         attempts=retry_number + limited + 1,
                                         where=self.settings.where,
                                         bearer_prefix=key[:7].lower() == "bearer ")  # fmt: skip
            if was_429:
                limited += 1
                rate_waited += self.retry.rate_limit_charge(delay)
                spent = f"rate limited: {rate_waited:.1f}s of {self.retry.max_server_wait:g}s"
            else:
                retry_number += 1
                spent = f"retry {retry_number} of {self.retry.max_retries}"
            logger.warning("retrying %s %s in %.2fs after %s (%s)",
                           op.method, op.target, delay, _describe(outcome), spent)  # fmt: skip
            yield Sleep(delay)

    def _log_attempt(
        self, op: Operation, outcome: httpx.Response | Exception, earlier: int, elapsed: float
    ) -> None:
        if not logger.isEnabledFor(logging.DEBUG):
            return
        request_id = (
            outcome.headers.get("x-request-id", "-") if isinstance(outcome, httpx.Response) else "-"
        )
        logger.debug(
            "%s %s -> %s (request %s, attempt %d, %.3fs)",
            op.method, op.target, _describe(outcome), request_id, earlier + 1, elapsed,
        )  # fmt: skip

    def call(self, op: Operation, model: type[M]) -> Flow[M]:
        """Send ``op`` and parse its body as ``model``."""
        response = yield from self.request(op)
        return self.parse(op, response, model)

    def get_agent_availability(
        self, vps_id: str, timeout: float | None = None
    ) -> Flow[AgentAvailability]:
        """Whether command execution is available on ``vps_id``."""
        op = endpoints.get_agent_availability(vps_id, timeout)
        availability = yield from self.call(op, AgentAvailability)
        if availability.available:
            self._available[vps_id] = (self._clock(), availability)
        else:
            self._available.pop(vps_id, None)
        return availability

    def get_agent_exec_output(
        self, vps_id: str, pid: int, timeout: float | None = None
    ) -> Flow[AgentExecOutput]:
        """The state and output of command ``pid``."""
        return self.call(endpoints.get_agent_exec_output(vps_id, pid, timeout), AgentExecOutput)

    def get_vps(self, vps_id: str, timeout: float | None = None) -> Flow[Vps]:
        """One VPS."""
        return self.call(endpoints.get_vps(vps_id, timeout), Vps)

    def start_agent_exec(
        self, vps_id: str, command: str, timeout: float | None = None
    ) -> Flow[AgentExecStarted]:
        """Start a command: its pid, and its absolute poll URL."""
        return self._start(endpoints.start_agent_exec(vps_id, command, timeout))

    def _start(self, op: Operation) -> Flow[AgentExecStarted]:
        response = yield from self.request(op)
        return outcomes.parse_started(op, response, self.settings.base_url)

    def list_vps(
        self, name: str | None, primary_ip: str | None, limit: int, timeout: float | None
    ) -> Generator[Flow[VpsPage], VpsPage, None]:
        """The flows for each page of ``list_vps``, following ``nextCursor``.

        Yields one page flow at a time and receives its result: the page as the client
        checked it (``_listing``: the filters applied again, ids and cursors checked).
        """
        seen: set[str] = set()
        cursor: str | None = None
        while True:
            op = endpoints.list_vps(name=name, primary_ip=primary_ip, cursor=cursor, limit=limit,
                                    timeout=timeout)  # fmt: skip
            page = yield self._checked_page(op, name, primary_ip)
            cursor = listing.next_cursor(page, seen, self.MAX_PAGES)
            if cursor is None:
                return

    def _checked_page(
        self, op: Operation, name: str | None, primary_ip: str | None
    ) -> Flow[VpsPage]:
        page = yield from self.call(op, VpsPage)
        return listing.checked_page(page, name, primary_ip)

    def wait_for_agent_exec(self, vps_id: str, pid: int, timeout: float) -> Flow[AgentExecOutput]:
        """Poll a command's output until it exits or ``timeout`` seconds pass."""
        pid = validate_pid(pid)
        validate_seconds(timeout)
        last: AgentExecOutput | None = None

        def poll(deadline: float) -> Flow[AgentExecOutput]:
            op = endpoints.get_agent_exec_output(vps_id, pid, deadline=deadline)
            return self.call(op, AgentExecOutput)

        def done(output: AgentExecOutput) -> bool:
            nonlocal last
            last = output
            return output.exited

        def expired(**stop: Any) -> HostupError:
            state = "no answer yet" if last is None else "still running"
            return CommandTimeoutError(
                f"command pid {pid} on {vps_id} did not exit within {timeout:g}s ({state}); "
                "raise the timeout, or read the output later by pid",
                vps_id=vps_id, pid=pid, timeout=timeout, last_output=last, **stop,
            )  # fmt: skip

        return (yield from self._poll_until(poll, done, expired, timeout, self._exec_poll))

    def wait_for_agent_available(self, vps_id: str, timeout: float) -> Flow[AgentAvailability]:
        """Probe until command execution is available or ``timeout`` seconds pass."""
        validate_vps_id(vps_id)
        validate_seconds(timeout)
        last: AgentAvailability | None = None

        def poll(deadline: float) -> Flow[AgentAvailability]:
            op = endpoints.get_agent_availability(vps_id, deadline=deadline)
            return self.call(op, AgentAvailability)

        def done(availability: AgentAvailability) -> bool:
            nonlocal last
            last = availability
            return availability.available

        def expired(**stop: Any) -> HostupError:
            reason = last.reason if last is not None and last.reason else "no reason given"
            return CommandTimeoutError(
                f"guest-agent command execution on {vps_id} did not become available within "
                f"{timeout:g}s (last reason: {reason})",
                vps_id=vps_id, timeout=timeout, last_availability=last, **stop,
            )  # fmt: skip

        return (yield from self._poll_until(poll, done, expired, timeout, self._available_poll))

    def require_agent_available(
        self, vps_id: str, wait_timeout: float | None, reuse_within: float | None = None
    ) -> Flow[AgentAvailability]:
        """Probe once; when unavailable and ``wait_timeout`` is given, wait for it. Raise
        AgentUnavailableError (the precondition's one error) when it is still unavailable.
        With ``reuse_within`` (s), an ``available: true`` answer this client got that recently
        stands for the probe and no request is made."""
        if wait_timeout is not None:
            validate_seconds(wait_timeout)  # before any request
        known = self._available.get(vps_id)
        if (
            known is not None
            and reuse_within is not None
            and self._clock() - known[0] <= reuse_within
        ):
            return known[1]
        availability = yield from self.get_agent_availability(vps_id)
        if not availability.available and wait_timeout is not None:
            try:
                availability = yield from self.wait_for_agent_available(vps_id, wait_timeout)
            except CommandTimeoutError as exc:
                last = exc.last_availability or availability
                raise AgentUnavailableError(
                    vps_id, last.reason, last.vm_running, waited=wait_timeout
                ) from exc
        if not availability.available:
            raise AgentUnavailableError(
                vps_id, availability.reason, availability.vm_running,
                wait_hint=advisor.agent_wait(self.settings.where, starting=False),
            )  # fmt: skip
        return availability

    def _poll_until(
        self,
        poll: Callable[[float], Flow[T]],
        done: Callable[[T], bool],
        expired: Callable[..., HostupError],
        timeout: float,
        schedule: PollSchedule,
    ) -> Flow[T]:
        """Poll on ``schedule`` until ``done``; at the deadline raise ``expired()``. A failed
        poll that may pass (429, 408, 5xx, a lost connection) is waited out and polled
        again, within the deadline."""
        began = self._clock()
        deadline = began + timeout
        failures = 0
        while True:
            sent = self._clock() - began
            try:
                result = yield from poll(deadline)
            except HostupError as exc:
                if not retried_by_waits(exc):
                    raise
                asked = getattr(exc, "retry_after", None) or None  # a 429's Retry-After
                wait = asked if asked is not None else self.retry.backoff(failures, self._rng)
                failures += 1
                now = self._clock()
                if now + wait >= deadline:
                    if isinstance(exc, APIConnectionError) and exc.connected is False:
                        raise  # named for what it is: no connection, not a slow command
                    raise expired(
                        stopped_early=now < deadline,
                        server_wait=asked,
                        failed_status=getattr(exc, "status_code", None),
                    ) from exc
                yield Sleep(wait)
                continue
            if done(result):
                return result
            now = self._clock()
            if now >= deadline:
                raise expired()
            # Timed from this poll's send: its round trip does not delay the next one.
            wait = min(began + schedule.next_poll(sent), deadline) - now
            if wait > 0:
                yield Sleep(wait)


def _describe(outcome: httpx.Response | Exception) -> str:
    if isinstance(outcome, httpx.Response):
        return str(outcome.status_code)
    return type(outcome).__name__

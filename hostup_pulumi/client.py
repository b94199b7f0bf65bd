"""HostupClient and AsyncHostupClient: thin I/O shells over :mod:`hostup_pulumi._core`.

Both have the same methods. They only send, sleep and loop; every decision (what to send,
what a response means, whether to retry and when) is made by the shared core.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from types import TracebackType
from typing import Any, TypeVar

import httpx

from ._pacing import PollSchedule
from ._pools import AsyncPools
from ._retry import RetryPolicy
from ._shell import ClientBase, completed
from ._steps import Flow, Send, Sleep
from .models import AgentAvailability, AgentExecOutput, AgentExecStarted, Vps
from .settings import Settings

__all__ = ["AsyncHostupClient", "HostupClient"]

T = TypeVar("T")
DEFAULT_EXEC_TIMEOUT = 300.0
DEFAULT_AVAILABLE_TIMEOUT = 300.0
_PAGE_SIZE = 100


class HostupClient(ClientBase):
    """Synchronous HostUp API client.

    Credentials: ``api_key`` (sent as ``Authorization: Bearer``) or ``session_cookie``
    (``hostup_session``), else ``HOSTUP_API_KEY`` / ``HOSTUP_SESSION_COOKIE``. ``timeout`` is
    the read timeout in seconds (connect: 5 s); ``max_retries`` applies to safe retries only,
    and a 429 spends none (it is waited out while its waits add up to 60 s at most).
    Use as a context manager, or call :meth:`close`.

    Threads may share one client: ``max_concurrency`` (default 16, or
    ``settings.max_concurrency``) bounds its requests in flight and pooled connections, and
    a 429 seen by any call slows every call, as for :class:`AsyncHostupClient`.

    Tuning, and seams for tests: ``retry`` (a :class:`RetryPolicy`: its ``max_retries`` wins
    over ``max_retries``), ``poll`` (one :class:`PollSchedule` for both waits, instead of
    their defaults), ``clock`` (a monotonic clock for deadlines) and ``sleep`` (called for
    every wait between requests; ``time.sleep`` by default).
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        session_cookie: str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        settings: Settings | None = None,
        transport: httpx.BaseTransport | None = None,
        max_concurrency: int | None = None,
        retry: RetryPolicy | None = None,
        poll: PollSchedule | None = None,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], object] | None = None,
    ) -> None:
        super().__init__(api_key, base_url, session_cookie, timeout, max_retries, settings,
                         retry, poll, clock)  # fmt: skip
        self._sleep = sleep or time.sleep
        self.max_concurrency = max_concurrency = self._concurrency(max_concurrency)
        limits = httpx.Limits(
            max_connections=max_concurrency, max_keepalive_connections=max_concurrency
        )
        self._http = httpx.Client(transport=transport, timeout=self._core.timeout(), limits=limits)
        self._slots = threading.BoundedSemaphore(max_concurrency)

    def _run(self, flow: Flow[T]) -> T:
        """Carry out a core flow: send what it asks, sleep when it says.

        Held like the async client's slots (see :meth:`AsyncHostupClient._run`): a slot from
        the first step until the answer is back, through admission waits, so that threads
        sharing this client keep to ``max_concurrency`` requests in flight.
        """
        outcome: Any = None
        holding = False
        try:
            while True:
                if not holding:
                    self._slots.acquire()
                    holding = True
                step = flow.send(outcome)
                outcome = None
                if isinstance(step, Sleep):
                    if not step.admission:
                        self._slots.release()
                        holding = False
                    self._sleep(step.seconds)
                    continue
                try:
                    outcome = self._send(step)
                except httpx.RequestError as exc:  # transport errors, and bodies that
                    # cannot be decoded (DecodingError): the core makes them HostupErrors
                    outcome = exc
        except StopIteration as finished:
            return finished.value  # type: ignore[no-any-return]
        finally:
            if holding:
                self._slots.release()
            flow.close()

    def _send(self, step: Send) -> httpx.Response:
        # Read the body chunk by chunk so that the core's deadline and size cap apply.
        response = self._http.send(step.request, stream=True)
        if response.is_stream_consumed:  # already read (a mock transport's response)
            return response
        try:
            body = bytearray()
            for chunk in response.iter_raw():
                body += chunk
                step.overrun(len(body))
        finally:
            response.close()
        return completed(response, body)

    def get_agent_availability(
        self, vps_id: str, *, timeout: float | None = None
    ) -> AgentAvailability:
        """Whether guest-agent command execution is available on ``vps_id`` (scope read:vm)."""
        return self._run(self._core.get_agent_availability(vps_id, timeout))

    def start_agent_exec(
        self, vps_id: str, command: str, *, timeout: float | None = None
    ) -> AgentExecStarted:
        """Start ``command`` in the guest (scope write:vm); returns its pid.

        Not idempotent: retried only when the request provably never reached the server.
        """
        return self._run(self._core.start_agent_exec(vps_id, command, timeout))

    def get_agent_exec_output(
        self, vps_id: str, pid: int, *, timeout: float | None = None
    ) -> AgentExecOutput:
        """The state and output of command ``pid`` (scope write:vm)."""
        return self._run(self._core.get_agent_exec_output(vps_id, pid, timeout))

    def wait_for_agent_exec(
        self, vps_id: str, pid: int, *, timeout: float = DEFAULT_EXEC_TIMEOUT
    ) -> AgentExecOutput:
        """Poll until command ``pid`` exits; raises CommandTimeoutError after ``timeout`` s."""
        return self._run(self._core.wait_for_agent_exec(vps_id, pid, timeout))

    def wait_for_agent_available(
        self, vps_id: str, *, timeout: float = DEFAULT_AVAILABLE_TIMEOUT
    ) -> AgentAvailability:
        """Poll until command execution is available; CommandTimeoutError after ``timeout``."""
        return self._run(self._core.wait_for_agent_available(vps_id, timeout))

    def require_agent_available(
        self,
        vps_id: str,
        *,
        wait_timeout: float | None = None,
        reuse_within: float | None = None,
    ) -> AgentAvailability:
        """Return the availability if commands can run on ``vps_id``, else raise
        AgentUnavailableError; with ``wait_timeout`` (s), wait for it first. With
        ``reuse_within`` (s), an ``available: true`` answer this client got that recently
        stands for the probe (no request)."""
        return self._run(self._core.require_agent_available(vps_id, wait_timeout, reuse_within))

    def list_vps(
        self,
        *,
        name: str | None = None,
        primary_ip: str | None = None,
        timeout: float | None = None,
    ) -> Iterator[Vps]:
        """Every VPS on the account, following ``nextCursor``; ``name`` (case-insensitive) and
        ``primary_ip`` are exact-match filters."""
        pages = self._core.list_vps(name, primary_ip, _PAGE_SIZE, timeout)
        try:
            page_flow = next(pages)
            while True:
                page = self._run(page_flow)
                yield from page.data
                page_flow = pages.send(page)
        except StopIteration:
            return

    def get_vps(self, vps_id: str, *, timeout: float | None = None) -> Vps:
        """One VPS by id (scope read:vm)."""
        return self._run(self._core.get_vps(vps_id, timeout))

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> HostupClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncHostupClient(ClientBase):
    """Asynchronous HostUp API client: the same methods as :class:`HostupClient`, awaited.

    ``max_concurrency`` (default 16, or ``settings.max_concurrency``) bounds requests in
    flight and pooled connections; a 429 seen by any
    call slows every call of this client until the server's wait has passed. ``retry``,
    ``poll``, ``clock`` and ``sleep`` (a coroutine function; ``asyncio.sleep`` by default)
    are as for :class:`HostupClient`.
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        session_cookie: str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        settings: Settings | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        max_concurrency: int | None = None,
        retry: RetryPolicy | None = None,
        poll: PollSchedule | None = None,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], Awaitable[object]] | None = None,
    ) -> None:
        super().__init__(api_key, base_url, session_cookie, timeout, max_retries, settings,
                         retry, poll, clock)  # fmt: skip
        self._sleep = sleep or asyncio.sleep
        self.max_concurrency = max_concurrency = self._concurrency(max_concurrency)
        timeouts = self._core.timeout()
        self._pools = AsyncPools(
            max_concurrency,
            lambda limits, verify: httpx.AsyncClient(
                transport=transport, timeout=timeouts, limits=limits, verify=verify
            ),
            single=transport is not None,
        )
        self._slots = asyncio.Semaphore(max_concurrency)

    async def _run(self, flow: Flow[T]) -> T:
        """Carry out a core flow: send what it asks, sleep when it says.

        The flow is resumed only while holding one of the ``max_concurrency`` slots, kept
        until the answer is back and through admission waits: so the core decides whether
        a request may go (429 gate, rate-limit budget) when it can really be sent, rather
        than before queueing behind hundreds of others. Other waits free the slot.
        """
        outcome: Any = None
        holding = False
        try:
            while True:
                if not holding:
                    await self._slots.acquire()
                    holding = True
                step = flow.send(outcome)
                outcome = None
                if isinstance(step, Sleep):
                    if not step.admission:
                        self._slots.release()
                        holding = False
                    await self._sleep(step.seconds)
                    continue
                try:
                    outcome = await self._send(step)
                except httpx.RequestError as exc:  # transport errors, and bodies that
                    # cannot be decoded (DecodingError): the core makes them HostupErrors
                    outcome = exc
        except StopIteration as finished:
            return finished.value  # type: ignore[no-any-return]
        finally:
            if holding:
                self._slots.release()
            flow.close()

    async def _send(self, step: Send) -> httpx.Response:
        pool = self._pools.acquire()
        try:
            # Read the body chunk by chunk so that the core's deadline and size cap apply.
            response = await self._pools.client(pool).send(step.request, stream=True)
            if response.is_stream_consumed:  # already read (a mock transport's response)
                return response
            try:
                body = bytearray()
                async for chunk in response.aiter_raw():
                    body += chunk
                    step.overrun(len(body))
            finally:
                await response.aclose()
        finally:
            self._pools.release(pool)
        return completed(response, body)

    async def get_agent_availability(
        self, vps_id: str, *, timeout: float | None = None
    ) -> AgentAvailability:
        """Whether guest-agent command execution is available on ``vps_id`` (scope read:vm)."""
        return await self._run(self._core.get_agent_availability(vps_id, timeout))

    async def start_agent_exec(
        self, vps_id: str, command: str, *, timeout: float | None = None
    ) -> AgentExecStarted:
        """Start ``command`` in the guest (scope write:vm); returns its pid. Not idempotent."""
        return await self._run(self._core.start_agent_exec(vps_id, command, timeout))

    async def get_agent_exec_output(
        self, vps_id: str, pid: int, *, timeout: float | None = None
    ) -> AgentExecOutput:
        """The state and output of command ``pid`` (scope write:vm)."""
        return await self._run(self._core.get_agent_exec_output(vps_id, pid, timeout))

    async def wait_for_agent_exec(
        self, vps_id: str, pid: int, *, timeout: float = DEFAULT_EXEC_TIMEOUT
    ) -> AgentExecOutput:
        """Poll until command ``pid`` exits; raises CommandTimeoutError after ``timeout`` s."""
        return await self._run(self._core.wait_for_agent_exec(vps_id, pid, timeout))

    async def wait_for_agent_available(
        self, vps_id: str, *, timeout: float = DEFAULT_AVAILABLE_TIMEOUT
    ) -> AgentAvailability:
        """Poll until command execution is available; CommandTimeoutError after ``timeout``."""
        return await self._run(self._core.wait_for_agent_available(vps_id, timeout))

    async def require_agent_available(
        self,
        vps_id: str,
        *,
        wait_timeout: float | None = None,
        reuse_within: float | None = None,
    ) -> AgentAvailability:
        """Return the availability if commands can run on ``vps_id``, else raise
        AgentUnavailableError; with ``wait_timeout`` (s), wait for it first. With
        ``reuse_within`` (s), an ``available: true`` answer this client got that recently
        stands for the probe (no request)."""
        flow = self._core.require_agent_available(vps_id, wait_timeout, reuse_within)
        return await self._run(flow)

    async def list_vps(
        self,
        *,
        name: str | None = None,
        primary_ip: str | None = None,
        timeout: float | None = None,
    ) -> AsyncIterator[Vps]:
        """Every VPS on the account, following ``nextCursor`` (an async iterator)."""
        pages = self._core.list_vps(name, primary_ip, _PAGE_SIZE, timeout)
        try:
            page_flow = next(pages)
            while True:
                page = await self._run(page_flow)
                for vps in page.data:
                    yield vps
                page_flow = pages.send(page)
        except StopIteration:
            return

    async def get_vps(self, vps_id: str, *, timeout: float | None = None) -> Vps:
        """One VPS by id (scope read:vm)."""
        return await self._run(self._core.get_vps(vps_id, timeout))

    async def close(self) -> None:
        """Close the connection pools."""
        await self._pools.aclose()

    async def __aenter__(self) -> AsyncHostupClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

"""No hangs: every wait ends at its deadline, and an interrupted or cancelled call leaves no
thread, task or connection behind; the simulator stops promptly whatever is in flight.
"""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from typing import Any

import httpx
import pytest
from helpers import call, eventually

from hostup_pulumi import (
    AgentUnavailableError,
    AsyncHostupClient,
    CommandTimeoutError,
    HostupClient,
)
from hostup_pulumi.testing import Fault, HostupSimulator

LONG = "sleep 30"


def open_connections(client: HostupClient | AsyncHostupClient) -> int:
    """Connections the client's pools hold (httpcore's pools behind httpx's transports)."""
    async_client = isinstance(client, AsyncHostupClient)
    clients = client._pools._clients if async_client else [client._http]  # type: ignore[union-attr]
    return sum(len(http._transport._pool.connections) for http in clients)  # type: ignore[attr-defined]


@pytest.fixture
def sim(hostup_simulator: HostupSimulator) -> HostupSimulator:
    """The package's simulator, knowing LONG (a 30 s command)."""
    hostup_simulator.script_command(LONG, duration=30)
    return hostup_simulator


@pytest.fixture
def vid(sim: HostupSimulator) -> str:
    return sim.add_vps(name="web-01")


@pytest.fixture
def baseline(sim: HostupSimulator, vid: str) -> int:
    """Threads alive before any client exists (the simulator's accept loop included)."""
    return threading.active_count()


class _InterruptingSleep:
    """A client's ``sleep=`` that, while armed, raises KeyboardInterrupt (as Ctrl-C would)."""

    def __init__(self) -> None:
        self.armed = False
        self.sleeps = 0

    def __call__(self, seconds: float) -> None:
        if self.armed:
            self.sleeps += 1
            raise KeyboardInterrupt
        time.sleep(seconds)


# -- interrupting a sync wait -----------------------------------------------------------------


def test_ctrl_c_between_polls_leaves_no_thread_or_connection(
    sim: HostupSimulator, vid: str, baseline: int
) -> None:
    interrupting = _InterruptingSleep()
    client = HostupClient(sim.api_key, base_url=sim.base_url, sleep=interrupting)
    pid = client.start_agent_exec(vid, LONG).pid
    interrupting.armed = True
    with pytest.raises(KeyboardInterrupt):
        client.wait_for_agent_exec(vid, pid, timeout=60)
    assert interrupting.sleeps == 1  # interrupted in the first wait between polls
    assert sim.count("exec_output") == 1
    interrupting.armed = False
    # The client still works (its connection was not left half-used)...
    assert client.get_agent_exec_output(vid, pid).exited is False
    # ...and closing it closes every connection: the server's handler threads end.
    client.close()
    assert open_connections(client) == 0
    assert eventually(lambda: threading.active_count() == baseline), threading.enumerate()


def test_ctrl_c_during_a_request_closes_that_connection(
    sim: HostupSimulator, vid: str, baseline: int
) -> None:
    client = HostupClient(sim.api_key, base_url=sim.base_url, timeout=60)
    pid = client.start_agent_exec(vid, LONG).pid
    sim.inject("exec_output", Fault.delay(30))  # the server holds the poll unanswered
    main = threading.main_thread().ident
    assert main == threading.get_ident()
    timer = threading.Timer(0.3, signal.pthread_kill, (main, signal.SIGINT))

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, interrupt)
    began = time.monotonic()
    try:
        timer.start()
        with pytest.raises(KeyboardInterrupt):
            client.wait_for_agent_exec(vid, pid, timeout=60)
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, previous)
    assert time.monotonic() - began < 5  # the blocking read was interrupted at once
    assert open_connections(client) == 0  # the interrupted connection was dropped, not pooled
    assert client.get_agent_exec_output(vid, pid).exited is False  # a fresh one works
    client.close()
    # The handler still holding the delayed poll ends when the simulator stops (below); the
    # one that served the last call ends now that the client closed its connection.
    assert eventually(lambda: threading.active_count() <= baseline + 1), threading.enumerate()


# -- cancelling an async wait -----------------------------------------------------------------


@pytest.mark.parametrize("where", ["between-polls", "during-a-request"])
def test_cancelling_an_async_wait_leaves_no_task_slot_or_connection(
    sim: HostupSimulator, vid: str, baseline: int, where: str
) -> None:
    async def main() -> None:
        tasks_before = asyncio.all_tasks()
        client = AsyncHostupClient(sim.api_key, base_url=sim.base_url, max_concurrency=1)
        pid = (await client.start_agent_exec(vid, LONG)).pid
        if where == "during-a-request":
            sim.inject("exec_output", Fault.delay(30))
        polls = sim.count("exec_output")
        task = asyncio.create_task(client.wait_for_agent_exec(vid, pid, timeout=60))
        await asyncio.sleep(0.25)  # the first poll is answered at once, or held for 30 s
        assert not task.done()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        if where == "between-polls":
            assert sim.count("exec_output") == polls + 1
        assert asyncio.all_tasks() == tasks_before  # no task of the client's left running
        # The only slot (max_concurrency=1) was given back: the next call is not stuck.
        output = await asyncio.wait_for(client.get_agent_exec_output(vid, pid), 5)
        assert output.exited is False
        await client.close()
        assert open_connections(client) == 0

    asyncio.run(asyncio.wait_for(main(), 20))
    if where == "between-polls":
        assert eventually(lambda: threading.active_count() == baseline), threading.enumerate()


def test_cancelling_many_async_calls_at_once_frees_every_slot(
    sim: HostupSimulator, vid: str
) -> None:
    sim.set_latency(0.2)

    async def main() -> None:
        async with AsyncHostupClient(
            sim.api_key, base_url=sim.base_url, max_concurrency=4
        ) as client:
            tasks = [asyncio.create_task(client.get_agent_availability(vid)) for _ in range(20)]
            await asyncio.sleep(0.05)
            for task in tasks:
                task.cancel()
            results = await asyncio.gather(*tasks, return_exceptions=True)
            assert all(isinstance(r, asyncio.CancelledError) for r in results)
            sim.set_latency(0)
            # Four slots: four calls at once must all go through promptly.
            await asyncio.wait_for(
                asyncio.gather(*(client.get_agent_availability(vid) for _ in range(4))), 5
            )

    asyncio.run(main())


# -- every wait ends at its deadline ----------------------------------------------------------

DEADLINE = 0.3


WAITS: dict[str, tuple[str, str]] = {  # wait -> (which VPS, deadline keyword)
    "wait_for_agent_exec": ("running command", "timeout"),
    "wait_for_agent_available": ("stopped VM", "timeout"),
    "require_agent_available": ("stopped VM", "wait_timeout"),
}


def run(kind: str, sim: HostupSimulator, method: str, *args: Any, **kwargs: Any) -> Any:
    """Call ``method`` on a fresh client of ``kind``; raise what it raised."""
    client = {"api_key": sim.api_key, "base_url": sim.base_url}
    outcome = call(kind, method, *args, client=client, **kwargs)
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


@pytest.mark.parametrize("kind", ["sync", "async"])
@pytest.mark.parametrize("wait", WAITS)
def test_every_wait_raises_at_its_deadline(
    sim: HostupSimulator, vid: str, kind: str, wait: str
) -> None:
    stopped = sim.add_vps(name="old-01", power_state="stopped")
    pid = run("sync", sim, "start_agent_exec", vid, LONG).pid
    target, keyword = WAITS[wait]
    args = (vid, pid) if target == "running command" else (stopped,)
    began = time.monotonic()
    with pytest.raises((CommandTimeoutError, AgentUnavailableError)) as info:
        run(kind, sim, wait, *args, **{keyword: DEADLINE})
    took = time.monotonic() - began
    assert DEADLINE <= took < DEADLINE + 1.0
    message = str(info.value)
    if wait == "wait_for_agent_exec":
        assert f"did not exit within {DEADLINE:g}s (still running)" in message
        assert info.value.last_output is not None  # type: ignore[union-attr]
        assert info.value.last_output.exited is False  # type: ignore[union-attr]
    elif wait == "wait_for_agent_available":
        assert f"did not become available within {DEADLINE:g}s" in message
        assert "VM is not running" in message
    else:
        assert isinstance(info.value, AgentUnavailableError)
        assert f"after waiting {DEADLINE:g}s" in message


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_wait_ends_at_its_deadline_even_when_the_server_never_answers(
    sim: HostupSimulator, vid: str, kind: str
) -> None:
    pid = run("sync", sim, "start_agent_exec", vid, LONG).pid
    sim.inject("exec_output", Fault.delay(30), count=100)
    began = time.monotonic()
    with pytest.raises(CommandTimeoutError, match="did not exit within 1s") as info:
        run(kind, sim, "wait_for_agent_exec", vid, pid, timeout=1.0)
    # Each poll is bounded by the time left (at least 1 s, to get an answer at all).
    assert time.monotonic() - began < 2.5
    assert "no answer yet" in str(info.value)


# -- the simulator always stops ---------------------------------------------------------------


def test_simulator_stop_is_prompt_with_a_delayed_request_in_flight() -> None:
    before = set(threading.enumerate())
    sim = HostupSimulator().start()
    vid = sim.add_vps(name="web-01")
    sim.inject("probe", Fault.delay(60))
    outcome: list[Any] = []

    def request() -> None:
        with httpx.Client(base_url=sim.base_url, timeout=120) as raw:
            auth = {"Authorization": f"Bearer {sim.api_key}"}
            try:
                outcome.append(raw.get(f"/api/v2/vps/{vid}/agent/exec", headers=auth))
            except httpx.HTTPError as exc:
                outcome.append(exc)

    caller = threading.Thread(target=request)
    caller.start()
    assert eventually(lambda: sim.connections_opened == 1)
    time.sleep(0.1)  # the handler is now sleeping on the delay
    began = time.monotonic()
    sim.stop()
    assert time.monotonic() - began < 2.0
    caller.join(5)
    assert not caller.is_alive()
    assert outcome  # the client got an answer or an error, not a 60 s wait
    assert eventually(lambda: set(threading.enumerate()) <= before), threading.enumerate()
    sim.stop()  # idempotent


def test_simulator_stop_closes_connections_a_client_left_open() -> None:
    before = set(threading.enumerate())
    sim = HostupSimulator().start()
    vid = sim.add_vps(name="web-01")
    client = HostupClient(sim.api_key, base_url=sim.base_url)
    client.get_vps(vid)  # a keep-alive connection, never closed by the client
    began = time.monotonic()
    sim.stop()
    assert time.monotonic() - began < 2.0
    assert eventually(lambda: set(threading.enumerate()) <= before), threading.enumerate()
    client.close()


def test_simulator_stops_when_the_block_using_it_raises() -> None:
    before = set(threading.enumerate())
    sim = HostupSimulator()

    def use_and_fail() -> None:
        with sim:
            sim.add_vps(name="web-01")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        use_and_fail()
    assert eventually(lambda: set(threading.enumerate()) <= before)
    with pytest.raises(httpx.ConnectError):
        httpx.get(sim.base_url + "/api/v2/vps", timeout=2)
    with pytest.raises(RuntimeError, match="only once"):
        sim.start()

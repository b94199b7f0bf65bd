"""Calls end on time even when the server trickles, floods, or asks for long rate-limit waits."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from helpers import simulator

from hostup_pulumi import (
    APIConnectionError,
    APITimeoutError,
    AsyncHostupClient,
    CommandTimeoutError,
    HostupClient,
    RateLimitError,
    ValidationError,
)
from hostup_pulumi.testing import Fault

VPS = "vps_01jdemo0web000000000000001"


class _BadServer:
    """A loopback HTTP server that answers every request with ``body``, ``chunk`` bytes at a
    time with ``pause`` seconds between chunks."""

    def __init__(self, body: bytes, chunk: int, pause: float) -> None:
        self.body, self.chunk, self.pause = body, chunk, pause
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._sock.getsockname()[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.recv(65536)
                head = (
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(self.body)}\r\n\r\n"
                )
                conn.sendall(head.encode())
                for i in range(0, len(self.body), self.chunk):
                    if self._stop.is_set():
                        return
                    conn.sendall(self.body[i : i + self.chunk])
                    time.sleep(self.pause)
            except OSError:
                return

    def close(self) -> None:
        self._stop.set()
        self._sock.close()
        self._thread.join(2)


@pytest.fixture
def trickle() -> Iterator[_BadServer]:
    # A valid answer, one byte every 0.2 s: each read is quick, the whole takes ~10 s.
    server = _BadServer(b'{"available": true, "reason": null, "vmRunning": true}', 1, 0.2)
    yield server
    server.close()


def test_a_trickled_body_ends_at_the_read_timeout(trickle: _BadServer) -> None:
    with HostupClient("k", base_url=trickle.base_url, timeout=1, max_retries=0) as client:
        began = time.monotonic()
        with pytest.raises(APITimeoutError) as info:
            client.get_agent_availability(VPS)
    # connect (<= 1 s here) + read timeout 1 s, plus one chunk's pause
    assert time.monotonic() - began < 3
    assert str(info.value) == (
        f"GET /api/v2/vps/{VPS}/agent/exec failed: the answer from "
        f"127.0.0.1:{trickle.port} was still arriving after 2s (read timeout)"
    )


def test_a_trickled_body_ends_at_the_read_timeout_async(trickle: _BadServer) -> None:
    async def call() -> None:
        async with AsyncHostupClient("k", base_url=trickle.base_url, timeout=1, max_retries=0) as c:
            await c.get_agent_availability(VPS)

    began = time.monotonic()
    with pytest.raises(APITimeoutError):
        asyncio.run(call())
    assert time.monotonic() - began < 3


def test_a_wait_against_a_trickling_server_ends_at_its_deadline(trickle: _BadServer) -> None:
    with HostupClient("k", base_url=trickle.base_url, timeout=30, max_retries=0) as client:
        began = time.monotonic()
        with pytest.raises(CommandTimeoutError):
            client.wait_for_agent_available(VPS, timeout=2)
    assert time.monotonic() - began < 4


def test_a_huge_body_is_refused() -> None:
    server = _BadServer(b"0" * (9 * 1024 * 1024), 1024 * 1024, 0.0)
    try:
        with (
            HostupClient("k", base_url=server.base_url, max_retries=0) as client,
            pytest.raises(APIConnectionError, match="larger than"),
        ):
            client.get_agent_availability(VPS)
    finally:
        server.close()


def test_a_long_rate_limit_wait_does_not_hold_a_wait_past_its_deadline() -> None:
    with simulator(seed="demo") as sim:
        sim.inject("probe", Fault.rate_limited(retry_after="20"))
        with HostupClient(sim.api_key, base_url=sim.base_url, max_retries=0) as client:
            with pytest.raises(RateLimitError):
                client.get_agent_availability(VPS)  # closes the client's gate for 20 s
            began = time.monotonic()
            with pytest.raises(CommandTimeoutError):
                client.wait_for_agent_available(VPS, timeout=2)
            assert time.monotonic() - began < 3
        # Nothing was sent while the gate was closed.
        assert sim.count("probe") == 1


def test_wait_timeout_is_checked_before_any_request() -> None:
    with simulator(seed="demo") as sim:
        with HostupClient(sim.api_key, base_url=sim.base_url) as client:
            for bad in ("soon", -1, 0, float("nan"), True):
                with pytest.raises(ValidationError):
                    client.require_agent_available(VPS, wait_timeout=bad)  # type: ignore[arg-type]
        assert sim.requests == []

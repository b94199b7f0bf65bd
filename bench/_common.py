"""Shared by the benchmark scripts: the simulator in its own process, and a watchdog.

The simulator runs as ``python -m hostup_pulumi.testing`` in a child process, so its server
threads do not compete with the client under measurement for the GIL. Its counts are read
from ``GET /_simulator/stats`` over one keep-alive connection, opened before any measurement
(so it adds nothing to the connection counts taken between two readings).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import httpx

STARTUP_TIMEOUT = 30.0


@dataclass(frozen=True)
class Stats:
    """Counts the simulator reports (``GET /_simulator/stats``)."""

    requests: int
    by_route: dict[str, int]
    by_status: dict[str, int]
    connections: int

    def __sub__(self, earlier: Stats) -> Stats:
        """What happened between ``earlier`` and this reading."""

        def diff(now: dict[str, int], then: dict[str, int]) -> dict[str, int]:
            return {k: v - then.get(k, 0) for k, v in now.items() if v - then.get(k, 0)}

        return Stats(
            self.requests - earlier.requests,
            diff(self.by_route, earlier.by_route),
            diff(self.by_status, earlier.by_status),
            self.connections - earlier.connections,
        )

    def status(self, code: int) -> int:
        """How many responses had status ``code``."""
        return self.by_status.get(str(code), 0)


class SimulatorProcess:
    """``python -m hostup_pulumi.testing ARGS`` as a context manager; always stopped on exit."""

    def __init__(self, args: Sequence[str]) -> None:
        self.args = list(args)
        self.base_url = ""
        self.api_key = ""
        self._process: subprocess.Popen[str] | None = None
        self._stats_client: httpx.Client | None = None

    def __enter__(self) -> SimulatorProcess:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "hostup_pulumi.testing", *self.args],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        try:
            ready = self._first_line(self._process)
            info = json.loads(ready)
            self.base_url, self.api_key = info["base_url"], info["api_key"]
            # trust_env=False: never route loopback traffic through a configured proxy; no
            # keep-alive expiry, so that the stats connection is opened once and never again.
            limits = httpx.Limits(max_connections=1, keepalive_expiry=None)
            self._stats_client = httpx.Client(
                base_url=self.base_url, trust_env=False, limits=limits
            )
        except BaseException:
            self.stop()
            raise
        return self

    @staticmethod
    def _first_line(process: subprocess.Popen[str]) -> str:
        # Read on a thread so that a simulator that never starts cannot hang the benchmark.
        lines: list[str] = []
        reader = threading.Thread(
            target=lambda: lines.append(process.stdout.readline() if process.stdout else ""),
            daemon=True,
        )
        reader.start()
        reader.join(STARTUP_TIMEOUT)
        if not lines or not lines[0].strip():
            raise RuntimeError("the simulator did not start (no ready line)")
        return lines[0]

    def stats(self) -> Stats:
        """The simulator's counts now."""
        assert self._stats_client is not None
        data: dict[str, Any] = self._stats_client.get("/_simulator/stats").json()
        return Stats(data["requests"], data["byRoute"], data["byStatus"], data["connectionsOpened"])

    def stop(self) -> None:
        """Stop the child (SIGTERM, then SIGKILL) and reap it. Idempotent."""
        if self._stats_client is not None:
            self._stats_client.close()
            self._stats_client = None
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


_children: list[SimulatorProcess] = []


def watchdog(seconds: float) -> None:
    """Bound the benchmark's run time: after ``seconds``, stop every simulator started with
    :func:`simulator` and exit with status 2."""

    def expire() -> None:
        print(f"benchmark: gave up after {seconds:g}s", file=sys.stderr, flush=True)
        for child in list(_children):
            child.stop()
        os._exit(2)

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()
    # SIGTERM (e.g. from make or CI) stops the children too, via the context managers.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(143))


def simulator(args: Sequence[str]) -> SimulatorProcess:
    """A :class:`SimulatorProcess` that the watchdog knows about."""
    child = SimulatorProcess(args)
    _children.append(child)
    return child

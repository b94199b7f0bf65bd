"""Daemon worker threads that the program-process functions run their blocking calls on.

The Pulumi SDK's event loop carries every resource registration, so the functions' requests
run off it (docs/performance.md, "dynamic preview N=400"). Not on a ThreadPoolExecutor: at
interpreter exit it runs every queued call to its end first, so a program that failed with
hundreds of probes still queued against a slow server would not exit until each had timed
out. Daemon threads go with the process, as pending async calls do.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["DaemonThreads"]

T = TypeVar("T")
_Job = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", Callable[[], Any]]


class DaemonThreads:
    """At most ``size`` daemon threads, started as calls come, that run calls for a loop."""

    def __init__(self, size: int, name: str) -> None:
        self._size = size
        self._name = name
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._started = 0

    def run(self, call: Callable[[], T]) -> asyncio.Future[T]:
        """``call()`` on one of the threads; its result (or exception) in the running loop."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.put((loop, future, call))
        with self._lock:
            if self._started < self._size:
                self._started += 1
                name = f"{self._name}-{self._started}"
                threading.Thread(target=self._work, name=name, daemon=True).start()
        return future

    def close(self) -> None:
        """Let every thread end once the calls queued before this are done."""
        with self._lock:
            for _ in range(self._started):
                self._jobs.put(None)
            self._started = 0

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            loop, future, call = job
            if future.cancelled():  # nobody waits for it any more
                continue
            try:
                outcome: tuple[Any, BaseException | None] = (call(), None)
            except BaseException as exc:  # handed to the awaiting task
                outcome = (None, exc)
            # A closed loop raises RuntimeError: nobody can wait for the outcome any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, future, *outcome)


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)

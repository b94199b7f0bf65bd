"""Coalescing: lookups asked for close together become one request for all of them.

Used by the plugin-backed ``get_vps_agent_availability_output``: a Pulumi program that checks
a fleet asks for hundreds of VPSes at once, and every engine invoke costs the program several
milliseconds of its single thread (the SDK sends five debug-log RPCs, one at a time, for each).
One ``getVpsAgentAvailabilities`` invoke for up to :data:`LIMIT` of them costs that once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

__all__ = ["LIMIT", "WINDOW", "Coalescer"]

K = TypeVar("K")
V = TypeVar("V")

#: Seconds the first lookup of a batch waits for others (a program's calls arrive within
#: a few milliseconds of each other, once its top-level code has run).
WINDOW = 0.005
#: Lookups in one request at most.
LIMIT = 100


class Coalescer(Generic[K, V]):
    """Resolves the keys asked for within ``window`` seconds (or as soon as ``limit`` wait)
    with one ``fetch_many(keys)``, which returns a value per key in their order. A lone key
    is fetched with ``fetch_one``. If ``fetch_many`` fails, each key of that batch is fetched
    alone, so that every caller gets its own value or its own error, as without coalescing.
    """

    def __init__(
        self,
        fetch_many: Callable[[list[K]], Awaitable[list[V]]],
        fetch_one: Callable[[K], Awaitable[V]],
        *,
        window: float = WINDOW,
        limit: int = LIMIT,
    ) -> None:
        self._fetch_many = fetch_many
        self._fetch_one = fetch_one
        self._window = window
        self._limit = limit
        self._waiting: list[tuple[K, asyncio.Future[V]]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._running: set[asyncio.Task[None]] = set()  # strong references until done

    async def get(self, key: K) -> V:
        """The value for ``key``, fetched together with the others asked for meanwhile."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[V] = loop.create_future()
        self._waiting.append((key, future))
        if len(self._waiting) >= self._limit:
            self._flush()
        elif self._timer is None:
            self._timer = loop.call_later(self._window, self._flush)
        return await future

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._waiting = self._waiting, []
        if batch:
            task = asyncio.ensure_future(self._resolve(batch))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _resolve(self, batch: list[tuple[K, asyncio.Future[V]]]) -> None:
        values: list[V] | None = None
        if len(batch) > 1:
            # A failure here is not reported: each key is asked again alone, below, and
            # gets its own error (the batch's may belong to another key).
            with contextlib.suppress(Exception):
                values = await self._fetch_many([key for key, _ in batch])
        if values is not None and len(values) == len(batch):
            for (_, future), value in zip(batch, values, strict=True):
                _settle(future, value, None)
            return
        await asyncio.gather(*(self._alone(key, future) for key, future in batch))

    async def _alone(self, key: K, future: asyncio.Future[V]) -> None:
        try:
            value = await self._fetch_one(key)
        except Exception as exc:  # handed to the caller that asked
            _settle(future, None, exc)
        else:
            _settle(future, value, None)


def _settle(future: asyncio.Future[V], value: V | None, error: Exception | None) -> None:
    if future.done():  # the caller went away (cancelled)
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)  # type: ignore[arg-type]

"""The one fake clock: a monotonic clock for a Core or a client, and sleeps that move it."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta, timezone

#: The wall-clock time of ``FakeClock(...).t == 0``.
EPOCH = datetime(2026, 4, 27, 12, 0, 0, tzinfo=timezone.utc)


class FakeClock:
    """A monotonic clock that moves only when slept on or set (``clock.t = ...``).

    With ``real=True`` it also moves with real time, and each sleep returns at once but adds
    its seconds: for clients talking real HTTP, whose backoff and requested waits then cost
    no test time. Pass it as ``clock=`` and its :meth:`sleep` (or :meth:`async_sleep`) as
    ``sleep=``. Every sleep is recorded in ``sleeps``.
    """

    def __init__(self, start: float = 0.0, *, real: bool = False) -> None:
        self._real = real
        self._offset = start - self._real_now()
        self.sleeps: list[float] = []

    def _real_now(self) -> float:
        return time.monotonic() if self._real else 0.0

    @property
    def t(self) -> float:
        """The clock's time now."""
        return self._real_now() + self._offset

    @t.setter
    def t(self, value: float) -> None:
        self._offset = value - self._real_now()

    def __call__(self) -> float:
        return self.t

    def wall(self) -> datetime:
        """The UTC time matching ``t`` (``EPOCH`` at 0)."""
        return EPOCH + timedelta(seconds=self.t)

    def sleep(self, seconds: float) -> None:
        """Record the sleep and move the clock on by it, at once."""
        self.sleeps.append(seconds)
        self._offset += max(0.0, seconds)

    async def async_sleep(self, seconds: float) -> None:
        """:meth:`sleep` for the async client (still a point where a task can be cancelled)."""
        self.sleep(seconds)
        await asyncio.sleep(0)

"""The steps a flow yields, which the clients carry out: :class:`Send` a request (and hand
back its read response or transport error) and :class:`Sleep`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx

from ._outcomes import LargeBody, SlowBody

__all__ = ["Flow", "Send", "Sleep", "Step"]

T = TypeVar("T")


@dataclass(frozen=True)
class Send:
    """Send this request and hand back the read response, or the TransportError raised.

    httpx's read timeout bounds each read, not the whole body: a server that trickles bytes
    could hold a call forever. So the shell reads the body in chunks and calls
    :meth:`overrun` after each; past ``deadline`` (on ``clock``; the attempt began at
    ``started``) or ``max_bytes`` it raises.
    """

    request: httpx.Request
    deadline: float = math.inf
    clock: Callable[[], float] = field(default=time.monotonic, compare=False, repr=False)
    max_bytes: int = 8 * 1024 * 1024
    started: float = 0.0

    def overrun(self, size: int) -> None:
        """Raise an httpx error once the body is too slow (past the deadline) or too big."""
        if self.clock() > self.deadline:
            raise SlowBody(self.deadline - self.started, self.request)
        if size > self.max_bytes:
            raise LargeBody(
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

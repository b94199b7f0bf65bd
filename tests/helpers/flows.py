"""The one way to drive a core flow: carry out its Send and Sleep steps as the clients do."""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

import httpx

from hostup_pulumi._steps import Sleep

from .clock import FakeClock

#: What a Send gets back: a read response, or the transport error the request raised.
Answer = httpx.Response | Exception


class FlowDriver:
    """Runs flows on a :class:`FakeClock`: each Send is answered from ``answers`` (a list,
    taken in order, or a handler called with the request; a handler may raise an
    ``httpx.TransportError`` or return any exception), each Sleep moves the clock, and each
    request takes ``latency`` seconds. Records the requests, when each was sent, and the
    sleeps (``sleeps`` in seconds, ``steps`` as the Sleep steps themselves)."""

    def __init__(
        self,
        answers: list[Answer] | Callable[[httpx.Request], Answer],
        clock: FakeClock | None = None,
        latency: float = 0.0,
    ) -> None:
        self.clock = clock if clock is not None else FakeClock()
        self.answers = answers
        self.latency = latency
        self.requests: list[httpx.Request] = []
        self.sent_at: list[float] = []
        self.steps: list[Sleep] = []

    @property
    def sleeps(self) -> list[float]:
        """The seconds of every Sleep, in order."""
        return [step.seconds for step in self.steps]

    def _answer(self, request: httpx.Request) -> Answer:
        if callable(self.answers):
            try:
                return self.answers(request)
            except httpx.TransportError as exc:
                return exc
        assert self.answers, f"unexpected extra request {request.method} {request.url}"
        return self.answers.pop(0)

    def run(self, flow: Generator[Any, Any, Any]) -> Any:
        """Run ``flow`` to its end; return its value (or let its exception out)."""
        outcome: Any = None
        try:
            while True:
                step = flow.send(outcome)
                if isinstance(step, Sleep):
                    assert step.seconds >= 0
                    self.steps.append(step)
                    self.clock.t += step.seconds
                    outcome = None
                else:
                    self.requests.append(step.request)
                    self.sent_at.append(self.clock.t)
                    outcome = self._answer(step.request)
                    self.clock.t += self.latency
        except StopIteration as stop:
            return stop.value
        finally:
            flow.close()

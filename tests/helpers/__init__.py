"""Helpers shared by the tests (importable as ``helpers``: pytest puts ``tests/`` on the path).

One fake clock (:class:`FakeClock`), one way to drive a core flow (:class:`FlowDriver`), one
``eventually``, one way to call a client method as the sync or the async client
(:func:`call`), and one factory for a simulator with options (:func:`simulator`). Tests that
need a plain simulator use the package's own pytest fixture, ``hostup_simulator``.
"""

from .clients import KINDS, call
from .clock import EPOCH, FakeClock
from .flows import Answer, FlowDriver
from .simulators import simulator
from .waiting import eventually

__all__ = [
    "EPOCH",
    "KINDS",
    "Answer",
    "FakeClock",
    "FlowDriver",
    "call",
    "eventually",
    "simulator",
]

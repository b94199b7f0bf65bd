"""Pytest plugin (entry point ``pytest11``) providing the ``hostup_simulator`` fixture."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .simulator import HostupSimulator


@pytest.fixture
def hostup_simulator() -> Iterator[HostupSimulator]:
    """A started, empty ``HostupSimulator``, stopped after the test."""
    with HostupSimulator() as sim:
        yield sim

"""The one factory for a simulator with options (a rate limit, latency, a seed).

A test that needs a plain simulator takes the package's fixture ``hostup_simulator``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from hostup_pulumi.testing import HostupSimulator


@contextmanager
def simulator(**options: Any) -> Iterator[HostupSimulator]:
    """A started :class:`HostupSimulator` built with ``options``, stopped on exit."""
    with HostupSimulator(**options) as sim:
        yield sim

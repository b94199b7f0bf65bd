"""The one ``eventually``: for what another thread or process does in its own time."""

from __future__ import annotations

import time
from collections.abc import Callable


def eventually(predicate: Callable[[], bool], timeout: float = 3.0) -> bool:
    """Whether ``predicate`` becomes true within ``timeout`` seconds (checked every 10 ms)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True

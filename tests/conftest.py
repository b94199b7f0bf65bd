"""Shared test setup: keep the developer's own HostUp settings out of every test, and give the
package's simulator fixture a short name. Shared helpers are in tests/helpers/."""

from __future__ import annotations

import pytest

from hostup_pulumi.testing import HostupSimulator


@pytest.fixture(autouse=True)
def _no_hostup_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """A HOSTUP_* variable set in the shell must not change what a test sees."""
    for name in (
        "HOSTUP_API_KEY",
        "HOSTUP_BASE_URL",
        "HOSTUP_SESSION_COOKIE",
        "HOSTUP_MAX_CONCURRENCY",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def sim(hostup_simulator: HostupSimulator) -> HostupSimulator:
    """The package's ``hostup_simulator`` fixture (a started, empty simulator), as ``sim``.

    A module may override it to add setup, building on ``hostup_simulator``."""
    return hostup_simulator

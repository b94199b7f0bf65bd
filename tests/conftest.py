"""Shared test setup: keep the developer's own HostUp settings out of every test."""

from __future__ import annotations

import pytest


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

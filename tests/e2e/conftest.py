"""End-to-end fixtures: the real ``pulumi`` CLI, a local file backend, the HostUp simulator.

Every test copies the example it runs into its own ``tmp_path`` with the repo's layout
(``<tmp>/examples/<name>`` and ``<tmp>/.venv`` -> the repo's virtualenv), so the shipped
``Pulumi.yaml`` files run unchanged and stack files, state and ``PULUMI_HOME`` never touch
the repo. A missing engine fails the tests (it never skips them): CI must not pass without it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from e2e_helpers import API_KEY, RUN_TIMEOUT, Stack, copy_example, install_plugin

from hostup_pulumi.testing import HostupSimulator
from hostup_pulumi.testing.engine import EngineNotFoundError, PulumiStack, find_engine


@pytest.fixture(scope="session")
def pulumi_bin() -> Path:
    """The engine's bin dir (``HOSTUP_PULUMI_BIN``, else PATH). Missing: fail, never skip."""
    chosen = os.environ.get("HOSTUP_PULUMI_BIN")
    if chosen and not (Path(chosen) / "pulumi").is_file():
        # Set but wrong: do not quietly test whatever pulumi is on PATH instead.
        pytest.fail(f"HOSTUP_PULUMI_BIN={chosen} holds no pulumi executable", pytrace=False)
    try:
        bin_dir = find_engine()
    except EngineNotFoundError as exc:
        pytest.fail(f"end-to-end tests need the Pulumi engine: {exc}", pytrace=False)
    host = shutil.which("pulumi-language-python", path=str(bin_dir))
    if host is None:
        pytest.fail(f"{bin_dir} has pulumi but no pulumi-language-python", pytrace=False)
    try:
        version = subprocess.run(
            [str(bin_dir / "pulumi"), "version"],
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT,
            check=True,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.fail(f"{bin_dir / 'pulumi'} does not run: {exc}", pytrace=False)
    if not version.stdout.strip():
        pytest.fail(f"{bin_dir / 'pulumi'} version printed nothing", pytrace=False)
    return bin_dir


@pytest.fixture
def sim() -> Iterator[HostupSimulator]:
    """The demo world (web-01 available, db-01's agent silent, old-01 stopped) on a fresh
    simulator per test, with a distinctive API key."""
    with HostupSimulator(seed="demo", api_key=API_KEY) as simulator:
        yield simulator


@pytest.fixture
def make_stack(pulumi_bin: Path, sim: HostupSimulator, tmp_path: Path) -> Callable[..., Stack]:
    """``make_stack("run-command", vpsId=WEB, ...)``: a copied example's stack pointed at
    ``sim`` (``hostup:baseUrl``, secret ``hostup:apiKey``) with the given project config.
    ``plugin=True`` installs the native hostup plugin into the stack's PULUMI_HOME first."""

    def make(example: str, name: str = "e2e", *, plugin: bool = False, **config: str) -> Stack:
        root = tmp_path / example
        project = copy_example(root, example)
        if plugin:
            install_plugin(pulumi_bin, root / "state" / "pulumi-home")
        pulumi = PulumiStack.create(
            project, root / "state", name, bin_dir=pulumi_bin, timeout=RUN_TIMEOUT
        )
        stack = Stack(pulumi, root)
        stack.stack.configure_hostup(sim.base_url, sim.api_key)
        for key, value in config.items():
            stack.set(key, value)
        return stack

    return make

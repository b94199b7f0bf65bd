"""The TypeScript and Go examples on the real engine, through their generated SDKs.

Their language hosts cannot be built here, so each example's own program function runs
inline through the Automation API (examples/typescript/inline.ts, examples/go/inline_test.go),
which hosts the language runtime itself and drives the `pulumi` CLI that `make engine` built,
with the hostup plugin that set-up installs, against the simulator with two accounts. A
missing node, npm or go fails these tests: they never skip.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from e2e_helpers import (
    API_KEY,
    BETA_KEY,
    DB,
    DB_REASON,
    REPO,
    RUN_TIMEOUT,
    WEB,
    assert_each_vps_saw_only_its_key,
    beta_account,
    install_plugin,
)

from hostup_pulumi.testing import HostupSimulator
from hostup_pulumi.testing.engine import TEST_PASSPHRASE

pytestmark = pytest.mark.e2e

LANGUAGES = ["typescript", "go"]
#: Compiling the Go program the first time (pulumi's SDK and the Automation API) takes minutes.
BUILD_TIMEOUT = 900.0


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"the {name} examples' tests need `{name}` on PATH", pytrace=False)
    return found


def _build(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> None:
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=BUILD_TIMEOUT,
                          env={**os.environ, **(env or {})}, check=False)  # fmt: skip
    if proc.returncode != 0:
        pytest.fail(f"{' '.join(argv)} in {cwd} failed:\n{proc.stdout}{proc.stderr}", pytrace=False)


@pytest.fixture(scope="session")
def inline_drivers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """Each example built once: the command that runs its program inline."""
    typescript = REPO / "examples" / "typescript"
    _tool("node")
    npm = _tool("npm")
    # The lockfile's registry packages and the SDK tarball that `make sdk` packed.
    stamp = typescript / "node_modules" / ".package-lock.json"
    lock = typescript / "package-lock.json"
    if not stamp.is_file() or stamp.stat().st_mtime < lock.stat().st_mtime:
        _build([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], typescript)
    _build([npm, "exec", "--no", "--", "tsc"], typescript)
    go = _tool("go")
    binary = tmp_path_factory.mktemp("go") / "inline.test"
    _build([go, "test", "-c", "-o", str(binary), "."], REPO / "examples" / "go",
           env={"GOWORK": "off", "GOFLAGS": "-mod=readonly"})  # fmt: skip
    return {
        "typescript": ["node", str(typescript / "bin" / "inline.js")],
        "go": [str(binary), "-test.run", "^TestInline$", "-test.v"],
    }


@dataclass
class InlineStack:
    """One example's stack, each action a run of its inline driver."""

    language: str
    driver: list[str]
    pulumi_bin: Path
    root: Path
    config: dict[str, dict[str, Any]]
    stderr: list[str] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "PULUMI_ROOT": str(self.pulumi_bin.parent),
            "PULUMI_HOME": str(self.root / "home"),
            "PULUMI_BACKEND_URL": (self.root / "backend").as_uri(),
            "PULUMI_CONFIG_PASSPHRASE": TEST_PASSPHRASE,
            "PULUMI_SKIP_UPDATE_CHECK": "true",
            "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
            "HOSTUP_INLINE_WORKDIR": str(self.root / "work"),
            "HOSTUP_INLINE_CONFIG": json.dumps(self.config),
            "HOSTUP_INLINE_ACTION": "",
        }

    def run(self, action: str, *, ok: bool = True) -> dict[str, Any]:
        """The action's result (``summary``, ``outputs``) or, when it fails, ``message``."""
        env = {**self.env, "HOSTUP_INLINE_ACTION": action}
        argv = self.driver + ([action] if self.language == "typescript" else [])
        proc = subprocess.run(argv, cwd=self.root, env=env, capture_output=True, text=True,
                              timeout=RUN_TIMEOUT, check=False)  # fmt: skip
        self.stderr.append(proc.stderr)
        marker = "HOSTUP_INLINE_RESULT " if ok else "HOSTUP_INLINE_ERROR "
        lines = [line for line in proc.stdout.splitlines() if line.startswith(marker)]
        if (proc.returncode == 0) != ok or len(lines) != 1:
            expected = "success" if ok else "failure"
            pytest.fail(f"{self.language} inline {action}: expected {expected}, exit "
                        f"{proc.returncode}:\n{proc.stdout}{proc.stderr}")  # fmt: skip
        return json.loads(lines[0][len(marker) :])  # type: ignore[no-any-return]

    def export(self) -> str:
        """``pulumi stack export`` through the CLI (secrets stay encrypted)."""
        proc = subprocess.run(
            [str(self.pulumi_bin / "pulumi"), "stack", "export", "--stack", "dev"],
            cwd=self.root / "work", env=self.env, capture_output=True, text=True,
            timeout=RUN_TIMEOUT, check=True,
        )  # fmt: skip
        return proc.stdout

    def transcript(self) -> str:
        return "\n".join(self.stderr)


@pytest.fixture
def inline_stack(
    inline_drivers: dict[str, list[str]], pulumi_bin: Path, sim: HostupSimulator, tmp_path: Path
) -> Any:
    def make(language: str, vps_id: str, beta_vps: str) -> InlineStack:
        (tmp_path / "work").mkdir()
        (tmp_path / "backend").mkdir()
        install_plugin(pulumi_bin, tmp_path / "home")
        config = {
            "hostup:baseUrl": {"value": sim.base_url},
            "hostup:apiKey": {"value": API_KEY, "secret": True},
            "vpsId": {"value": vps_id},
            "otherVpsId": {"value": beta_vps},
            "otherApiKey": {"value": BETA_KEY, "secret": True},
            "otherBaseUrl": {"value": sim.base_url},
        }
        return InlineStack(language, inline_drivers[language], pulumi_bin, tmp_path, config)

    return make


def _no_frames(text: str) -> None:
    assert "Traceback" not in text
    assert 'File "' not in text


@pytest.mark.parametrize("language", LANGUAGES)
def test_example_program_through_its_lifecycle(
    language: str, inline_stack: Any, sim: HostupSimulator
) -> None:
    sim.script_command("uname -a", stdout="INLINE_STDOUT_MARKER\n")
    beta_vps = beta_account(sim)
    stack: InlineStack = inline_stack(language, WEB, beta_vps)

    up = stack.run("up")
    assert up["summary"] == {"create": 6}
    outputs = {name: output["value"] for name, output in up["outputs"].items()}
    assert outputs["available"] is True
    assert outputs["otherAvailable"] is True
    assert [(item["vpsId"], item["available"]) for item in outputs["fleet"]] == [(WEB, True)]
    assert (outputs["exitCode"], outputs["otherExitCode"]) == (0, 0)
    assert outputs["stdout"] == "INLINE_STDOUT_MARKER\n"
    assert up["outputs"]["stdout"]["secret"] is True
    assert up["outputs"]["otherStdout"]["secret"] is True
    assert sim.count("exec_start") == 2
    assert_each_vps_saw_only_its_key(sim, {WEB: {API_KEY}, beta_vps: {BETA_KEY}})
    state = stack.export()
    for secret in (API_KEY, BETA_KEY, "INLINE_STDOUT_MARKER"):
        assert secret not in state
    assert '"type": "hostup:index:AgentExecResult"' in state

    # Nothing to do a second time: no command runs again.
    again = stack.run("up")
    assert set(again["summary"]) == {"same"}
    stack.run("refresh")
    stack.run("preview-no-changes")
    assert sim.count("exec_start") == 2

    stack.run("destroy")
    assert "hostup:index:" not in stack.export()
    assert API_KEY not in stack.transcript()
    assert BETA_KEY not in stack.transcript()


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_malformed_vps_id_fails_with_the_same_one_line_message(
    language: str, inline_stack: Any, sim: HostupSimulator
) -> None:
    stack: InlineStack = inline_stack(language, "10.0.0.7", beta_account(sim))

    failed = stack.run("preview", ok=False)

    text = failed["message"] + stack.transcript()
    assert "vps_id '10.0.0.7' is an IP address, not a VPS id" in text
    assert "hostup-pulumi list-vps --primary-ip 10.0.0.7" in text
    _no_frames(text)
    assert sim.count("exec_start") == 0


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_gate_fails_preview_with_hostups_reason(
    language: str, inline_stack: Any, sim: HostupSimulator
) -> None:
    stack: InlineStack = inline_stack(language, DB, beta_account(sim))

    failed = stack.run("preview", ok=False)

    text = failed["message"] + stack.transcript()
    assert DB in text
    assert DB_REASON in text
    _no_frames(text)
    assert sim.count("exec_start") == 0

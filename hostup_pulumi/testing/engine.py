"""Run the real Pulumi CLI on a project, offline, with a local file backend.

Used by ``make demo`` and the end-to-end tests, and usable for testing your own programs
against the simulator::

    with HostupSimulator(seed="demo") as sim:
        stack = PulumiStack.create(project_dir, state_dir, "dev")
        stack.configure_hostup(sim.base_url, sim.api_key)
        stack.run("up", "--yes")
        print(stack.outputs())

Every run is offline: no update check, no plugin downloads, ``PULUMI_HOME`` and the backend
under ``state_dir``, and a passphrase secrets provider meant for local test stacks only.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["EngineNotFoundError", "PulumiStack", "find_engine", "session_members"]

#: Only for throw-away local stacks (demo and tests); real stacks choose their own provider.
TEST_PASSPHRASE = "hostup-pulumi-local-test-stacks-only"  # noqa: S105 - not a credential


class EngineNotFoundError(RuntimeError):
    """No ``pulumi`` CLI: neither ``HOSTUP_PULUMI_BIN`` nor ``PATH`` has one."""


def find_engine(bin_dir: str | os.PathLike[str] | None = None) -> Path:
    """The directory holding ``pulumi`` and its Python plugins: ``bin_dir``, else
    ``$HOSTUP_PULUMI_BIN``, else wherever ``pulumi`` is on PATH."""
    candidates = [bin_dir, os.environ.get("HOSTUP_PULUMI_BIN")]
    for candidate in candidates:
        if candidate and (Path(candidate) / "pulumi").is_file():
            return Path(candidate).resolve()
    found = shutil.which("pulumi")
    if found:
        return Path(found).resolve().parent
    raise EngineNotFoundError(
        "no pulumi CLI found: run tools/install-pulumi (it builds one with Go) and set "
        "HOSTUP_PULUMI_BIN to the directory it prints, or install Pulumi "
        "(https://www.pulumi.com/docs/install/)"
    )


def _run_group(
    argv: list[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    input: str | None,
    timeout: float,
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` in a session of its own; past ``timeout``, kill everything it started.

    ``pulumi`` starts a language host, the program and provider plugins: killing only
    ``pulumi`` (as ``subprocess.run`` does) would leave them running, orphaned (and holding
    any pipes they share with it open, so the wait for output might never end).
    """
    with subprocess.Popen(  # noqa: S603 - a fixed program with our arguments
        argv,
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as proc:
        try:
            stdout, stderr = proc.communicate(input, timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            stdout, stderr = proc.communicate()
            raise subprocess.TimeoutExpired(argv, timeout, stdout, stderr) from None
        finally:
            if proc.poll() is None:  # interrupted (e.g. Ctrl-C): leave nothing behind
                _kill_group(proc)
        # Plugins outlive the CLI only if something went wrong; do not let them linger. The
        # CLI itself has been reaped, so its pid (and group id) may already be reused.
        _kill_group(proc, reaped=True)
    return subprocess.CompletedProcess(argv, proc.returncode, stdout, stderr)


def _kill_group(proc: subprocess.Popen[str], *, reaped: bool = False) -> None:
    """SIGKILL everything ``proc`` started: its session where the OS can list it.

    The CLI starts its plugins in process groups of their own (but in its session), so
    killing only its process group would leave them running. Once ``proc`` is ``reaped``
    only the listed session members are killed, never a group by a pid that may be reused.
    """
    killpg = getattr(os, "killpg", None)
    if killpg is None:  # Windows: no sessions or process groups of this kind
        if proc.poll() is None:
            proc.kill()
        return
    for pid in ([] if reaped else [proc.pid]) + session_members(proc.pid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if pid == proc.pid:
                killpg(pid, signal.SIGKILL)
            else:
                os.kill(pid, signal.SIGKILL)


def session_members(sid: int) -> list[int]:
    """Live processes in session ``sid`` (Linux ``/proc``; none found elsewhere): what a
    run started, for a test that checks nothing was left behind."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # "pid (comm) state ppid pgrp session ...": comm may hold spaces and parens.
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 3 and fields[3] == str(sid) and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


@dataclass
class PulumiStack:
    """One stack of one project, driven through the ``pulumi`` CLI."""

    project_dir: Path
    state_dir: Path
    name: str
    bin_dir: Path
    env_extra: dict[str, str] = field(default_factory=dict)
    #: Seconds any one CLI run may take (then its whole process tree is killed).
    timeout: float = 600.0

    @classmethod
    def create(
        cls,
        project_dir: str | os.PathLike[str],
        state_dir: str | os.PathLike[str],
        name: str,
        *,
        bin_dir: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float = 600.0,
    ) -> PulumiStack:
        """Log in to a file backend under ``state_dir`` and select (or create) the stack.
        ``timeout`` is the default limit of each CLI run, in seconds."""
        stack = cls(
            Path(project_dir).resolve(),
            Path(state_dir).resolve(),
            name,
            find_engine(bin_dir),
            dict(env or {}),
            timeout,
        )
        (stack.state_dir / "backend").mkdir(parents=True, exist_ok=True)
        stack.run("stack", "select", "--create", name, with_stack=False)
        return stack

    @property
    def env(self) -> dict[str, str]:
        """The environment of every CLI run (offline settings, local backend)."""
        env = dict(os.environ)
        # Never inherit a real key or endpoint by accident: each stack says what it uses.
        for key in ("HOSTUP_API_KEY", "HOSTUP_BASE_URL", "HOSTUP_SESSION_COOKIE"):
            env.pop(key, None)
        env.update(
            PATH=f"{self.bin_dir}{os.pathsep}{env.get('PATH', '')}",
            PULUMI_HOME=str(self.state_dir / "pulumi-home"),
            PULUMI_BACKEND_URL=(self.state_dir / "backend").as_uri(),
            PULUMI_SKIP_UPDATE_CHECK="true",
            PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION="true",
            PULUMI_CONFIG_PASSPHRASE=TEST_PASSPHRASE,
            PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK="true",
        )
        env.update(self.env_extra)
        return env

    def run(
        self,
        *args: str,
        with_stack: bool = True,
        check: bool = True,
        input: str | None = None,
        timeout: float | None = None,
        extra_env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``pulumi ARGS --stack NAME`` in the project; on failure (``check``) raise
        CalledProcessError carrying the command's output. Past ``timeout`` seconds (default:
        the stack's) the run's process tree is killed and TimeoutExpired raised."""
        flags = ["--non-interactive"] + (["--stack", self.name] if with_stack else [])
        # Flags go before a "--" (after it everything is a value).
        cut = args.index("--") if "--" in args else len(args)
        argv = [str(self.bin_dir / "pulumi"), *args[:cut], *flags, *args[cut:]]
        env = self.env
        env.update(extra_env or {})
        limit = self.timeout if timeout is None else timeout
        proc = _run_group(argv, cwd=self.project_dir, env=env, input=input, timeout=limit)
        if check and proc.returncode != 0:
            raise subprocess.CalledProcessError(
                proc.returncode, argv, output=proc.stdout, stderr=proc.stderr
            )
        return proc

    def set_config(self, key: str, value: str, *, secret: bool = False) -> None:
        """``pulumi config set`` (a secret value goes through stdin, never argv)."""
        if secret:
            self.run("config", "set", "--secret", key, input=value)
        else:
            self.run("config", "set", key, "--", value)

    def configure_hostup(self, base_url: str, api_key: str) -> None:
        """Point the stack at a HostUp API (e.g. the simulator): ``hostup:baseUrl`` and the
        secret ``hostup:apiKey``."""
        self.set_config("hostup:baseUrl", base_url)
        self.set_config("hostup:apiKey", api_key, secret=True)

    def outputs(self, *, show_secrets: bool = False) -> dict[str, Any]:
        """``pulumi stack output --json``."""
        args = ["stack", "output", "--json"] + (["--show-secrets"] if show_secrets else [])
        return json.loads(self.run(*args).stdout)  # type: ignore[no-any-return]

    def export(self) -> dict[str, Any]:
        """``pulumi stack export`` (the state, secrets encrypted)."""
        return json.loads(self.run("stack", "export").stdout)  # type: ignore[no-any-return]

    def resources(self, type_suffix: str = "") -> Sequence[dict[str, Any]]:
        """Resources in the state whose type ends with ``type_suffix``."""
        deployment = self.export().get("deployment", {})
        return [
            r for r in deployment.get("resources", []) if str(r.get("type")).endswith(type_suffix)
        ]

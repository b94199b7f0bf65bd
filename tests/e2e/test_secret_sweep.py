"""Secret-leak sweep: the API key never appears, command output only as ciphertext.

Every example runs under the real engine with verbose engine logs (``-v=8 --logtostderr
--logflow``: the most verbose level at which the engine keeps secrets out of its logs; see
``test_engine_logs_at_v9_print_secrets``) and with Python logging at DEBUG in the program and
provider processes (a ``sitecustomize`` on ``PYTHONPATH``, for these runs only). Then
everything is searched for the distinctive key and a distinctive stdout marker: all CLI
output, every file of the stacks (config, state, history, backups, PULUMI_HOME and its logs,
the DEBUG logs), ``pulumi stack export`` and every decoded ``__provider`` blob. In-process
tests do the same for exception texts (and their pickles, chains and attributes), reprs of
clients, settings and results, and DEBUG log records. Rotating the key re-runs nothing.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import pickle
import threading
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dill
import pytest
from e2e_helpers import (
    API_KEY,
    DB,
    RUN_TIMEOUT,
    WEB,
    Stack,
    copy_example,
    files_under,
    resource_summary,
)

from hostup_pulumi import (
    AsyncHostupClient,
    CommandFailedError,
    CommandTimeoutError,
    ConfigurationError,
    HostupClient,
    HostupError,
    Settings,
)
from hostup_pulumi._retry import RetryPolicy
from hostup_pulumi.resources import _AgentCommandProvider, _AgentExecResultProvider
from hostup_pulumi.testing import Fault, HostupSimulator
from hostup_pulumi.testing.engine import PulumiStack

pytestmark = pytest.mark.e2e

#: What the commands print: may appear in state only as ciphertext.
MARKER = "E2E_SWEEP_STDOUT_MARKER_c0ffee42"
COMMAND = "echo sweep"
SECRET_SIG = "4dabf18193072939515e22adb298388d"  # Pulumi's marker of a secret value
VERBOSE = ("-v=8", "--logtostderr", "--logflow")
FAILING = "exit-3-sweep"
#: label -> (example, project config, whether `pulumi up` succeeds). The failing ones take
#: the error paths: a failed precondition, and a command whose non-zero exit fails the update
#: (its output, the marker, must stay out of the error).
STACKS: dict[str, tuple[str, dict[str, str], bool]] = {
    "flagship": ("flagship", {"command": COMMAND}, True),
    "quickstart": ("quickstart", {}, True),
    "precondition": ("precondition", {"vpsId": WEB}, True),
    "run-command": ("run-command", {"vpsId": WEB, "command": COMMAND}, True),
    "fleet": ("fleet", {}, True),
    "precondition-fails": ("precondition", {"vpsId": DB}, False),
    "command-fails": (
        "run-command", {"vpsId": WEB, "command": FAILING, "failOnNonzeroExit": "true"}, False
    ),
}  # fmt: skip
SITECUSTOMIZE = """\
import logging, os
_dir = os.environ.get("HOSTUP_SWEEP_LOG_DIR")
if _dir:  # every Python process of the run logs everything at DEBUG to its own file
    logging.basicConfig(
        level=logging.DEBUG,
        filename=os.path.join(_dir, f"python-{os.getpid()}.log"),
        format="%(process)d %(name)s %(levelname)s %(message)s",
    )
"""


def holding(paths: list[Path], *needles: str) -> list[str]:
    """The files (and which needle) holding any of ``needles`` in plain text."""
    found = []
    for path in paths:
        data = path.read_bytes()
        found += [f"{path}: {n[:12]}..." for n in needles if n.encode() in data]
    return found


def provider_blobs(deployment: dict[str, Any]) -> list[bytes]:
    """Every ``__provider`` blob of a (``--show-secrets``) export, base64-decoded."""
    blobs = []
    for resource in deployment["deployment"].get("resources") or []:
        for section in ("inputs", "outputs"):
            value = (resource.get(section) or {}).get("__provider")
            if isinstance(value, dict) and "plaintext" in value:  # a secret, revealed
                value = json.loads(value["plaintext"])
            if value is not None:
                blobs.append(base64.b64decode(value))
    return blobs


def show_secrets_export(stack: Stack) -> str:
    """``pulumi stack export --show-secrets``, kept out of the transcript."""
    run = stack.run("stack", "export", "--show-secrets")
    stack.runs.remove(run)
    return run.stdout


@pytest.fixture
def debug_env(tmp_path: Path) -> tuple[dict[str, str], Path]:
    site, logs = tmp_path / "site", tmp_path / "python-logs"
    site.mkdir()
    logs.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    paths = [str(site), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {"PYTHONPATH": os.pathsep.join(paths), "HOSTUP_SWEEP_LOG_DIR": str(logs)}, logs


def sweep_stack(
    label: str, pulumi_bin: Path, sim: HostupSimulator, root: Path, env: dict[str, str]
) -> Stack:
    """Like the ``make_stack`` fixture, with a root per label (two stacks of one example)."""
    example, config, _ = STACKS[label]
    project = copy_example(root / label, example)
    pulumi = PulumiStack.create(
        project, root / label / "state", "e2e", bin_dir=pulumi_bin, timeout=RUN_TIMEOUT
    )
    pulumi.env_extra.update(env)
    stack = Stack(pulumi, root / label)
    pulumi.configure_hostup(sim.base_url, sim.api_key)
    for key, value in config.items():
        stack.set(key, value)
    return stack


def test_every_example_keeps_the_key_and_command_output_secret(
    pulumi_bin: Path,
    sim: HostupSimulator,
    debug_env: tuple[dict[str, str], Path],
    tmp_path: Path,
) -> None:
    env, python_logs = debug_env
    sim.script_command(COMMAND, stdout=MARKER + "\n", stderr=MARKER + "-stderr\n")
    sim.script_command(FAILING, stdout=MARKER, stderr=MARKER, exit_code=3)
    stacks = {label: sweep_stack(label, pulumi_bin, sim, tmp_path, env) for label in STACKS}

    # `up` every stack at once (their runs are independent; the simulator is shared).
    ups: dict[str, Any] = {}

    def up(label: str) -> None:
        ups[label] = stacks[label].run("up", "--yes", *VERBOSE, ok=None)

    threads = [threading.Thread(target=up, args=(label,)) for label in stacks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for label, (_, _, succeeds) in STACKS.items():
        run = ups[label]
        assert (run.returncode == 0) is succeeds, f"{label}: `pulumi up`:\n{run.output[-3000:]}"
        assert '"v":7' in run.stderr  # the engine's verbose log is really in the output
    assert "exited with code 3" in ups["command-fails"].output
    assert "QEMU guest agent is not responding" in ups["precondition-fails"].output
    # A refresh re-reads the command's output through the provider process.
    for name in ("flagship", "run-command"):
        stacks[name].run("refresh", "--yes", *VERBOSE)
    assert sim.count("exec_start") == 4  # flagship, run-command, its failing twin, precondition

    for name, stack in stacks.items():
        if not STACKS[name][2]:
            continue  # nothing (precondition) or only the command's record (failed) in state
        # The state: no key anywhere; the command's output only as ciphertext.
        text, state = stack.export()
        assert API_KEY not in text, name
        assert MARKER not in text, name
        for resource in state["deployment"]["resources"]:
            if resource["type"].endswith("AgentExecResult"):
                for field in ("stdout", "stderr"):
                    secret = resource["outputs"][field]
                    assert secret[SECRET_SIG], (name, field)
                    assert secret["ciphertext"], (name, field)
        # Revealed, the state holds the output (so the check above is not vacuous) and the
        # key only as the provider's secret config; the pickled providers hold neither.
        revealed = show_secrets_export(stack)
        if name in ("flagship", "run-command"):
            assert MARKER in revealed
        blobs = provider_blobs(json.loads(revealed))
        if name in ("flagship", "run-command", "precondition"):
            assert blobs, f"{name}: no __provider blob in the state"
        for blob in blobs:
            assert API_KEY.encode() not in blob, name
            assert MARKER.encode() not in blob, name
            assert dill.loads(blob).__class__.__name__.endswith("Provider")

    # Every file: stack config, state and its history/backups, PULUMI_HOME (engine logs),
    # and the DEBUG logs of every Python process.
    files = files_under(tmp_path)
    assert sum(p.name == "e2e.json" for p in files) == len(STACKS)
    assert any("pulumi-home" in p.parts and "logs" in p.parts for p in files)
    assert holding(files, API_KEY, MARKER) == []

    debug = "".join(p.read_text(errors="replace") for p in python_logs.iterdir())
    assert "hostup_pulumi DEBUG GET /api/v2/vps?limit=100 -> 200" in debug  # programs
    assert "hostup_pulumi DEBUG POST /api/v2/vps/" in debug  # the provider process

    # Everything the CLI printed (without --show-secrets).
    transcript = "\n".join(stack.transcript() for stack in stacks.values())
    assert len(transcript) > 100_000  # verbose, as asked
    assert API_KEY not in transcript
    assert MARKER not in transcript


def test_engine_logs_at_v9_print_secrets(
    make_stack: Callable[..., Stack], sim: HostupSimulator
) -> None:
    """The engine (not this package) logs provider inputs in plain text at -v=9, the stack's
    secret config included. The README says so; this fails once the engine stops doing it."""
    stack = make_stack("run-command", vpsId=WEB, command=COMMAND)
    run = stack.run("preview", "-v=9", "--logtostderr", "--logflow")
    assert "Configure().inputs]: hostup:apiKey={[secret]}" in run.stderr
    assert f"value={{{API_KEY}}}" in run.stderr


NEW_KEY = "hsk_test_e2e_ROTATED_5b7d9f1a3c5e7092"


def test_rotating_the_key_reruns_nothing(
    make_stack: Callable[..., Stack], sim: HostupSimulator
) -> None:
    """The README's rotation: new key in config, `pulumi up`, then revoke the old key."""
    sim.script_command(COMMAND, stdout=MARKER)
    stack = make_stack("run-command", vpsId=WEB, command=COMMAND)
    assert stack.run("up", "--yes").summary() == {"created": 3}
    assert sim.count("exec_start") == 1

    # The API now knows only the new key (a fresh simulator on the same address: the old key
    # is revoked, and the pid forgotten).
    port = sim.port
    sim.stop()
    with HostupSimulator(seed="demo", api_key=NEW_KEY, port=port) as rotated:
        # Until `up` runs, the state's provider still holds the old key: a refresh fails.
        stack.stack.set_config("hostup:apiKey", NEW_KEY, secret=True)
        early = stack.run("refresh", "--yes", ok=False)
        assert "AuthenticationError: HTTP 401" in early.output
        assert [r.status for r in rotated.requests] == [401]

        # `up` changes nothing, runs nothing, and records the new key for the provider.
        up = stack.run("up", "--yes", "--expect-no-changes")
        assert up.summary() == {"unchanged": 3}
        refresh = stack.run("refresh", "--yes")
        assert resource_summary(refresh.stdout) == {"unchanged": 3}
        assert rotated.count("exec_start") == 0
        assert [r.status for r in rotated.requests] == [401, 404, 404]  # 404: pid forgotten

        revealed = show_secrets_export(stack)
        assert NEW_KEY in revealed  # as the provider's secret config...
        assert API_KEY not in revealed  # ...which no longer holds the old key
        text, _ = stack.export()
        assert NEW_KEY not in text
    transcript = stack.transcript()
    assert NEW_KEY not in transcript
    assert API_KEY not in transcript
    assert NEW_KEY not in (stack.project_dir / "Pulumi.e2e.yaml").read_text()


# -- in process: exceptions, reprs, DEBUG logs ------------------------------------------------

WRONG_KEY = "hsk_test_WRONG_KEY_never_shown_41d3"
READ_ONLY_KEY = "hsk_test_READ_ONLY_never_shown_8e2a"


def leak_texts(value: Any, depth: int = 0) -> Iterator[str]:
    """``repr`` and ``str`` of ``value``; for an error also its traceback, its attributes and
    its exception chain (an error's attributes are public data: none may hold a secret)."""
    yield repr(value)
    yield str(value)
    if not isinstance(value, BaseException) or depth > 3:
        return
    yield "".join(traceback.format_exception(value))
    for attribute in vars(value).values():
        yield from (
            leak_texts(attribute, depth + 1)
            if isinstance(attribute, BaseException)
            else (repr(attribute), str(attribute))
        )
    for linked in (value.__cause__, value.__context__):
        if linked is not None:
            yield from leak_texts(linked, depth + 1)


def test_errors_reprs_and_debug_logs_never_hold_the_key_or_output(
    sim: HostupSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    sim.add_api_key(READ_ONLY_KEY, ["read:vm"])
    sim.script_command(COMMAND, stdout=MARKER, stderr=MARKER, exit_code=3)
    sim.script_command("sleep 60", stdout=MARKER, duration=60)
    outcomes: list[Any] = []

    def attempt(fn: Callable[[], Any]) -> None:
        try:
            outcomes.append(fn())
        except HostupError as exc:
            outcomes.append(exc)

    kw: dict[str, Any] = {"base_url": sim.base_url}
    with HostupClient(API_KEY, max_retries=1, timeout=0.2, **kw) as client:
        client._core.retry = RetryPolicy(max_retries=1, initial_delay=0.01)
        outcomes += [client, client.settings, client._core]
        started = client.start_agent_exec(WEB, COMMAND)
        output = client.wait_for_agent_exec(WEB, started.pid, timeout=10)
        assert output.stdout == MARKER  # the marker is really there to leak
        outcomes += [started, output]
        outcomes.append(CommandFailedError(vps_id=WEB, pid=started.pid, exit_code=3, output=output))
        slow = client.start_agent_exec(WEB, "sleep 60")
        attempt(lambda: client.wait_for_agent_exec(WEB, slow.pid, timeout=0.3))
        attempt(lambda: client.get_agent_exec_output(WEB, 999_999))  # 404
        faults = [
            Fault.rate_limited(retry_after="120"),  # over the 60 s cap: a RateLimitError at once
            Fault.status(503),
            Fault.html(502),
            Fault.drop(),
            Fault.delay(1),
            Fault.truncated(),
            Fault.malformed_json(),
        ]
        for fault in faults:
            sim.inject("*", fault, count=2)
            attempt(lambda: client.get_agent_availability(WEB))
            sim.clear_faults()
            sim.inject("exec_start", fault)
            attempt(lambda: client.start_agent_exec(WEB, COMMAND))
            sim.clear_faults()
    with HostupClient(WRONG_KEY, **kw) as wrong:
        attempt(lambda: wrong.list_vps().__next__())  # 401
    with HostupClient(READ_ONLY_KEY, **kw) as read_only:
        attempt(lambda: read_only.start_agent_exec(WEB, COMMAND))  # 403, names write:vm
    attempt(lambda: HostupClient(API_KEY + "\nX: 1", **kw))  # ConfigurationError
    attempt(lambda: HostupClient(session_cookie=API_KEY + "; a=b", **kw))

    async def async_client() -> None:
        async with AsyncHostupClient(API_KEY, **kw) as client:
            outcomes.append(client)
            outcomes.append(await client.get_agent_exec_output(WEB, started.pid))

    asyncio.run(async_client())
    outcomes.append(Settings.resolve(api_key=API_KEY, session_cookie=WRONG_KEY, env={}))

    kinds = {type(o).__name__ for o in outcomes if isinstance(o, HostupError)}
    assert {"CommandTimeoutError", "NotFoundError", "RateLimitError", "InternalServerError",
            "APIConnectionError", "APITimeoutError", "APIResponseValidationError",
            "AuthenticationError", "PermissionDeniedError", "ConfigurationError",
            "CommandFailedError"} <= kinds, kinds  # fmt: skip
    assert any(isinstance(o, CommandTimeoutError) and o.last_output for o in outcomes)
    assert any(isinstance(o, ConfigurationError) for o in outcomes)
    for outcome in outcomes:
        for text in leak_texts(outcome):
            for secret in (API_KEY, WRONG_KEY, READ_ONLY_KEY, MARKER):
                assert secret not in text, (type(outcome).__name__, secret, text[:300])
        if isinstance(outcome, BaseException):
            # Pickled (process pools, the engine): the key never; the output is there only
            # as CommandFailedError.output / CommandTimeoutError.last_output, by design.
            pickled = pickle.dumps(outcome)
            for secret in (API_KEY, WRONG_KEY, READ_ONLY_KEY):
                assert secret.encode() not in pickled, type(outcome).__name__

    records = [r.getMessage() for r in caplog.records]
    assert any("POST /api/v2/vps/" in m for m in records)  # DEBUG lines were written
    assert any(
        r.levelno == logging.WARNING and "retrying" in r.getMessage() for r in caplog.records
    )
    for message in records:
        for secret in (API_KEY, WRONG_KEY, READ_ONLY_KEY, MARKER):
            assert secret not in message


def test_a_configured_provider_pickles_without_its_key_or_client(sim: HostupSimulator) -> None:
    """What the engine stores as ``__provider`` is the pickled provider: even one that has
    been configured and has built its client holds nothing of either."""
    from pulumi.dynamic import ConfigureRequest
    from pulumi.dynamic.config import Config

    config = {"hostup:apiKey": API_KEY, "hostup:baseUrl": sim.base_url}
    pid = None
    for cls in (_AgentCommandProvider, _AgentExecResultProvider):
        provider = cls()
        provider.configure(ConfigureRequest(Config(config, "sweep")))
        # Used as the engine uses it: its client is built and has made requests.
        if pid is None:
            pid = provider.create({"vps_id": WEB, "command": "true"}).outs["pid"]
        else:
            assert provider.create({"vps_id": WEB, "pid": pid}).outs["exited"] is True
        blob = dill.dumps(provider, recurse=True)
        assert API_KEY.encode() not in blob
        assert b"httpx" not in blob
        restored = dill.loads(blob)
        assert restored.__dict__ == {"_config": {}}

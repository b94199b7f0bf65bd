"""The native hostup plugin on the real engine: a Pulumi YAML program (through the real YAML
language host) and a Python program with two explicit providers (two HostUp accounts), refresh,
import, key rotation, the schema it serves, progress while waiting, one-line errors, Ctrl-C.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from typing import Any

import pytest
from e2e_helpers import (
    API_KEY,
    BETA_KEY,
    REPO,
    SCOPES,
    WEB,
    Stack,
    assert_each_vps_saw_only_its_key,
    assert_refresh_keeps_a_finished_result,
    beta_account,
)

import hostup_pulumi as hostup
from hostup_pulumi.testing import HostupSimulator

pytestmark = pytest.mark.e2e

BETA_KEY_ROTATED = "hsk_test_e2e_BETA_ROTATED_99887766554433"
RESULT_TYPE = "hostup:index:AgentExecResult"


def yaml_stack(make_stack: Any, sim: HostupSimulator, beta_vps: str, **config: str) -> Stack:
    stack: Stack = make_stack(
        "yaml", plugin=True, vpsId=WEB, otherVpsId=beta_vps, otherBaseUrl=sim.base_url, **config
    )
    stack.stack.set_config("otherApiKey", BETA_KEY, secret=True)
    return stack


def test_yaml_program_with_two_accounts_through_its_lifecycle(
    make_stack: Any, sim: HostupSimulator
) -> None:
    sim.script_command("uname -a", stdout="YAML_STDOUT_MARKER\n")
    beta_vps = beta_account(sim)
    stack = yaml_stack(make_stack, sim, beta_vps)

    up = stack.run("up", "--yes")
    assert sim.count("exec_start") == 2
    # Quiet when all is well: one short line per start with its pid, on the resource's
    # progress row only (never repeated under Diagnostics), and no recovery commands. The
    # engine's log display reprints a row's current message when the row changes state
    # (creating -> created), so a log may show that row twice; a terminal redraws it in place.
    commands = stack.resources("hostup:index:AgentCommand")
    assert len(commands) == 2
    progress, _, summary = up.output.partition("Diagnostics:")
    for command in commands:
        pid, vps_id = int(command["outputs"]["pid"]), command["outputs"]["vpsId"]
        line = (f"started pid {pid} on {vps_id} (if this run is killed before it records the "
                "command: docs/reliability.md)")  # fmt: skip
        rows = [row for row in progress.splitlines() if "started pid" in row and vps_id in row]
        assert rows, up.output
        assert all(row.endswith(line) for row in rows), rows
        assert len(rows) <= 2, rows
    assert "started pid" not in summary
    assert "pulumi import" not in up.output
    assert "--clear-pending-creates" not in up.output
    outputs = stack.outputs()
    assert outputs["available"] is True
    assert outputs["otherAvailable"] is True
    assert [(item["vpsId"], item["available"]) for item in outputs["fleet"]] == [(WEB, True)]
    assert (outputs["exitCode"], outputs["otherExitCode"]) == (0, 0)
    assert outputs["stdout"] == "[secret]"
    assert stack.outputs(show_secrets=True)["stdout"] == "YAML_STDOUT_MARKER\n"
    assert_each_vps_saw_only_its_key(sim, {WEB: {API_KEY}, beta_vps: {BETA_KEY}})

    text, state = stack.export()
    for secret in (API_KEY, BETA_KEY, "YAML_STDOUT_MARKER"):
        assert secret not in text
    results = [r for r in state["deployment"]["resources"] if r["type"] == RESULT_TYPE]
    assert len(results) == 2
    for result in results:
        assert result["id"] == f"{result['outputs']['vpsId']}/{int(result['outputs']['pid'])}"
        assert "ciphertext" in result["outputs"]["stdout"]

    # Refresh changes nothing, and then the program has nothing to do.
    stack.run("refresh", "--yes")
    stack.run("preview", "--expect-no-changes")
    assert sim.count("exec_start") == 2

    # A rotated key replaces nothing and runs nothing.
    sim.add_api_key(BETA_KEY_ROTATED, SCOPES, account="beta")
    stack.stack.set_config("otherApiKey", BETA_KEY_ROTATED, secret=True)
    preview = stack.run("preview", "--diff")
    assert "to replace" not in preview.summary()
    stack.run("up", "--yes")
    assert sim.count("exec_start") == 2
    sim.clear_requests()
    stack.run("refresh", "--yes")
    assert_each_vps_saw_only_its_key(sim, {beta_vps: {BETA_KEY_ROTATED}})

    stack.run("destroy", "--yes")
    assert stack.resources(RESULT_TYPE) == []
    assert sim.count("exec_start") == 0  # since the log was cleared: nothing ran again
    assert API_KEY not in stack.transcript()
    assert BETA_KEY not in stack.transcript()


def test_import_adopts_an_existing_command_and_its_output(
    make_stack: Any, sim: HostupSimulator
) -> None:
    sim.script_command("hostname", stdout="IMPORTED_STDOUT\n")
    beta_vps = beta_account(sim)
    stack = yaml_stack(make_stack, sim, beta_vps)
    with hostup.HostupClient(api_key=API_KEY, base_url=sim.base_url) as client:
        pid = client.start_agent_exec(WEB, "hostname").pid
        client.wait_for_agent_exec(WEB, pid, timeout=10)
    starts = sim.count("exec_start")

    run = stack.run("import", f"{RESULT_TYPE}", "adopted", f"{WEB}/{pid}", "--yes",
                    "--protect=false")  # fmt: skip
    assert "warning" not in run.output.lower()
    run = stack.run("import", "hostup:index:AgentCommand", "adopted-command", f"{WEB}/{pid}",
                    "--yes", "--protect=false")  # fmt: skip
    assert "warning" not in run.output.lower(), run.output

    text, state = stack.export()
    assert "IMPORTED_STDOUT" not in text
    adopted = next(r for r in state["deployment"]["resources"] if r["urn"].endswith("::adopted"))
    assert adopted["id"] == f"{WEB}/{pid}"
    assert adopted["outputs"]["exitCode"] == 0
    assert "ciphertext" in adopted["outputs"]["stdout"]
    assert sim.count("exec_start") == starts  # importing runs nothing

    stack.run("destroy", "--yes")
    assert sim.count("exec_start") == starts


def test_python_program_with_two_explicit_providers(make_stack: Any, sim: HostupSimulator) -> None:
    sim.script_command("uname -a", stdout="PY_NATIVE_STDOUT\n")
    beta_vps = beta_account(sim)
    stack: Stack = make_stack("two-accounts", plugin=True, acmeVpsId=WEB, betaVpsId=beta_vps,
                              baseUrl=sim.base_url)  # fmt: skip
    stack.stack.set_config("acmeApiKey", API_KEY, secret=True)
    stack.stack.set_config("betaApiKey", BETA_KEY, secret=True)
    # The default provider has no key: only the explicit ones can work.
    stack.run("config", "rm", "hostup:apiKey")

    stack.run("up", "--yes")
    outputs = stack.outputs()
    assert outputs["acmeAvailable"] is True
    assert outputs["betaAvailable"] is True
    assert (outputs["acmeExitCode"], outputs["betaExitCode"]) == (0, 0)
    assert outputs["betaStdout"] == "[secret]"
    assert stack.outputs(show_secrets=True)["betaStdout"] == "PY_NATIVE_STDOUT\n"
    assert sim.count("exec_start") == 2
    assert_each_vps_saw_only_its_key(sim, {WEB: {API_KEY}, beta_vps: {BETA_KEY}})
    text, _ = stack.export()
    assert API_KEY not in text
    assert BETA_KEY not in text

    stack.run("refresh", "--yes")
    stack.run("preview", "--expect-no-changes")
    stack.run("destroy", "--yes")
    assert sim.count("exec_start") == 2


def test_a_missing_plugin_is_the_readmes_troubleshooting_case(
    make_stack: Any, sim: HostupSimulator
) -> None:
    # No install-plugin: the engine's message is the one the README names, with its fix.
    stack = yaml_stack_without_plugin(make_stack, sim)
    failed = stack.run("preview", ok=False)
    message = "no resource plugin 'pulumi-resource-hostup' found in the workspace or on your $PATH"
    assert message in failed.output
    readme = " ".join((REPO / "README.md").read_text(encoding="utf-8").split())
    troubleshooting = readme[readme.index("## Troubleshooting") :]
    assert f"`{message}`: the engine cannot find the `hostup` plugin" in troubleshooting
    assert "Run `hostup-pulumi install-plugin` once" in troubleshooting


def yaml_stack_without_plugin(make_stack: Any, sim: HostupSimulator) -> Stack:
    stack: Stack = make_stack("yaml", vpsId=WEB, otherVpsId=WEB, otherBaseUrl=sim.base_url)
    stack.stack.set_config("otherApiKey", BETA_KEY, secret=True)
    return stack


def test_plugin_serves_the_repos_schema(make_stack: Any) -> None:
    stack: Stack = make_stack("yaml", plugin=True)
    proc = stack.stack.run("package", "get-schema", "hostup", with_stack=False)
    assert json.loads(proc.stdout) == json.loads((REPO / "schema.json").read_text())


def test_errors_are_one_line_without_python_frames(make_stack: Any, sim: HostupSimulator) -> None:
    beta_vps = beta_account(sim)
    stack = yaml_stack(make_stack, sim, beta_vps)
    stack.stack.set_config("otherApiKey", "hsk_test_wrong_key_000000000000", secret=True)

    run = stack.run("up", "--yes", ok=False)
    assert "HTTP 401 unauthorized" in run.output
    # The explicit provider does not read hostup:apiKey: the advice names its own input.
    text = " ".join(run.output.split())
    assert (
        "HostUp refused the credentials. Check the apiKey input of this explicit hostup "
        "provider (it does not read the stack's hostup:apiKey) (keys are created at "
        "https://cloud.hostup.se/api-management)"
    ) in text
    assert "Traceback" not in run.output
    assert 'File "' not in run.output

    stack.stack.set_config("otherBaseUrl", "ftp://example.com")
    run = stack.run("preview", ok=False)
    assert "baseUrl" in run.output
    assert "is not an http(s) URL" in run.output
    assert "Traceback" not in run.output
    assert 'File "' not in run.output


def test_an_unavailable_agent_is_advised_in_the_schemas_spelling(
    make_stack: Any, sim: HostupSimulator
) -> None:
    # YAML users write waitTimeout and requireAgentAvailable: the advice names those, never a
    # Python argument, and says what fixes this VPS (its agent, since the VM runs).
    beta_vps = beta_account(sim)
    sim.set_agent(beta_vps, available=False)
    stack = yaml_stack(make_stack, sim, beta_vps)

    run = stack.run("up", "--yes", ok=False)

    text = " ".join(run.output.split())
    assert (
        f"QEMU guest agent command execution is not available on {beta_vps}: QEMU guest agent "
        "is not responding (VM running: true). Make sure qemu-guest-agent is installed and "
        "running in the guest"
    ) in text
    assert "To wait for it, gate the command on requireAgentAvailable with waitTimeout" in text
    assert "wait_timeout" not in text
    assert sim.count("exec_start") <= 1  # the default account's command; beta's never started

    sim.set_agent(beta_vps, available=True)
    sim.set_agent(WEB, available=False)
    gate = " ".join(stack.run("preview", ok=False).output.split())
    assert "Set waitTimeout (seconds) to wait for it instead of failing" in gate
    assert "wait_timeout" not in gate


def test_a_long_wait_shows_its_progress(make_stack: Any, sim: HostupSimulator) -> None:
    sim.script_command("sleep 7", stdout="done\n", duration=7)
    beta_vps = beta_account(sim)
    stack = yaml_stack(make_stack, sim, beta_vps, command="sleep 7")

    # --json streams the engine's events, status lines included.
    run = stack.run("up", "--yes", "--skip-preview", "--json")

    statuses = [
        event["diagnosticEvent"]
        for event in map(json.loads, run.stdout.splitlines())
        if event.get("diagnosticEvent", {}).get("ephemeral")
    ]
    waiting = [(s["urn"], s["message"].strip()) for s in statuses]
    assert any(
        urn.endswith("hostup:index:AgentExecResult::jobResult")
        and message.startswith("waiting for pid ")
        and message.endswith(f" on {WEB}: 5 s of 120 s")
        for urn, message in waiting
    ), waiting


def test_ctrl_c_stops_a_wait_at_once_and_the_next_up_resumes(
    make_stack: Any, sim: HostupSimulator
) -> None:
    sim.script_command("sleep 12", stdout="slow\n", duration=12)
    beta_vps = beta_account(sim)
    stack = yaml_stack(make_stack, sim, beta_vps, command="sleep 12")
    argv = [str(stack.stack.bin_dir / "pulumi"), "up", "--yes", "--non-interactive",
            "--stack", stack.stack.name]  # fmt: skip
    proc = subprocess.Popen(
        argv, cwd=stack.project_dir, env=stack.stack.env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while sim.count("exec_output") < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert sim.count("exec_output") >= 2, "the wait never started"
        pressed = time.monotonic()
        os.kill(proc.pid, signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
        stopped = time.monotonic() - pressed
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode != 0
    assert stopped < 2.0 + 1.0, f"Ctrl-C took {stopped:.1f}s"  # the wait's 2 s, plus exit
    assert "was cancelled (Ctrl-C)" in out
    results = [r for r in stack.resources(RESULT_TYPE) if r["outputs"].get("exited")]
    assert results == []  # nothing recorded as finished
    starts = sim.count("exec_start")
    assert starts == 2

    stack.run("up", "--yes", "--skip-preview")
    assert sim.count("exec_start") == starts  # resumed waiting: no second start
    assert stack.outputs()["exitCode"] == 0


def test_refresh_keeps_a_finished_result_when_hostup_reuses_its_pid(
    make_stack: Any, sim: HostupSimulator
) -> None:
    sim.script_command("echo one", stdout="ONE_OUT\n")
    sim.script_command("echo other", stdout="OTHER_OUT\n", exit_code=4)
    beta_vps = beta_account(sim)
    stack = yaml_stack(make_stack, sim, beta_vps, command="echo one")
    stack.run("up", "--yes")
    assert_refresh_keeps_a_finished_result(stack, sim, API_KEY)

"""Tests of hostup_pulumi.resources: AgentCommand and AgentExecResult as a Pulumi program
registers them (under mocks), and their dynamic providers called directly against the
offline simulator."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Mapping
from typing import Any

import dill
import pulumi
import pulumi.dynamic as dyn
import pytest
from pulumi.dynamic.dynamic import serialize_provider
from pulumi.output import Unknown
from pulumi.runtime import rpc
from pulumi_helpers import (
    PROVIDER_KEY,
    EngineMocks,
    PulumiProgram,
    decode_provider,
    load_provider,
    stack_config,
)

import hostup_pulumi as hostup
from hostup_pulumi.resources import (
    DEFAULT_RESULT_TIMEOUT,
    _AgentCommandProvider,
    _AgentExecResultProvider,
)
from hostup_pulumi.testing import HostupSimulator

# Fixtures: pulumi_program, set_stack_config, provider_process.
pytest_plugins = ("pulumi_helpers",)

UNKNOWN = rpc.UNKNOWN
COMMAND_TYPE = "pulumi-python:dynamic/hostup:AgentCommand"
RESULT_TYPE = "pulumi-python:dynamic/hostup:AgentExecResult"
SECRET_NAMES = {"stdout", "stderr", "extra_fields"}
# A key nobody would type by accident, so that finding it anywhere is a leak.
DISTINCTIVE_KEY = "hsk_live_LEAKCANARY0123456789abcdef"

ProviderFactory = Callable[..., Any]


@pytest.fixture
def sim(hostup_simulator: HostupSimulator) -> HostupSimulator:
    """The package's simulator fixture (started, empty)."""
    return hostup_simulator


def configured(
    cls: type[dyn.ResourceProvider],
    sim: HostupSimulator | None = None,
    *,
    api_key: str | None = None,
    config: Mapping[str, Any] | None = None,
) -> Any:
    """A provider as the provider process has it: fresh, then configure()d with stack config."""
    provider = cls()
    values = dict(config) if config is not None else stack_config(sim, api_key)  # type: ignore[arg-type]
    provider.configure(dyn.ConfigureRequest(dyn.Config(values, "proj")))
    return provider


def command_inputs(vps_id: str, command: str = "uname -a", **extra: Any) -> dict[str, Any]:
    return {"vps_id": vps_id, "command": command, **extra}


def result_inputs(vps_id: str, pid: Any, **extra: Any) -> dict[str, Any]:
    # As the engine delivers them: numbers are floats, every input is present.
    return {
        "vps_id": vps_id,
        "pid": float(pid),
        "timeout": DEFAULT_RESULT_TIMEOUT,
        "fail_on_nonzero_exit": False,
        **extra,
    }


def start(sim: HostupSimulator, vps_id: str, command: str) -> int:
    """Start ``command`` through the AgentCommand provider; return its pid."""
    created = configured(_AgentCommandProvider, sim).create(command_inputs(vps_id, command))
    return int(created.outs["pid"])


def failures(result: dyn.CheckResult) -> dict[str, str]:
    return {f.property: f.reason for f in result.failures}


# == Program wiring (mocks) =================================================================


def test_resources_register_under_their_type_tokens(
    pulumi_program: PulumiProgram, sim: HostupSimulator
) -> None:
    vps = sim.add_vps(name="web")

    def program() -> Any:
        cmd = hostup.AgentCommand("cmd", vps_id=vps, command="uname -a", triggers=["v1"])
        res = hostup.AgentExecResult("res", vps_id=cmd.vps_id, pid=cmd.pid)
        return pulumi.Output.all(cmd.urn, res.urn)

    observed = pulumi_program.run(program)

    assert pulumi_program.registration("cmd").type == COMMAND_TYPE
    assert pulumi_program.registration("res").type == RESULT_TYPE
    cmd_urn, res_urn = observed.value
    assert cmd_urn.endswith(f"{COMMAND_TYPE}::cmd")
    assert res_urn.endswith(f"{RESULT_TYPE}::res")


def test_registered_inputs_carry_the_documented_names(
    pulumi_program: PulumiProgram, sim: HostupSimulator
) -> None:
    vps = sim.add_vps(name="web")

    pulumi_program.run(
        lambda: [
            hostup.AgentCommand("cmd", vps_id=vps, command="uname -a", triggers=["v1", 2]).urn,
            hostup.AgentExecResult(
                "res", vps_id=vps, pid=4242, timeout=30, fail_on_nonzero_exit=True
            ).urn,
        ]
    )

    cmd = pulumi_program.registration("cmd").inputs
    assert cmd == {
        "vps_id": vps,
        "command": "uname -a",
        "triggers": ["v1", 2],
        PROVIDER_KEY: cmd[PROVIDER_KEY],
    }
    res = pulumi_program.registration("res").inputs
    assert res == {
        "vps_id": vps,
        "pid": 4242,
        "timeout": 30,
        "fail_on_nonzero_exit": True,
        PROVIDER_KEY: res[PROVIDER_KEY],
    }


def test_exec_result_timeout_defaults_to_300_seconds(
    pulumi_program: PulumiProgram, sim: HostupSimulator
) -> None:
    vps = sim.add_vps(name="web")

    pulumi_program.run(lambda: hostup.AgentExecResult("res", vps_id=vps, pid=7).urn)

    inputs = pulumi_program.registration("res").inputs
    assert inputs["timeout"] == 300
    assert inputs["fail_on_nonzero_exit"] is False


def test_exec_result_output_is_secret_by_default(
    pulumi_program: PulumiProgram, sim: HostupSimulator
) -> None:
    vps = sim.add_vps(name="web")

    pulumi_program.run(lambda: hostup.AgentExecResult("res", vps_id=vps, pid=7).urn)

    assert set(pulumi_program.registration("res").additional_secret_outputs) == SECRET_NAMES


def test_exec_result_output_is_plain_with_secret_output_false(
    pulumi_program: PulumiProgram, sim: HostupSimulator
) -> None:
    vps = sim.add_vps(name="web")

    pulumi_program.run(
        lambda: hostup.AgentExecResult("res", vps_id=vps, pid=7, secret_output=False).urn
    )

    assert pulumi_program.registration("res").additional_secret_outputs == []


def test_exec_result_keeps_the_users_own_secret_outputs(
    pulumi_program: PulumiProgram, sim: HostupSimulator
) -> None:
    vps = sim.add_vps(name="web")
    opts = pulumi.ResourceOptions(additional_secret_outputs=["exit_code"])

    pulumi_program.run(lambda: hostup.AgentExecResult("res", vps_id=vps, pid=7, opts=opts).urn)

    assert set(pulumi_program.registration("res").additional_secret_outputs) == SECRET_NAMES | {
        "exit_code"
    }


def test_agent_command_outputs_are_not_secret(
    pulumi_program: PulumiProgram, sim: HostupSimulator
) -> None:
    vps = sim.add_vps(name="web")

    pulumi_program.run(lambda: hostup.AgentCommand("cmd", vps_id=vps, command="true").urn)

    assert pulumi_program.registration("cmd").additional_secret_outputs == []


def deploy_echo_program(
    pulumi_program: PulumiProgram, sim: HostupSimulator, **result_kwargs: Any
) -> tuple[str, dict[str, Any]]:
    """Run AgentCommand -> AgentExecResult in a program whose mocks deploy through the
    providers against ``sim``; return the VPS id and what the program's outputs resolved to."""
    vps = sim.add_vps(name="web")
    sim.script_command(
        "cat /etc/motd", stdout="hello\n", stderr="warn\n", exit_code=0, extra={"cpuMs": 12}
    )
    pulumi_program.start(EngineMocks(provider_config=stack_config(sim)))
    seen: dict[str, Any] = {}

    def program() -> Any:
        cmd = hostup.AgentCommand("cmd", vps_id=vps, command="cat /etc/motd")
        res = hostup.AgentExecResult("res", vps_id=cmd.vps_id, pid=cmd.pid, **result_kwargs)
        outputs = {
            "pid": cmd.pid,
            "poll_url": cmd.poll_url,
            "result_pid": res.pid,
            "exited": res.exited,
            "exit_code": res.exit_code,
            "stdout": res.stdout,
            "stderr": res.stderr,
            "extra_fields": res.extra_fields,
            "truncated": res.truncated,
        }

        async def look() -> None:
            for name, output in outputs.items():
                seen[name] = (await output.future(), await output.is_secret())

        return pulumi.Output.from_input(look())

    pulumi_program.run(program)
    return vps, seen


def test_program_reads_the_command_output_as_secrets(
    pulumi_program: PulumiProgram, sim: HostupSimulator
) -> None:
    vps, seen = deploy_echo_program(pulumi_program, sim)

    pid, pid_secret = seen["pid"]
    assert pid >= 1
    assert pid_secret is False
    assert seen["result_pid"] == (pid, False)
    assert seen["poll_url"] == (f"{sim.base_url}/api/v2/vps/{vps}/agent/exec?pid={pid}", False)
    assert seen["exited"] == (True, False)
    assert seen["exit_code"] == (0, False)
    assert seen["stdout"] == ("hello\n", True)
    assert seen["stderr"] == ("warn\n", True)
    assert seen["extra_fields"] == ({"cpuMs": 12}, True)
    assert sim.count("exec_start") == 1


def test_program_reads_plain_output_with_secret_output_false(
    pulumi_program: PulumiProgram, sim: HostupSimulator
) -> None:
    _vps, seen = deploy_echo_program(pulumi_program, sim, secret_output=False)

    assert seen["stdout"] == ("hello\n", False)
    assert seen["stderr"] == ("warn\n", False)


def test_registered_provider_blobs_hold_no_api_key(
    pulumi_program: PulumiProgram,
    sim: HostupSimulator,
    set_stack_config: Callable[[Mapping[str, str]], None],
) -> None:
    sim.add_api_key(DISTINCTIVE_KEY, scopes=["read:vm", "write:vm"])
    vps = sim.add_vps(name="web")
    config = stack_config(sim, DISTINCTIVE_KEY)
    set_stack_config(config)
    pulumi_program.start(EngineMocks(provider_config=config))

    def program() -> Any:
        # A program-side client with the key exists before the resources are registered.
        gate = hostup.require_agent_available(vps)
        cmd = hostup.AgentCommand("cmd", vps_id=gate.vps_id, command="uname -a")
        res = hostup.AgentExecResult("res", vps_id=cmd.vps_id, pid=cmd.pid)
        return res.exit_code

    observed = pulumi_program.run(program)

    assert observed.value == 0  # deployed with the key, through the blobs below
    blobs = {r.name: r.inputs[PROVIDER_KEY] for r in pulumi_program.registrations}
    assert set(blobs) == {"cmd", "res"}
    for name, blob in blobs.items():
        assert isinstance(blob, str)
        raw = decode_provider(blob)
        assert DISTINCTIVE_KEY.encode() not in raw, name
        assert DISTINCTIVE_KEY not in blob, name
        assert b"hostup_pulumi.resources" in raw, name
    assert type(load_provider(blobs["cmd"])) is _AgentCommandProvider
    assert type(load_provider(blobs["res"])) is _AgentExecResultProvider


def test_bad_input_fails_the_deployment_at_check(
    pulumi_program: PulumiProgram, sim: HostupSimulator
) -> None:
    engine = EngineMocks(provider_config=stack_config(sim))
    pulumi_program.start(engine)

    with pytest.raises(Exception, match=r"list_vps\(primary_ip='203\.0\.113\.7'\)"):
        pulumi_program.run(
            lambda: hostup.AgentCommand("cmd", vps_id="203.0.113.7", command="uname -a").pid
        )

    assert [f.property for f in engine.check_failures] == ["vps_id"]
    assert sim.requests == []


# == Provider: check ========================================================================


# The provider process hands unknown inputs over as pulumi.output.Unknown objects (it
# deserializes with keep_unknowns); the engine's sentinel string is accepted too.
UNKNOWN_FORMS = [
    pytest.param(UNKNOWN, id="sentinel-string"),
    pytest.param(Unknown(), id="Unknown-object"),
]


@pytest.mark.parametrize("unknown", UNKNOWN_FORMS)
@pytest.mark.parametrize("cls", [_AgentCommandProvider, _AgentExecResultProvider])
def test_check_passes_unknown_inputs_through(
    cls: type[dyn.ResourceProvider], unknown: Any, sim: HostupSimulator
) -> None:
    news = {
        "vps_id": unknown,
        "command": unknown,
        "triggers": unknown,
        "pid": unknown,
        "timeout": unknown,
        "fail_on_nonzero_exit": unknown,
    }

    result = configured(cls, sim).check({}, dict(news))

    assert result.failures == []
    assert result.inputs == news
    assert sim.requests == []


def test_check_accepts_good_inputs(sim: HostupSimulator) -> None:
    vps = sim.add_vps(name="web")

    cmd = configured(_AgentCommandProvider, sim).check({}, command_inputs(vps, triggers=["a", 1.0]))
    res = configured(_AgentExecResultProvider, sim).check({}, result_inputs(vps, 4242))

    assert cmd.failures == []
    assert res.failures == []
    assert cmd.inputs["vps_id"] == vps
    assert res.inputs["pid"] == 4242
    assert sim.requests == []


def test_check_refuses_an_ip_address_and_says_how_to_find_the_id(sim: HostupSimulator) -> None:
    result = configured(_AgentCommandProvider, sim).check({}, command_inputs("203.0.113.7"))

    reasons = failures(result)
    assert list(reasons) == ["vps_id"]
    assert "list_vps(primary_ip='203.0.113.7')" in reasons["vps_id"]
    assert sim.requests == []


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        pytest.param("   ", "empty", id="blank"),
        pytest.param("x" * 4097, "4096", id="too-long"),
        pytest.param("echo a\x00b", "NUL", id="nul"),
        pytest.param(42.0, "string", id="number"),
    ],
)
def test_check_refuses_a_bad_command(sim: HostupSimulator, command: Any, expected: str) -> None:
    vps = sim.add_vps(name="web")

    reasons = failures(
        configured(_AgentCommandProvider, sim).check({}, command_inputs(vps, command))
    )

    assert list(reasons) == ["command"]
    assert expected in reasons["command"]


def test_check_refuses_triggers_that_are_not_a_list(sim: HostupSimulator) -> None:
    vps = sim.add_vps(name="web")

    reasons = failures(
        configured(_AgentCommandProvider, sim).check({}, command_inputs(vps, triggers="v1"))
    )

    assert list(reasons) == ["triggers"]


@pytest.mark.parametrize(
    ("pid", "expected"),
    [
        pytest.param(0.0, "between 1", id="zero"),
        pytest.param(-5.0, "between 1", id="negative"),
        pytest.param(12.5, "whole number", id="fraction"),
        pytest.param("12", "whole number", id="string"),
        pytest.param(True, "whole number", id="bool"),
        pytest.param(float(2**31), "between 1", id="too-big"),
    ],
)
def test_check_refuses_a_bad_pid(sim: HostupSimulator, pid: Any, expected: str) -> None:
    vps = sim.add_vps(name="web")
    news = {**result_inputs(vps, 1), "pid": pid}

    reasons = failures(configured(_AgentExecResultProvider, sim).check({}, news))

    assert list(reasons) == ["pid"]
    assert expected in reasons["pid"]


@pytest.mark.parametrize(
    ("prop", "value"),
    [
        pytest.param("timeout", 0.0, id="timeout-zero"),
        pytest.param("timeout", -1.0, id="timeout-negative"),
        pytest.param("timeout", "30", id="timeout-string"),
        pytest.param("timeout", 10.0 * 24 * 3600, id="timeout-ten-days"),
        pytest.param("fail_on_nonzero_exit", "yes", id="flag-string"),
    ],
)
def test_check_refuses_bad_options(sim: HostupSimulator, prop: str, value: Any) -> None:
    vps = sim.add_vps(name="web")
    news = {**result_inputs(vps, 1), prop: value}

    reasons = failures(configured(_AgentExecResultProvider, sim).check({}, news))

    assert list(reasons) == [prop]


@pytest.mark.parametrize(
    ("cls", "news", "missing"),
    [
        pytest.param(_AgentCommandProvider, {"command": "uname -a"}, "vps_id", id="cmd-vps"),
        pytest.param(_AgentCommandProvider, {"vps_id": "vps_01abcdefgh"}, "command", id="cmd"),
        pytest.param(_AgentExecResultProvider, {"vps_id": "vps_01abcdefgh"}, "pid", id="pid"),
        pytest.param(_AgentExecResultProvider, {"pid": 5.0}, "vps_id", id="res-vps"),
    ],
)
def test_check_reports_a_missing_required_input(
    cls: type[dyn.ResourceProvider], news: dict[str, Any], missing: str, sim: HostupSimulator
) -> None:
    reasons = failures(configured(cls, sim).check({}, news))

    assert list(reasons) == [missing]
    assert missing in reasons[missing]


# == Provider: diff =========================================================================


def test_diff_of_same_command_inputs_is_no_change(sim: HostupSimulator) -> None:
    provider = configured(_AgentCommandProvider, sim)
    olds = {**command_inputs("vps_01abcdefgh", triggers=["v1", 2.0]), "pid": 42.0}

    diff = provider.diff("id", olds, command_inputs("vps_01abcdefgh", triggers=["v1", 2]))

    assert diff.changes is False
    assert not diff.replaces


@pytest.mark.parametrize(
    ("prop", "value"),
    [
        ("vps_id", "vps_01zzzzzzzz"),
        ("command", "uname -r"),
        ("triggers", ["v2"]),
        ("triggers", UNKNOWN),
        ("command", UNKNOWN),
        ("vps_id", Unknown()),
    ],
)
def test_diff_of_a_changed_command_input_replaces(
    sim: HostupSimulator, prop: str, value: Any
) -> None:
    provider = configured(_AgentCommandProvider, sim)
    olds = command_inputs("vps_01abcdefgh", triggers=["v1"])

    diff = provider.diff("id", olds, {**olds, prop: value})

    assert diff.changes is True
    assert diff.replaces == [prop]
    assert diff.delete_before_replace is False


def test_diff_of_same_result_inputs_is_no_change(sim: HostupSimulator) -> None:
    provider = configured(_AgentExecResultProvider, sim)
    # State holds the pid as the provider wrote it (int); the engine sends floats.
    olds = {**result_inputs("vps_01abcdefgh", 4242), "pid": 4242, "timeout": 300, "exited": True}

    diff = provider.diff("id", olds, result_inputs("vps_01abcdefgh", 4242.0))

    assert diff.changes is False
    assert not diff.replaces


@pytest.mark.parametrize(("prop", "value"), [("vps_id", "vps_01zzzzzzzz"), ("pid", 4243.0)])
def test_diff_of_a_new_command_to_read_replaces(
    sim: HostupSimulator, prop: str, value: Any
) -> None:
    olds = result_inputs("vps_01abcdefgh", 4242)

    diff = configured(_AgentExecResultProvider, sim).diff("id", olds, {**olds, prop: value})

    assert diff.changes is True
    assert diff.replaces == [prop]


@pytest.mark.parametrize(("prop", "value"), [("timeout", 60.0), ("fail_on_nonzero_exit", True)])
def test_diff_of_an_option_updates_in_place(sim: HostupSimulator, prop: str, value: Any) -> None:
    olds = result_inputs("vps_01abcdefgh", 4242)

    diff = configured(_AgentExecResultProvider, sim).diff("id", olds, {**olds, prop: value})

    assert diff.changes is True
    assert not diff.replaces


# == Provider: AgentCommand create ==========================================================


def test_create_probes_then_starts_the_command(sim: HostupSimulator) -> None:
    vps = sim.add_vps(name="web")

    created = configured(_AgentCommandProvider, sim).create(
        command_inputs(vps, "uname -a", triggers=["v1"])
    )

    pid = created.outs["pid"]
    assert created.id == f"{vps}/{pid}"
    assert created.outs == {
        "vps_id": vps,
        "command": "uname -a",
        "triggers": ["v1"],
        "pid": pid,
        "poll_url": f"{sim.base_url}/api/v2/vps/{vps}/agent/exec?pid={pid}",
        "run_id": created.outs["run_id"],
    }
    assert [r.route for r in sim.requests] == ["probe", "exec_start"]
    with hostup.HostupClient(api_key=sim.api_key, base_url=sim.base_url) as client:
        assert "Linux web" in client.get_agent_exec_output(vps, pid).stdout


def test_create_keeps_the_triggers_as_pulumi_sends_them(
    sim: HostupSimulator,
) -> None:
    vps = sim.add_vps(name="web")

    created = configured(_AgentCommandProvider, sim).create(
        command_inputs(vps, "true", triggers=[1.0, "x"], **{PROVIDER_KEY: "blob"})
    )

    assert created.outs["triggers"] == [1.0, "x"]
    assert sim.count("exec_start") == 1


def test_create_on_an_unavailable_agent_fails_without_starting(sim: HostupSimulator) -> None:
    vps = sim.add_vps(name="db", agent_available=False, agent_reason="qga not responding")

    with pytest.raises(hostup.AgentUnavailableError) as caught:
        configured(_AgentCommandProvider, sim).create(command_inputs(vps))

    assert caught.value.vps_id == vps
    assert caught.value.reason == "qga not responding"
    # The advice fits the resource: it has no wait argument, the gate function has.
    assert str(caught.value) == (
        f"QEMU guest agent command execution is not available on {vps}: qga not responding "
        "(VM running: true). Make sure qemu-guest-agent is installed and running in the guest "
        "(Debian or Ubuntu: `apt install qemu-guest-agent && systemctl enable --now "
        "qemu-guest-agent`). To wait for it, gate the command on "
        "require_agent_available_output(vps_id, wait_timeout=SECONDS)"
    )
    assert sim.count("probe") == 1
    assert sim.count("exec_start") == 0


def test_create_on_a_stopped_vps_fails_without_starting(sim: HostupSimulator) -> None:
    vps = sim.add_vps(name="old", power_state="stopped")

    with pytest.raises(hostup.AgentUnavailableError) as caught:
        configured(_AgentCommandProvider, sim).create(command_inputs(vps))

    assert caught.value.vm_running is False
    assert str(caught.value) == (
        f"QEMU guest agent command execution is not available on {vps}: VM is not running "
        "(VM running: false). Start the VM. To wait for it, gate the command on "
        "require_agent_available_output(vps_id, wait_timeout=SECONDS)"
    )
    assert sim.count("exec_start") == 0


def test_create_with_a_read_only_key_names_the_missing_scope(sim: HostupSimulator) -> None:
    sim.add_api_key("hsk_readonly_key_0001", scopes=["read:vm"])
    vps = sim.add_vps(name="web")

    with pytest.raises(hostup.PermissionDeniedError) as caught:
        configured(_AgentCommandProvider, sim, api_key="hsk_readonly_key_0001").create(
            command_inputs(vps)
        )

    assert "write:vm" in str(caught.value)
    assert caught.value.status_code == 403
    assert "hsk_readonly_key_0001" not in str(caught.value)


def test_create_without_credentials_says_how_to_set_them(sim: HostupSimulator) -> None:
    vps = sim.add_vps(name="web")
    provider = configured(_AgentCommandProvider, config={"hostup:baseUrl": sim.base_url})

    with pytest.raises(hostup.ConfigurationError) as caught:
        provider.create(command_inputs(vps))

    assert "pulumi config set --secret hostup:apiKey" in str(caught.value)
    assert "HOSTUP_API_KEY" in str(caught.value)
    assert sim.requests == []


def test_provider_falls_back_to_the_environment(
    sim: HostupSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    vps = sim.add_vps(name="web")
    monkeypatch.setenv("HOSTUP_API_KEY", sim.api_key)
    monkeypatch.setenv("HOSTUP_BASE_URL", sim.base_url)

    created = configured(_AgentCommandProvider, config={"proj:other": "x"}).create(
        command_inputs(vps)
    )

    assert created.outs["pid"] >= 1


def test_stack_config_wins_over_the_environment(
    sim: HostupSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    vps = sim.add_vps(name="web")
    monkeypatch.setenv("HOSTUP_API_KEY", "hsk_wrong_key_from_env")
    monkeypatch.setenv("HOSTUP_BASE_URL", "http://127.0.0.1:9")

    created = configured(_AgentCommandProvider, sim).create(command_inputs(vps))

    assert created.outs["pid"] >= 1


def test_agent_command_read_keeps_the_record_and_delete_sends_nothing(
    sim: HostupSimulator,
) -> None:
    vps = sim.add_vps(name="web")
    provider = configured(_AgentCommandProvider, sim)
    created = provider.create(command_inputs(vps))
    before = sim.count()

    read = provider.read(created.id, dict(created.outs))
    provider.delete(created.id, dict(created.outs))

    assert (read.id, read.outs) == (created.id, created.outs)
    assert sim.count() == before


# == Provider: AgentExecResult ==============================================================


def test_result_create_waits_for_exit_and_records_the_output(sim: HostupSimulator) -> None:
    vps = sim.add_vps(name="web")
    sim.script_command(
        "backup.sh",
        stdout="42 files\n",
        stderr="1 warning\n",
        exit_code=0,
        duration=0.3,
        extra={"truncated": True, "signal": "SIGPIPE", "cpuMs": 7},
    )
    pid = start(sim, vps, "backup.sh")

    began = time.monotonic()
    created = configured(_AgentExecResultProvider, sim).create(
        result_inputs(vps, pid, **{PROVIDER_KEY: "blob"})
    )

    assert time.monotonic() - began >= 0.25
    assert created.id == f"{vps}/{pid}"
    outs = created.outs
    assert (outs["vps_id"], outs["pid"]) == (vps, pid)
    assert isinstance(outs["pid"], int)
    assert outs["exited"] is True
    assert outs["exit_code"] == 0
    assert outs["stdout"] == "42 files\n"
    assert outs["stderr"] == "1 warning\n"
    assert outs["truncated"] is True
    assert outs["signal"] == "SIGPIPE"
    assert outs["extra_fields"] == {"cpuMs": 7}
    assert outs["timeout"] == DEFAULT_RESULT_TIMEOUT
    assert outs["fail_on_nonzero_exit"] is False
    assert sim.count("exec_output") >= 2


def test_result_create_records_a_nonzero_exit_by_default(sim: HostupSimulator) -> None:
    vps = sim.add_vps(name="web")
    sim.script_command("check.sh", stdout="bad\n", exit_code=3)
    pid = start(sim, vps, "check.sh")

    created = configured(_AgentExecResultProvider, sim).create(result_inputs(vps, pid))

    assert created.outs["exit_code"] == 3
    assert created.outs["stdout"] == "bad\n"


def test_result_create_fails_on_nonzero_exit_without_the_output_in_the_message(
    sim: HostupSimulator,
) -> None:
    vps = sim.add_vps(name="web")
    sim.script_command(
        "deploy.sh", stdout="TOKEN=s3cr3t-stdout\n", stderr="s3cr3t-stderr\n", exit_code=3
    )
    pid = start(sim, vps, "deploy.sh")

    with pytest.raises(hostup.CommandFailedError) as caught:
        configured(_AgentExecResultProvider, sim).create(
            result_inputs(vps, pid, fail_on_nonzero_exit=True)
        )

    error = caught.value
    assert error.exit_code == 3
    assert "code 3" in str(error)
    assert vps in str(error)
    assert "s3cr3t" not in str(error)
    assert "s3cr3t" not in repr(error)
    assert error.output.stdout == "TOKEN=s3cr3t-stdout\n"


def test_result_create_passes_a_zero_exit_with_fail_on_nonzero_exit(sim: HostupSimulator) -> None:
    vps = sim.add_vps(name="web")
    pid = start(sim, vps, "echo ok")

    created = configured(_AgentExecResultProvider, sim).create(
        result_inputs(vps, pid, fail_on_nonzero_exit=True)
    )

    assert (created.outs["exit_code"], created.outs["stdout"]) == (0, "ok\n")


def test_result_create_times_out_with_the_last_output(sim: HostupSimulator) -> None:
    vps = sim.add_vps(name="web")
    sim.script_command("long-job", stdout="never seen", duration=30)
    pid = start(sim, vps, "long-job")

    began = time.monotonic()
    with pytest.raises(hostup.CommandTimeoutError) as caught:
        configured(_AgentExecResultProvider, sim).create(result_inputs(vps, pid, timeout=0.6))
    elapsed = time.monotonic() - began

    assert 0.5 <= elapsed < 3
    error = caught.value
    assert (error.vps_id, error.pid, error.timeout) == (vps, pid, 0.6)
    assert error.last_output is not None
    assert error.last_output.exited is False
    assert str(pid) in str(error)


def test_result_create_with_a_read_only_key_names_the_missing_scope(sim: HostupSimulator) -> None:
    sim.add_api_key("hsk_readonly_key_0002", scopes=["read:vm"])
    vps = sim.add_vps(name="web")
    pid = start(sim, vps, "true")

    with pytest.raises(hostup.PermissionDeniedError) as caught:
        configured(_AgentExecResultProvider, sim, api_key="hsk_readonly_key_0002").create(
            result_inputs(vps, pid)
        )

    assert "write:vm" in str(caught.value)


def test_result_read_refreshes_while_the_pid_is_known(sim: HostupSimulator) -> None:
    vps = sim.add_vps(name="web")
    sim.script_command("slow", stdout="done\n", duration=0.4)
    pid = start(sim, vps, "slow")
    provider = configured(_AgentExecResultProvider, sim)
    # A state recorded while the command still ran (as after an import).
    state = {**result_inputs(vps, pid), "exited": False, "exit_code": None, "stdout": ""}
    time.sleep(0.5)

    read = provider.read(f"{vps}/{pid}", dict(state))

    assert read.id == f"{vps}/{pid}"
    assert read.outs["exited"] is True
    assert read.outs["stdout"] == "done\n"
    assert sim.count("exec_output") == 1


def test_result_read_keeps_the_recorded_result_after_the_pid_expired() -> None:
    with HostupSimulator(pid_retention=0.05) as sim:
        vps = sim.add_vps(name="web")
        sim.script_command("report", stdout="report body\n", exit_code=0)
        pid = start(sim, vps, "report")
        # The state as recorded when the command's output was read (numbers as floats).
        recorded = {
            **result_inputs(vps, pid),
            "exited": True,
            "exit_code": 0.0,
            "stdout": "report body\n",
            "stderr": "",
            "signal": None,
            "truncated": None,
            "extra_fields": {},
        }
        time.sleep(0.2)
        with (
            hostup.HostupClient(api_key=sim.api_key, base_url=sim.base_url) as client,
            pytest.raises(hostup.NotFoundError),
        ):
            client.get_agent_exec_output(vps, pid)  # the pid is gone on the server now
        before = sim.count("exec_output")

        read = configured(_AgentExecResultProvider, sim).read(f"{vps}/{pid}", dict(recorded))

        assert sim.count("exec_output") == before + 1  # it did ask
    assert read.id == f"{vps}/{pid}"
    assert read.outs == recorded


def test_result_update_changes_options_without_any_request(sim: HostupSimulator) -> None:
    vps = sim.add_vps(name="web")
    pid = start(sim, vps, "echo hi")
    provider = configured(_AgentExecResultProvider, sim)
    created = provider.create(result_inputs(vps, pid))
    before = sim.count()

    news = result_inputs(vps, pid, timeout=60.0, fail_on_nonzero_exit=True)
    updated = provider.update(created.id, dict(created.outs), news)

    assert sim.count() == before
    assert updated.outs["timeout"] == 60.0
    assert updated.outs["fail_on_nonzero_exit"] is True
    assert updated.outs["stdout"] == "hi\n"
    assert updated.outs["exit_code"] == 0


def test_result_update_to_fail_on_a_recorded_nonzero_exit_fails(sim: HostupSimulator) -> None:
    vps = sim.add_vps(name="web")
    sim.script_command("flaky", stdout="secret-ish\n", exit_code=2)
    pid = start(sim, vps, "flaky")
    provider = configured(_AgentExecResultProvider, sim)
    created = provider.create(result_inputs(vps, pid))
    # State comes back from the engine with numbers as floats.
    olds = {**created.outs, "pid": float(pid), "exit_code": 2.0}
    before = sim.count()

    with pytest.raises(hostup.CommandFailedError) as caught:
        provider.update(created.id, olds, result_inputs(vps, pid, fail_on_nonzero_exit=True))

    assert caught.value.exit_code == 2
    assert "secret-ish" not in str(caught.value)
    assert sim.count() == before


def test_result_delete_sends_nothing(sim: HostupSimulator) -> None:
    vps = sim.add_vps(name="web")
    pid = start(sim, vps, "true")
    provider = configured(_AgentExecResultProvider, sim)
    created = provider.create(result_inputs(vps, pid))
    before = sim.count()

    provider.delete(created.id, dict(created.outs))

    assert sim.count() == before


# == Dynamic-provider hygiene ===============================================================


def exercise(provider: Any, sim: HostupSimulator, vps: str) -> None:
    """Make the requests that create() makes in the provider process."""
    if isinstance(provider, _AgentCommandProvider):
        provider.create(command_inputs(vps))
        return
    pid = configured(_AgentCommandProvider, sim).create(command_inputs(vps)).outs["pid"]
    provider.create(result_inputs(vps, pid))


@pytest.mark.parametrize("cls", [_AgentCommandProvider, _AgentExecResultProvider])
def test_serialized_provider_is_stable_and_holds_no_key(
    cls: type[dyn.ResourceProvider], sim: HostupSimulator
) -> None:
    sim.add_api_key(DISTINCTIVE_KEY, scopes=["read:vm", "write:vm"])
    vps = sim.add_vps(name="web")
    provider = configured(cls, sim, api_key=DISTINCTIVE_KEY)
    # Build the client and use it, as create() does in the provider process.
    exercise(provider, sim, vps)

    first = serialize_provider(provider)
    second = serialize_provider(provider)

    assert first == second
    assert first == serialize_provider(cls())  # nothing of this instance is in the blob
    raw = base64.b64decode(first)
    assert DISTINCTIVE_KEY.encode() not in raw
    assert sim.base_url.encode() not in raw
    assert b"httpx" not in raw


@pytest.mark.parametrize("cls", [_AgentCommandProvider, _AgentExecResultProvider])
def test_unpickled_provider_has_no_config_and_no_client(
    cls: type[dyn.ResourceProvider], sim: HostupSimulator
) -> None:
    sim.add_api_key(DISTINCTIVE_KEY, scopes=["read:vm", "write:vm"])
    vps = sim.add_vps(name="web")
    provider = configured(cls, sim, api_key=DISTINCTIVE_KEY)
    exercise(provider, sim, vps)

    loaded = dill.loads(base64.b64decode(serialize_provider(provider)))

    assert type(loaded) is cls
    assert loaded.__dict__ == {"_config": {}}
    # No key until configure() (or the environment) gives one.
    with pytest.raises(hostup.ConfigurationError, match="No HostUp credentials"):
        exercise(loaded, sim, vps)


def test_a_program_can_declare_thousands_of_dynamic_resources(
    pulumi_program: PulumiProgram,
) -> None:
    # Upstream's serialize_provider nests a pickle wrapper once per call; unchecked, the
    # 986th dynamic resource of a program failed with RecursionError.
    def program() -> Any:
        commands = [
            hostup.AgentCommand(f"cmd-{i}", vps_id="vps_01abcdefgh", command="true")
            for i in range(1500)
        ]
        return commands[-1].command

    assert pulumi_program.run(program).value == "true"
    assert len(pulumi_program.registrations) == 1500


def test_one_line_tracebacks_only_for_our_errors() -> None:
    import traceback

    from hostup_pulumi.resources import _OneLineTracebacks

    shown = _OneLineTracebacks(traceback)
    try:
        raise hostup.ValidationError("vps_id '10.0.0.7' is an IP address")
    except hostup.ValidationError:
        assert shown.format_exc() == "ValidationError: vps_id '10.0.0.7' is an IP address"
    try:
        raise KeyError("a user's own dynamic provider")
    except KeyError:
        text = shown.format_exc()
    # Anything else keeps its traceback, as the dynamic provider server shows it.
    assert text.startswith("Traceback (most recent call last):")
    assert text.rstrip().endswith('KeyError: "a user\'s own dynamic provider"')
    assert shown.print_exc is traceback.print_exc  # the rest of the module is the real one

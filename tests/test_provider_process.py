"""The providers in the real dynamic-provider process (``python -m pulumi.dynamic``), driven
over gRPC the way the Pulumi engine drives them: the provider blob is unpickled in a separate
process and works with the config that Configure sends (or that process's environment), and
with nothing captured from the program."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
import pulumi.dynamic as dyn
import pytest
from pulumi.dynamic.dynamic import serialize_provider
from pulumi.output import Unknown
from pulumi.runtime import rpc
from pulumi.runtime.proto import provider_pb2
from pulumi_helpers import (
    PROVIDER_KEY,
    ProviderProcess,
    from_struct,
    stack_config,
    to_struct,
)

from hostup_pulumi.resources import _AgentCommandProvider, _AgentExecResultProvider
from hostup_pulumi.testing import HostupSimulator

# Fixtures: pulumi_program, set_stack_config, provider_process.
pytest_plugins = ("pulumi_helpers",)

COMMAND_URN = "urn:pulumi:stack::project::pulumi-python:dynamic/hostup:AgentCommand::cmd"
RESULT_URN = "urn:pulumi:stack::project::pulumi-python:dynamic/hostup:AgentExecResult::res"
RPC_TIMEOUT = 20.0

StartProvider = Callable[..., ProviderProcess]


@pytest.fixture
def sim(hostup_simulator: HostupSimulator) -> HostupSimulator:
    """The package's simulator fixture (started, empty)."""
    return hostup_simulator


def blob_from_a_program_with_a_wrong_key(cls: type[dyn.ResourceProvider]) -> str:
    """Serialize a provider the program process configured with a key the simulator rejects
    and used: if anything of it were captured, the provider process would fail with it."""
    provider = cls()
    provider.configure(
        dyn.ConfigureRequest(
            dyn.Config(
                {"hostup:apiKey": "hsk_program_side_wrong", "hostup:baseUrl": "http://127.0.0.1:9"},
                "project",
            )
        )
    )
    assert provider._config  # configured: that must not travel with the blob
    return serialize_provider(provider)


def configure(stub: Any, config: dict[str, Any]) -> None:
    stub.Configure(provider_pb2.ConfigureRequest(args=to_struct(config)), timeout=RPC_TIMEOUT)


def check(stub: Any, urn: str, news: dict[str, Any]) -> tuple[dict[str, Any], list[Any]]:
    response = stub.Check(
        provider_pb2.CheckRequest(urn=urn, olds=to_struct({}), news=to_struct(news)),
        timeout=RPC_TIMEOUT,
    )
    return from_struct(response.inputs), [(f.property, f.reason) for f in response.failures]


def create(stub: Any, urn: str, props: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    response = stub.Create(
        provider_pb2.CreateRequest(urn=urn, properties=to_struct(props)), timeout=RPC_TIMEOUT
    )
    return response.id, from_struct(response.properties)


def read(stub: Any, urn: str, id_: str, props: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    response = stub.Read(
        provider_pb2.ReadRequest(id=id_, urn=urn, properties=to_struct(props)),
        timeout=RPC_TIMEOUT,
    )
    return response.id, from_struct(response.properties)


def run_command_and_read_output(stub: Any, sim: HostupSimulator, vps: str) -> None:
    """Check, Create and Read an AgentCommand and an AgentExecResult through ``stub``."""
    command_blob = blob_from_a_program_with_a_wrong_key(_AgentCommandProvider)
    result_blob = blob_from_a_program_with_a_wrong_key(_AgentExecResultProvider)

    news = {"vps_id": vps, "command": "cat /etc/issue", PROVIDER_KEY: command_blob}
    inputs, failures = check(stub, COMMAND_URN, news)
    assert failures == []
    assert inputs == news

    cmd_id, cmd = create(stub, COMMAND_URN, inputs)
    pid = cmd["pid"]
    assert cmd_id == f"{vps}/{int(pid)}"
    assert cmd[PROVIDER_KEY] == command_blob
    assert sim.count("exec_start") == 1

    news = {
        "vps_id": cmd["vps_id"],
        "pid": pid,  # a float, as the engine passes every number
        "timeout": 300.0,
        "fail_on_nonzero_exit": True,
        PROVIDER_KEY: result_blob,
    }
    inputs, failures = check(stub, RESULT_URN, news)
    assert failures == []

    res_id, res = create(stub, RESULT_URN, inputs)
    assert res_id == cmd_id
    assert (res["exited"], res["exit_code"]) == (True, 0)
    assert res["stdout"] == "Ubuntu 24.04 LTS\n"

    read_id, refreshed = read(stub, RESULT_URN, res_id, res)
    assert read_id == res_id
    assert refreshed["stdout"] == "Ubuntu 24.04 LTS\n"
    assert refreshed["exit_code"] == 0


def test_provider_process_uses_the_config_from_configure(
    sim: HostupSimulator, provider_process: StartProvider
) -> None:
    vps = sim.add_vps(name="web")
    sim.script_command("cat /etc/issue", stdout="Ubuntu 24.04 LTS\n")
    handle = provider_process()
    # Dynamic providers receive the whole stack config, namespaces kept.
    configure(handle.stub, {**stack_config(sim), "project:greeting": "hi"})

    run_command_and_read_output(handle.stub, sim, vps)


def test_provider_process_accepts_a_secret_api_key(
    sim: HostupSimulator, provider_process: StartProvider
) -> None:
    vps = sim.add_vps(name="web")
    sim.script_command("cat /etc/issue", stdout="Ubuntu 24.04 LTS\n")
    handle = provider_process()
    config = stack_config(sim)
    secret_key = {rpc._special_sig_key: rpc._special_secret_sig, "value": config["hostup:apiKey"]}
    configure(handle.stub, {**config, "hostup:apiKey": secret_key})

    run_command_and_read_output(handle.stub, sim, vps)


def test_provider_process_falls_back_to_its_environment(
    sim: HostupSimulator, provider_process: StartProvider
) -> None:
    vps = sim.add_vps(name="web")
    sim.script_command("cat /etc/issue", stdout="Ubuntu 24.04 LTS\n")
    handle = provider_process({"HOSTUP_API_KEY": sim.api_key, "HOSTUP_BASE_URL": sim.base_url})
    configure(handle.stub, {"project:greeting": "hi"})

    run_command_and_read_output(handle.stub, sim, vps)


def test_provider_process_passes_unknown_inputs_in_preview(
    sim: HostupSimulator, provider_process: StartProvider
) -> None:
    # In a first preview the pid of a command not yet started is unknown.
    handle = provider_process()
    configure(handle.stub, stack_config(sim))
    blob = serialize_provider(_AgentExecResultProvider())
    news = {
        "vps_id": rpc.UNKNOWN,
        "pid": rpc.UNKNOWN,
        "timeout": 300.0,
        "fail_on_nonzero_exit": False,
        PROVIDER_KEY: blob,
    }

    inputs, failures = check(handle.stub, RESULT_URN, news)
    diff = handle.stub.Diff(
        provider_pb2.DiffRequest(
            id="vps_01abcdefgh/7",
            urn=RESULT_URN,
            olds=to_struct({**news, "vps_id": "vps_01abcdefgh", "pid": 7.0}),
            news=to_struct(news),
        ),
        timeout=RPC_TIMEOUT,
    )

    assert failures == []
    assert inputs["timeout"] == 300.0
    assert {key for key, value in inputs.items() if isinstance(value, Unknown)} == {"vps_id", "pid"}
    assert diff.changes == provider_pb2.DiffResponse.DIFF_SOME
    assert set(diff.replaces) == {"vps_id", "pid"}
    assert sim.requests == []


def test_provider_process_reports_check_failures_and_errors(
    sim: HostupSimulator, provider_process: StartProvider
) -> None:
    vps = sim.add_vps(name="db", agent_available=False, agent_reason="qga not responding")
    handle = provider_process()
    configure(handle.stub, stack_config(sim))
    blob = serialize_provider(_AgentCommandProvider())

    _inputs, failures = check(
        handle.stub,
        COMMAND_URN,
        {"vps_id": "203.0.113.9", "command": "true", PROVIDER_KEY: blob},
    )
    assert [prop for prop, _ in failures] == ["vps_id"]
    assert "list_vps(primary_ip='203.0.113.9')" in failures[0][1]

    with pytest.raises(grpc.RpcError) as caught:
        create(handle.stub, COMMAND_URN, {"vps_id": vps, "command": "true", PROVIDER_KEY: blob})

    details = caught.value.details()  # type: ignore[attr-defined]
    # One line, class and message: the engine shows it as the resource's error, no frames.
    assert details.startswith(
        "AgentUnavailableError: QEMU guest agent command execution is not available on "
        f"{vps}: qga not responding"
    )
    assert "Traceback" not in details
    assert sim.api_key not in details
    assert sim.count("exec_start") == 0


def test_provider_process_without_credentials_says_how_to_set_them(
    sim: HostupSimulator, provider_process: StartProvider
) -> None:
    vps = sim.add_vps(name="web")
    handle = provider_process()
    configure(handle.stub, {"hostup:baseUrl": sim.base_url})
    blob = serialize_provider(_AgentCommandProvider())

    with pytest.raises(grpc.RpcError) as caught:
        create(handle.stub, COMMAND_URN, {"vps_id": vps, "command": "true", PROVIDER_KEY: blob})

    details = caught.value.details()  # type: ignore[attr-defined]
    assert "pulumi config set --secret hostup:apiKey" in details
    assert "HOSTUP_API_KEY" in details
    assert sim.requests == []

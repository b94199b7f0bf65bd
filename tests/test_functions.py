"""Tests of hostup_pulumi.functions: the data function, its Output twin and the precondition,
run in a mocked Pulumi program against the offline simulator."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Mapping

import pulumi
import pytest
from pulumi.runtime.stack import massage
from pulumi_helpers import (
    EngineMocks,
    PulumiProgram,
    from_struct,
    stack_config,
    to_struct,
)

import hostup_pulumi as hostup
from hostup_pulumi import native
from hostup_pulumi._threads import DaemonThreads
from hostup_pulumi.testing import HostupSimulator

# Fixtures: pulumi_program, set_stack_config, provider_process.
pytest_plugins = ("pulumi_helpers",)

SetConfig = Callable[[Mapping[str, str]], None]
SERVER_TYPE = "test:index:Server"


class Server(pulumi.CustomResource):
    """A resource of another provider that hands out a VPS id (like a VPS resource would)."""

    vps_id: pulumi.Output[str]

    def __init__(self, name: str) -> None:
        super().__init__(SERVER_TYPE, name, {"vps_id": None})


@pytest.fixture
def sim(hostup_simulator: HostupSimulator) -> HostupSimulator:
    """The package's simulator fixture (started, empty)."""
    return hostup_simulator


@pytest.fixture
def configured(sim: HostupSimulator, set_stack_config: SetConfig) -> HostupSimulator:
    """``sim``, with the stack config pointing at it."""
    set_stack_config(stack_config(sim))
    return sim


def probe_paths(sim: HostupSimulator) -> list[str]:
    return [r.path for r in sim.requests if r.route == "probe"]


# -- get_vps_agent_availability ---------------------------------------------------------


def test_get_reports_an_available_vps(
    configured: HostupSimulator, pulumi_program: PulumiProgram
) -> None:
    vps = configured.add_vps(name="web", primary_ip="203.0.113.10")

    observed = pulumi_program.run(lambda: hostup.get_vps_agent_availability(vps))

    result = observed.value
    assert isinstance(result, hostup.GetVpsAgentAvailabilityResult)
    assert (result.vps_id, result.available, result.reason, result.vm_running) == (
        vps,
        True,
        None,
        True,
    )
    assert probe_paths(configured) == [f"/api/v2/vps/{vps}/agent/exec"]


def test_plain_calls_share_one_client_and_connection(
    configured: HostupSimulator, pulumi_program: PulumiProgram
) -> None:
    ids = [configured.add_vps(name=f"web-{i}") for i in range(5)]

    def program() -> list[bool]:
        checks = [hostup.get_vps_agent_availability(v).available for v in ids]
        hostup.require_agent_available(ids[0])
        return checks

    assert pulumi_program.run(program).value == [True] * 5
    # Six requests over one kept-alive connection: no client (and no TLS setup) per call.
    assert len(probe_paths(configured)) == 6
    assert configured.connections_opened == 1


def test_get_reports_the_reason_of_an_unavailable_vps(
    configured: HostupSimulator, pulumi_program: PulumiProgram
) -> None:
    vps = configured.add_vps(
        name="db", agent_available=False, agent_reason="guest agent not installed"
    )

    result = pulumi_program.run(lambda: hostup.get_vps_agent_availability(vps)).value

    assert result.available is False
    assert result.reason == "guest agent not installed"
    assert result.vm_running is True
    assert result.vps_id == vps


def test_get_of_a_stopped_vps_says_the_vm_is_not_running(
    configured: HostupSimulator, pulumi_program: PulumiProgram
) -> None:
    vps = configured.add_vps(name="old", power_state="stopped")

    result = pulumi_program.run(lambda: hostup.get_vps_agent_availability(vps)).value

    assert (result.available, result.vm_running) == (False, False)
    assert result.reason


def test_result_is_exported_with_camel_case_names(configured: HostupSimulator) -> None:
    vps = configured.add_vps(name="web", agent_available=False, agent_reason="agent down")
    with hostup.HostupClient(api_key=configured.api_key, base_url=configured.base_url) as client:
        found = client.get_agent_availability(vps)
    result = hostup.GetVpsAgentAvailabilityResult(
        available=found.available, reason=found.reason, vm_running=found.vm_running, vps_id=vps
    )

    # pulumi.export turns a stack output into plain data like this, then serializes it.
    exported = from_struct(to_struct({"gate": massage(result, [])}))["gate"]

    assert exported == {"vpsId": vps, "available": False, "reason": "agent down", "vmRunning": True}


def test_an_ip_address_is_refused_before_any_request(
    configured: HostupSimulator, pulumi_program: PulumiProgram
) -> None:
    with pytest.raises(hostup.ValidationError) as caught:
        pulumi_program.run(lambda: hostup.get_vps_agent_availability("203.0.113.10"))

    assert "list_vps(primary_ip='203.0.113.10')" in str(caught.value)
    assert configured.requests == []


# -- the Output twin ----------------------------------------------------------------------


def test_output_twin_resolves_like_the_plain_function(
    configured: HostupSimulator, pulumi_program: PulumiProgram
) -> None:
    up = configured.add_vps(name="web")
    down = configured.add_vps(name="db", agent_available=False, agent_reason="agent down")

    observed = pulumi_program.run(
        lambda: pulumi.Output.all(
            hostup.get_vps_agent_availability_output(up),
            hostup.get_vps_agent_availability_output(pulumi.Output.from_input(down)),
        )
    )

    first, second = observed.value
    assert (first.vps_id, first.available, first.reason) == (up, True, None)
    assert (second.vps_id, second.available, second.reason) == (down, False, "agent down")
    assert sorted(probe_paths(configured)) == sorted(
        [f"/api/v2/vps/{up}/agent/exec", f"/api/v2/vps/{down}/agent/exec"]
    )


def test_output_twin_takes_an_id_from_another_resource(
    configured: HostupSimulator, pulumi_program: PulumiProgram
) -> None:
    vps = configured.add_vps(name="web")
    pulumi_program.start(EngineMocks(outputs={SERVER_TYPE: {"vps_id": vps}}))

    observed = pulumi_program.run(
        lambda: hostup.get_vps_agent_availability_output(Server("server").vps_id)
    )

    assert observed.known is True
    assert observed.value.vps_id == vps
    assert observed.value.available is True


def test_output_twin_keeps_a_secret_id_secret(
    configured: HostupSimulator, pulumi_program: PulumiProgram
) -> None:
    vps = configured.add_vps(name="web")

    observed = pulumi_program.run(
        lambda: hostup.get_vps_agent_availability_output(pulumi.Output.secret(vps))
    )

    assert observed.secret is True
    assert observed.value.available is True


def test_output_twin_is_unknown_in_preview_while_the_id_is_unknown(
    configured: HostupSimulator, pulumi_program: PulumiProgram
) -> None:
    known = configured.add_vps(name="web")
    # In preview the Server is not created yet: its vps_id output is unknown.
    pulumi_program.start(EngineMocks(preview=True), preview=True)

    # Output.all of an unknown value is unknown as a whole; look at each part instead.
    holder: dict[str, object] = {}

    def observe() -> pulumi.Output[object]:
        unknown_result = hostup.get_vps_agent_availability_output(Server("server").vps_id)
        known_result = hostup.get_vps_agent_availability_output(known)

        async def inspect() -> None:
            holder["unknown_is_known"] = await unknown_result.is_known()
            holder["known_value"] = await known_result.future()

        return pulumi.Output.from_input(inspect())

    pulumi_program.run(observe)

    assert holder["unknown_is_known"] is False
    assert holder["known_value"].vps_id == known  # type: ignore[attr-defined]
    # Exactly one request: the probe of the known id. None for the unknown one.
    assert [r.path for r in configured.requests] == [f"/api/v2/vps/{known}/agent/exec"]


@pytest.mark.parametrize(
    "function",
    [
        pytest.param(hostup.get_vps_agent_availability_output, id="get"),
        pytest.param(hostup.require_agent_available_output, id="require"),
    ],
)
def test_output_twin_sends_nothing_in_preview_for_an_unknown_id(
    function: Callable[[pulumi.Input[str]], pulumi.Output[hostup.GetVpsAgentAvailabilityResult]],
    configured: HostupSimulator,
    pulumi_program: PulumiProgram,
) -> None:
    pulumi_program.start(EngineMocks(preview=True), preview=True)

    observed = pulumi_program.run(lambda: function(Server("server").vps_id))

    assert observed.known is False
    assert observed.value is None
    assert configured.requests == []


def test_output_twins_follow_the_stack_config_of_each_program(
    set_stack_config: SetConfig, pulumi_program: PulumiProgram
) -> None:
    # Two programs in one process (as in a user's test suite), each with its own simulator:
    # the second must talk to its own simulator, not to the first one's address.
    for name in ("first", "second"):
        with HostupSimulator() as simulator:
            vps = simulator.add_vps(name=name)
            set_stack_config(stack_config(simulator))

            observed = pulumi_program.run(lambda v=vps: hostup.get_vps_agent_availability_output(v))

            assert observed.value.available is True
            assert probe_paths(simulator) == [f"/api/v2/vps/{vps}/agent/exec"]


# -- require_agent_available --------------------------------------------------------------


def test_require_passes_an_available_vps(
    configured: HostupSimulator, pulumi_program: PulumiProgram
) -> None:
    vps = configured.add_vps(name="web")

    result = pulumi_program.run(lambda: hostup.require_agent_available(vps)).value

    assert (result.vps_id, result.available) == (vps, True)


def test_require_fails_the_program_naming_the_vps_and_the_reason(
    configured: HostupSimulator, pulumi_program: PulumiProgram
) -> None:
    vps = configured.add_vps(name="db", agent_available=False, agent_reason="qga socket closed")

    with pytest.raises(hostup.AgentUnavailableError) as caught:
        pulumi_program.run(lambda: hostup.require_agent_available(vps))

    error = caught.value
    assert (error.vps_id, error.reason, error.vm_running) == (vps, "qga socket closed", True)
    assert str(error) == (
        f"QEMU guest agent command execution is not available on {vps}: qga socket closed "
        "(VM running: true). Make sure qemu-guest-agent is installed and running in the guest "
        "(Debian or Ubuntu: `apt install qemu-guest-agent && systemctl enable --now "
        "qemu-guest-agent`). Pass wait_timeout=SECONDS to wait for it instead of failing"
    )
    assert configured.count("probe") == 1


def test_require_waits_until_the_agent_becomes_available(
    configured: HostupSimulator, pulumi_program: PulumiProgram
) -> None:
    vps = configured.add_vps(name="web", agent_available=False, agent_reason="booting")
    timer = threading.Timer(0.3, lambda: configured.set_agent(vps, available=True))
    timer.start()
    try:
        began = time.monotonic()
        result = pulumi_program.run(lambda: hostup.require_agent_available(vps, wait_timeout=10))
        elapsed = time.monotonic() - began
    finally:
        timer.cancel()

    assert result.value.available is True
    assert elapsed >= 0.3
    assert elapsed < 5
    assert configured.count("probe") >= 2


def test_require_fails_at_the_wait_deadline(
    configured: HostupSimulator, pulumi_program: PulumiProgram
) -> None:
    vps = configured.add_vps(name="web", agent_available=False, agent_reason="booting")

    began = time.monotonic()
    with pytest.raises(hostup.AgentUnavailableError) as caught:
        pulumi_program.run(lambda: hostup.require_agent_available(vps, wait_timeout=0.6))
    elapsed = time.monotonic() - began

    assert 0.6 <= elapsed < 4
    assert caught.value.vps_id == vps
    assert caught.value.reason == "booting"
    assert vps in str(caught.value)
    assert "booting" in str(caught.value)
    assert configured.count("probe") >= 2


def test_require_output_twin_fails_when_unavailable(
    configured: HostupSimulator, pulumi_program: PulumiProgram
) -> None:
    vps = configured.add_vps(name="db", agent_available=False, agent_reason="agent down")

    with pytest.raises(hostup.AgentUnavailableError) as caught:
        pulumi_program.run(lambda: hostup.require_agent_available_output(vps))

    assert caught.value.vps_id == vps
    assert caught.value.reason == "agent down"


def test_require_output_twin_waits_for_the_agent(
    configured: HostupSimulator, pulumi_program: PulumiProgram
) -> None:
    vps = configured.add_vps(name="web", agent_available=False, agent_reason="booting")
    timer = threading.Timer(0.3, lambda: configured.set_agent(vps, available=True))
    timer.start()
    try:
        observed = pulumi_program.run(
            lambda: hostup.require_agent_available_output(
                pulumi.Output.from_input(vps), wait_timeout=10
            )
        )
    finally:
        timer.cancel()

    assert observed.value.available is True
    assert observed.value.vps_id == vps


def test_output_probes_overlap_within_the_configured_concurrency(
    sim: HostupSimulator, set_stack_config: SetConfig, pulumi_program: PulumiProgram
) -> None:
    set_stack_config({**stack_config(sim), "hostup:maxConcurrency": "3"})
    ids = [sim.add_vps(name=f"web-{i}") for i in range(12)]
    sim.set_latency(0.05)

    observed = pulumi_program.run(
        lambda: pulumi.Output.all(*(hostup.get_vps_agent_availability_output(v) for v in ids))
    )

    assert [(r.vps_id, r.available) for r in observed.value] == [(v, True) for v in ids]
    assert sorted(probe_paths(sim)) == sorted(f"/api/v2/vps/{v}/agent/exec" for v in ids)
    # They overlapped (more than one connection), and never beyond hostup:maxConcurrency.
    assert 1 < sim.connections_opened <= 3


def test_a_gate_waiting_for_its_agent_does_not_hold_up_other_probes(
    sim: HostupSimulator, set_stack_config: SetConfig, pulumi_program: PulumiProgram
) -> None:
    set_stack_config({**stack_config(sim), "hostup:maxConcurrency": "1"})
    booting = sim.add_vps(name="db", agent_available=False, agent_reason="booting")
    ids = [sim.add_vps(name=f"web-{i}") for i in range(3)]
    timer = threading.Timer(1.5, lambda: sim.set_agent(booting, available=True))
    timer.start()
    try:
        observed = pulumi_program.run(
            lambda: pulumi.Output.all(
                hostup.require_agent_available_output(booting, wait_timeout=10),
                *(hostup.get_vps_agent_availability_output(v) for v in ids),
            )
        )
    finally:
        timer.cancel()

    gate, *probes = observed.value
    assert gate.available is True
    assert [p.available for p in probes] == [True] * 3
    # The other VPSes were probed while the gate was still polling, not after it passed.
    paths = probe_paths(sim)
    last_poll = len(paths) - 1 - paths[::-1].index(f"/api/v2/vps/{booting}/agent/exec")
    assert all(paths.index(f"/api/v2/vps/{v}/agent/exec") < last_poll for v in ids)


def test_probe_threads_outlive_a_program_whose_loop_closed_under_them() -> None:
    # A program that fails leaves its calls running; when one ends after the loop has
    # closed, its thread must stay able to serve the next program (tests run many).
    threads = DaemonThreads(1, "hostup-test")
    release = threading.Event()

    async def abandons() -> None:
        threads.run(release.wait)

    async def asks() -> int:
        return await threads.run(lambda: 42)

    asyncio.run(abandons())
    release.set()
    try:
        assert asyncio.run(asyncio.wait_for(asks(), 5)) == 42
    finally:
        threads.close()


def test_require_output_twin_fails_at_the_wait_deadline(
    configured: HostupSimulator, pulumi_program: PulumiProgram
) -> None:
    vps = configured.add_vps(name="web", agent_available=False, agent_reason="booting")

    with pytest.raises(hostup.AgentUnavailableError) as caught:
        pulumi_program.run(lambda: hostup.require_agent_available_output(vps, wait_timeout=0.6))

    assert (caught.value.vps_id, caught.value.reason) == (vps, "booting")


def test_a_failed_gate_keeps_the_guarded_command_from_being_created(
    configured: HostupSimulator, pulumi_program: PulumiProgram
) -> None:
    vps = configured.add_vps(name="db", agent_available=False, agent_reason="agent down")
    engine = EngineMocks(provider_config=stack_config(configured))
    pulumi_program.start(engine)

    def program() -> pulumi.Output[object]:
        gate = hostup.require_agent_available_output(vps)
        return hostup.AgentCommand("cmd", vps_id=gate.vps_id, command="uname -a").pid

    with pytest.raises(hostup.AgentUnavailableError):
        pulumi_program.run(program)

    assert [a.name for a in engine.seen] == []
    assert configured.count("exec_start") == 0


def test_a_passed_gate_lets_the_guarded_command_run(
    configured: HostupSimulator, pulumi_program: PulumiProgram
) -> None:
    vps = configured.add_vps(name="web")
    pulumi_program.start(EngineMocks(provider_config=stack_config(configured)))

    def program() -> pulumi.Output[object]:
        gate = hostup.require_agent_available_output(vps)
        return hostup.AgentCommand("cmd", vps_id=gate.vps_id, command="uname -a").pid

    observed = pulumi_program.run(program)

    assert observed.value >= 1
    assert configured.count("exec_start") == 1


# -- configuration -------------------------------------------------------------------------


def test_config_key_wins_over_the_environment(
    sim: HostupSimulator,
    set_stack_config: SetConfig,
    pulumi_program: PulumiProgram,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    vps = sim.add_vps(name="web")
    monkeypatch.setenv("HOSTUP_API_KEY", "hsk_wrong_key_from_env")
    set_stack_config(stack_config(sim))

    result = pulumi_program.run(lambda: hostup.get_vps_agent_availability(vps)).value

    assert result.available is True


def test_environment_is_used_without_stack_config(
    sim: HostupSimulator,
    set_stack_config: SetConfig,
    pulumi_program: PulumiProgram,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    vps = sim.add_vps(name="web")
    monkeypatch.setenv("HOSTUP_API_KEY", sim.api_key)
    monkeypatch.setenv("HOSTUP_BASE_URL", sim.base_url)

    result = pulumi_program.run(lambda: hostup.get_vps_agent_availability_output(vps)).value

    assert result.available is True


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda: hostup.get_vps_agent_availability("vps_01abcdefgh"), id="get"),
        pytest.param(
            lambda: hostup.get_vps_agent_availability_output("vps_01abcdefgh"), id="get_output"
        ),
        pytest.param(lambda: hostup.require_agent_available("vps_01abcdefgh"), id="require"),
        pytest.param(
            lambda: hostup.require_agent_available_output("vps_01abcdefgh"), id="require_output"
        ),
    ],
)
def test_no_credentials_says_how_to_set_them(
    call: Callable[[], object],
    sim: HostupSimulator,
    set_stack_config: SetConfig,
    pulumi_program: PulumiProgram,
) -> None:
    set_stack_config({"hostup:baseUrl": sim.base_url})

    with pytest.raises(hostup.ConfigurationError) as caught:
        pulumi_program.run(call)

    assert "pulumi config set --secret hostup:apiKey" in str(caught.value)
    assert "HOSTUP_API_KEY" in str(caught.value)
    assert sim.requests == []


# -- opts: a hostup provider runs the call in the plugin; no accepted argument is ignored ------


AVAILABLE = {"vpsId": "vps_01abcdefgh", "available": True, "reason": None, "vmRunning": True}


@pytest.mark.parametrize(
    ("call", "token"),
    [
        (hostup.get_vps_agent_availability, "hostup:index:getVpsAgentAvailability"),
        (hostup.get_vps_agent_availability_output, "hostup:index:getVpsAgentAvailability"),
        (hostup.require_agent_available, "hostup:index:requireAgentAvailable"),
        (hostup.require_agent_available_output, "hostup:index:requireAgentAvailable"),
    ],
)
def test_a_hostup_provider_in_opts_runs_the_call_in_the_plugin(
    call: Callable[..., object], token: str, configured: HostupSimulator,
    pulumi_program: PulumiProgram,
) -> None:  # fmt: skip
    mocks = EngineMocks()
    mocks.invoke_results[token] = AVAILABLE
    pulumi_program.start(mocks)

    def program() -> object:
        acme = hostup.Provider("acme", api_key="hsk_acme", base_url="http://127.0.0.1:9")
        return call("vps_01abcdefgh", opts=pulumi.InvokeOptions(provider=acme))

    observed = pulumi_program.run(program)

    assert observed.value.available is True
    assert observed.value.vps_id == "vps_01abcdefgh"
    [invoke] = mocks.calls
    assert (invoke.token, invoke.args) == (token, {"vpsId": "vps_01abcdefgh"})
    assert "pulumi:providers:hostup::acme" in (invoke.provider or "")
    assert configured.requests == []  # nothing was sent from the program process


def test_another_providers_opts_are_refused(
    configured: HostupSimulator, pulumi_program: PulumiProgram
) -> None:
    def program() -> object:
        other = pulumi.ProviderResource("aws", "aws-provider", {})
        return hostup.get_vps_agent_availability(
            "vps_01abcdefgh", opts=pulumi.InvokeOptions(provider=other)
        )

    with pytest.raises(hostup.ValidationError) as caught:
        pulumi_program.run(program)

    assert str(caught.value) == (
        "get_vps_agent_availability: opts.provider is a 'aws' provider; pass a "
        "hostup_pulumi.Provider (or no provider)"
    )
    assert configured.requests == []


def test_dynamic_resources_refuse_a_hostup_provider(pulumi_program: PulumiProgram) -> None:
    def program() -> object:
        acme = hostup.Provider("acme", api_key="hsk_acme")
        on = pulumi.ResourceOptions(provider=acme)
        return hostup.AgentCommand("cmd", vps_id="vps_01abcdefgh", command="true", opts=on)

    with pytest.raises(hostup.ValidationError, match=r"use hostup_pulumi\.native\.AgentCommand"):
        pulumi_program.run(program)


# -- errors fail a program with their message, not the client's stack --------------------------


@pytest.mark.parametrize(
    "call",
    [
        hostup.get_vps_agent_availability,
        hostup.get_vps_agent_availability_output,
        hostup.require_agent_available,
        hostup.require_agent_available_output,
    ],
)
def test_a_refused_connection_fails_the_program_as_one_message(
    call: Callable[..., object], set_stack_config: SetConfig, pulumi_program: PulumiProgram
) -> None:
    set_stack_config({"hostup:apiKey": "hsk_x", "hostup:baseUrl": "http://127.0.0.1:9",
                      "hostup:maxRetries": "0"})  # fmt: skip

    with pytest.raises(hostup.APIConnectionError) as caught:
        pulumi_program.run(lambda: call("vps_01abcdefgh"))

    # A RunError: Pulumi prints its message, without a traceback.
    assert isinstance(caught.value, pulumi.RunError)
    assert "127.0.0.1:9" in str(caught.value)


def test_a_401_in_a_program_says_how_to_set_the_key(
    sim: HostupSimulator, set_stack_config: SetConfig, pulumi_program: PulumiProgram
) -> None:
    vps = sim.add_vps(name="web")
    set_stack_config({"hostup:apiKey": "hsk_wrong", "hostup:baseUrl": sim.base_url})

    with pytest.raises(hostup.AuthenticationError) as caught:
        pulumi_program.run(lambda: hostup.get_vps_agent_availability_output(vps))

    assert isinstance(caught.value, pulumi.RunError)
    assert "hostup:apiKey" in str(caught.value)
    assert "HOSTUP_API_KEY" in str(caught.value)


# -- several VPSes at once: getVpsAgentAvailabilities, and the plugin's coalescing ------------


class FleetMocks(EngineMocks):
    """The plugin's two availability functions, answered per VPS; ``missing`` ones fail as
    the plugin fails them (one line, naming the VPS)."""

    def __init__(self, missing: frozenset[str] = frozenset()) -> None:
        super().__init__()
        self.missing = missing

    def _one(self, vps_id: str) -> dict[str, object]:
        if vps_id in self.missing:
            raise Exception(f"GET /api/v2/vps/{vps_id}/agent/exec failed: 404 not found")
        return {"vpsId": vps_id, "available": True, "vmRunning": True}

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict[str, object]:
        self.calls.append(args)
        if args.token == "hostup:index:getVpsAgentAvailabilities":
            return {"availabilities": [self._one(v) for v in args.args["vpsIds"]]}
        return self._one(args.args["vpsId"])


FLEET = [f"vps_01fleet{i:04d}" for i in range(5)]


def _fields(
    results: list[hostup.GetVpsAgentAvailabilityResult],
) -> list[tuple[type, str, bool, str | None]]:
    return [(type(r), r.vps_id, r.available, r.reason) for r in results]


def test_native_output_calls_made_together_share_one_invoke(
    pulumi_program: PulumiProgram,
) -> None:
    mocks = FleetMocks()
    pulumi_program.start(mocks)

    def program() -> object:
        return pulumi.Output.all(*(native.get_vps_agent_availability_output(v) for v in FLEET))

    observed = pulumi_program.run(program)

    assert [r.vps_id for r in observed.value] == FLEET
    assert all(r.available and r.vm_running for r in observed.value)
    [invoke] = mocks.calls
    assert invoke.token == "hostup:index:getVpsAgentAvailabilities"
    assert invoke.args == {"vpsIds": FLEET}


def test_native_output_calls_keep_their_own_errors_when_coalesced(
    pulumi_program: PulumiProgram,
) -> None:
    mocks = FleetMocks(missing=frozenset({FLEET[2]}))
    pulumi_program.start(mocks)
    seen: dict[str, object] = {}

    def program() -> object:
        outputs = [native.get_vps_agent_availability_output(v) for v in FLEET]
        others = [
            output.apply(lambda r, v=vps_id: seen.setdefault(v, r.available))
            for vps_id, output in zip(FLEET, outputs, strict=True)
            if vps_id != FLEET[2]
        ]
        # The failing call ends the program: only after the others have answered, so that
        # what they saw is checked, not how fast the event loop ran them.
        return pulumi.Output.all(*others).apply(lambda _: outputs[2])

    with pytest.raises(Exception, match=f"{FLEET[2]}/agent/exec failed: 404 not found"):
        pulumi_program.run(program)

    # The batch failed; each VPS was then asked alone, and only the missing one failed.
    assert [c.token for c in mocks.calls].count("hostup:index:getVpsAgentAvailabilities") == 1
    singles = [c.args["vpsId"] for c in mocks.calls if c.token.endswith("Availability")]
    assert sorted(singles) == FLEET
    assert seen == {v: True for v in FLEET if v != FLEET[2]}


def test_native_output_calls_with_their_own_options_are_not_coalesced(
    pulumi_program: PulumiProgram,
) -> None:
    mocks = FleetMocks()
    pulumi_program.start(mocks)

    def program() -> object:
        parent = Server("parent")
        opts = pulumi.InvokeOptions(parent=parent)
        return pulumi.Output.all(
            *(native.get_vps_agent_availability_output(v, opts) for v in FLEET[:3])
        )

    observed = pulumi_program.run(program)

    assert [r.vps_id for r in observed.value] == FLEET[:3]
    assert [c.token for c in mocks.calls] == ["hostup:index:getVpsAgentAvailability"] * 3


def test_native_coalescing_keeps_each_provider_to_its_own_invoke(
    pulumi_program: PulumiProgram,
) -> None:
    mocks = FleetMocks()
    pulumi_program.start(mocks)

    def program() -> object:
        acme = hostup.Provider("acme", api_key="hsk_acme", base_url="http://127.0.0.1:9")
        beta = hostup.Provider("beta", api_key="hsk_beta", base_url="http://127.0.0.1:9")
        on_acme = pulumi.InvokeOptions(provider=acme)
        on_beta = pulumi.InvokeOptions(provider=beta)
        return pulumi.Output.all(
            *(native.get_vps_agent_availability_output(v, on_acme) for v in FLEET[:2]),
            *(native.get_vps_agent_availability_output(v, on_beta) for v in FLEET[2:]),
        )

    observed = pulumi_program.run(program)

    assert [r.vps_id for r in observed.value] == FLEET
    by_provider = {c.provider.split("::")[-2]: c.args["vpsIds"] for c in mocks.calls}
    assert by_provider == {"acme": FLEET[:2], "beta": FLEET[2:]}


def test_get_availabilities_probes_each_vps_in_order(
    configured: HostupSimulator, pulumi_program: PulumiProgram
) -> None:
    ids = [configured.add_vps(name=f"n{i}") for i in range(3)]
    configured.set_agent(ids[1], available=False, reason="guest agent not responding")

    plain = pulumi_program.run(lambda: _fields(hostup.get_vps_agent_availabilities(ids)))
    output = pulumi_program.run(
        lambda: hostup.get_vps_agent_availabilities_output(ids).apply(_fields)
    )

    for observed in (plain, output):
        assert [(vps_id, available) for _, vps_id, available, _ in observed.value] == [
            (ids[0], True), (ids[1], False), (ids[2], True),
        ]  # fmt: skip
        assert observed.value[1][3] == "guest agent not responding"
    assert len(probe_paths(configured)) == 6


def test_get_availabilities_checks_every_id_before_any_request(
    configured: HostupSimulator, pulumi_program: PulumiProgram
) -> None:
    good = configured.add_vps(name="good")

    with pytest.raises(hostup.ValidationError, match=r"vps_id '10\.0\.0\.7' is an IP address"):
        pulumi_program.run(lambda: hostup.get_vps_agent_availabilities([good, "10.0.0.7"]))
    with pytest.raises(hostup.ValidationError, match="at most 1000 per call"):
        pulumi_program.run(lambda: hostup.get_vps_agent_availabilities([good] * 1001))

    assert configured.requests == []


@pytest.mark.parametrize(
    "call", [native.get_vps_agent_availabilities, native.get_vps_agent_availabilities_output]
)
def test_native_get_availabilities_is_one_invoke_with_results_in_order(
    call: Callable[..., object], pulumi_program: PulumiProgram
) -> None:
    mocks = FleetMocks()
    pulumi_program.start(mocks)

    observed = pulumi_program.run(
        lambda: pulumi.Output.from_input(call(FLEET[::-1])).apply(_fields)
    )

    assert [vps_id for _, vps_id, _, _ in observed.value] == FLEET[::-1]
    assert {cls for cls, _, _, _ in observed.value} == {hostup.GetVpsAgentAvailabilityResult}
    [invoke] = mocks.calls
    assert (invoke.token, invoke.args) == (
        "hostup:index:getVpsAgentAvailabilities",
        {"vpsIds": FLEET[::-1]},
    )


def test_get_availabilities_output_fails_with_the_failing_vpss_error(
    configured: HostupSimulator, pulumi_program: PulumiProgram
) -> None:
    known = configured.add_vps(name="known")
    missing = "vps_01nosuchvps000000000000"

    with pytest.raises(hostup.NotFoundError) as caught:
        pulumi_program.run(lambda: hostup.get_vps_agent_availabilities_output([known, missing]))

    assert missing in str(caught.value)
    assert isinstance(caught.value, pulumi.RunError)  # one line in a failing program

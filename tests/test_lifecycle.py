"""The resource rules of hostup_pulumi.lifecycle, run through both hosts: the dynamic providers
(as the dynamic-provider process calls them) and the native plugin's Provider (as its gRPC
server calls it, PropertyValues and camelCase names included), against the simulator. Each
case runs through both adapters and must give the same answer."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import pulumi.dynamic as dyn
import pytest
from pulumi.provider.experimental import provider as exp
from pulumi.provider.experimental.property_value import PropertyValue
from pulumi.runtime import rpc
from pydantic.alias_generators import to_camel, to_snake

from hostup_pulumi.lifecycle import DEFAULT_RESULT_TIMEOUT, UNKNOWN
from hostup_pulumi.provider._experimental import HostupProvider, to_python, to_value
from hostup_pulumi.provider.host import EngineLog, PluginHost
from hostup_pulumi.resources import _AgentCommandProvider, _AgentExecResultProvider
from hostup_pulumi.testing import HostupSimulator

COMMAND = "hostup:index:AgentCommand"
RESULT = "hostup:index:AgentExecResult"


def urn(token: str, name: str = "res") -> str:
    return f"urn:pulumi:stack::project::{token}::{name}"


class Dynamic:
    """The dynamic host, called as the dynamic-provider process calls it."""

    name = "dynamic"

    def __init__(self, sim: HostupSimulator, capsys: pytest.CaptureFixture[str]) -> None:
        config = {"hostup:apiKey": sim.api_key, "hostup:baseUrl": sim.base_url}
        self._capsys = capsys
        self._providers: dict[str, Any] = {}
        for token, cls in ((COMMAND, _AgentCommandProvider), (RESULT, _AgentExecResultProvider)):
            provider = cls()
            provider.configure(dyn.ConfigureRequest(dyn.Config(config, "project")))
            self._providers[token] = provider

    def check(self, token: str, news: dict[str, Any]) -> tuple[dict[str, Any], list[Any]]:
        result = self._providers[token].check({}, news)
        return result.inputs, [(f.property, f.reason) for f in result.failures]

    def diff(self, token: str, olds: dict[str, Any], news: dict[str, Any]) -> tuple[Any, ...]:
        result = self._providers[token].diff("id", olds, news)
        return result.changes, sorted(result.replaces)

    def create(self, token: str, props: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        result = self._providers[token].create(props)
        return result.id, result.outs

    def read(
        self, token: str, id_: str, props: dict[str, Any]
    ) -> tuple[str | None, dict[str, Any]]:
        result = self._providers[token].read(id_, props)
        return result.id, result.outs

    def update(self, token: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        return dict(self._providers[token].update("id", olds, news).outs)

    def warnings(self) -> list[str]:
        return [
            line.removeprefix("hostup: warning: ")
            for line in self._capsys.readouterr().err.splitlines()
            if line.startswith("hostup: warning: ")
        ]

    def secret(self, token: str, name: str) -> bool:
        return name in {"stdout", "stderr", "extra_fields"}  # additional_secret_outputs


class RecordingLog(EngineLog):
    def __init__(self) -> None:
        self.statuses: list[tuple[str, str]] = []
        self.infos: list[tuple[str, str]] = []
        self.warned: list[str] = []

    def status(self, urn: str, message: str) -> None:
        self.statuses.append((urn, message))

    def info(self, urn: str, message: str) -> None:
        self.infos.append((urn, message))

    def warning(self, urn: str, message: str) -> None:
        self.warned.append(message)


class Native:
    """The native plugin's Provider, called as its gRPC server calls it (one event loop)."""

    name = "native"

    def __init__(self, sim: HostupSimulator, **config: Any) -> None:
        self.log = RecordingLog()
        self.provider = HostupProvider(PluginHost(self.log))
        self.loop = asyncio.new_event_loop()
        self._secret: dict[str, set[str]] = {}
        args = {"apiKey": sim.api_key, "baseUrl": sim.base_url, **config}
        self.run(self.provider.configure(exp.ConfigureRequest({}, pv(args), True, False)))

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def close(self) -> None:
        self.loop.close()

    def check(self, token: str, news: dict[str, Any]) -> tuple[dict[str, Any], list[Any]]:
        response = self.run(self.provider.check(exp.CheckRequest(urn(token), {}, pv(news), b"")))
        failures = [(to_snake(f.property), f.reason) for f in response.failures]
        return plain(response.inputs), failures

    def diff(self, token: str, olds: dict[str, Any], news: dict[str, Any]) -> tuple[Any, ...]:
        request = exp.DiffRequest(urn(token), "id", pv(olds), pv(news), [])
        response = self.run(self.provider.diff(request))
        return response.changes, sorted(to_snake(name) for name in response.replaces)

    def create(self, token: str, props: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        response = self.run(
            self.provider.create(exp.CreateRequest(urn(token), pv(props), 0, False))
        )
        self._secret[token] = {to_snake(k) for k, v in response.properties.items() if v.is_secret}
        return response.resource_id, plain(response.properties)

    def read(
        self, token: str, id_: str, props: dict[str, Any]
    ) -> tuple[str | None, dict[str, Any]]:
        request = exp.ReadRequest(urn(token), id_, pv(props), {})
        response = self.run(self.provider.read(request))
        return response.resource_id, plain(response.properties)

    def update(self, token: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        request = exp.UpdateRequest(urn(token), "id", pv(olds), pv(news), 0, [], False)
        return plain(self.run(self.provider.update(request)).properties)

    def warnings(self) -> list[str]:
        warned, self.log.warned = self.log.warned, []
        return warned

    def secret(self, token: str, name: str) -> bool:
        return name in self._secret[token]


def pv(values: dict[str, Any]) -> dict[str, PropertyValue]:
    """snake_case plain values as the engine sends them to the plugin."""
    return {to_camel(k): to_value(v) for k, v in values.items() if v is not None}


def plain(values: dict[str, PropertyValue]) -> dict[str, Any]:
    return {to_snake(k): to_python(v) for k, v in values.items()}


@pytest.fixture
def sim(hostup_simulator: HostupSimulator) -> HostupSimulator:
    hostup_simulator.add_vps(name="web", vps_id="vps_01jlifecycle0web0000000001")
    return hostup_simulator


WEB = "vps_01jlifecycle0web0000000001"


@pytest.fixture(params=["dynamic", "native"])
def host(
    request: pytest.FixtureRequest, sim: HostupSimulator, capsys: pytest.CaptureFixture[str]
) -> Iterator[Any]:
    if request.param == "dynamic":
        yield Dynamic(sim, capsys)
        return
    native = Native(sim)
    yield native
    native.close()


def start(host: Any, command: str = "uname -a") -> tuple[str, dict[str, Any]]:
    inputs, failures = host.check(COMMAND, {"vps_id": WEB, "command": command})
    assert failures == []
    return host.create(COMMAND, inputs)


def result_inputs(host: Any, cmd: dict[str, Any], **extra: Any) -> dict[str, Any]:
    news = {"vps_id": cmd["vps_id"], "pid": float(cmd["pid"]), "run_id": cmd["run_id"], **extra}
    inputs, failures = host.check(RESULT, news)
    assert failures == []
    return inputs


# -- check ----------------------------------------------------------------------------------


def test_check_refuses_an_ip_address_with_the_same_message(host: Any) -> None:
    _, failures = host.check(COMMAND, {"vps_id": "192.0.2.10", "command": "true"})
    [(prop, reason)] = failures
    assert prop == "vps_id"
    assert "is an IP address, not a VPS id" in reason
    assert "--primary-ip 192.0.2.10" in reason


def test_check_reports_missing_inputs_and_fills_defaults(host: Any) -> None:
    inputs, failures = host.check(RESULT, {"vps_id": WEB})
    assert failures == [("pid", "pid is required")]
    inputs, failures = host.check(RESULT, {"vps_id": WEB, "pid": 4242.0})
    assert failures == []
    assert inputs["timeout"] == DEFAULT_RESULT_TIMEOUT
    assert inputs["fail_on_nonzero_exit"] is False


def test_check_passes_unknown_inputs_through(host: Any) -> None:
    inputs, failures = host.check(RESULT, {"vps_id": WEB, "pid": rpc.UNKNOWN})
    assert failures == []
    # As each host's engine encoding has it: the sentinel string, or the lifecycle's UNKNOWN.
    assert inputs["pid"] == rpc.UNKNOWN or inputs["pid"] is UNKNOWN


# -- diff -----------------------------------------------------------------------------------

STATE = {"vps_id": WEB, "pid": 4242.0, "run_id": "r1", "timeout": 300.0,
         "fail_on_nonzero_exit": False, "exited": True, "exit_code": 0.0}  # fmt: skip


@pytest.mark.parametrize(
    ("news", "expected"),
    [
        ({}, (False, [])),
        ({"pid": 4243.0}, (True, ["pid"])),
        ({"run_id": "r2"}, (True, ["run_id"])),  # a re-run with the same pid
        ({"pid": rpc.UNKNOWN}, (True, ["pid"])),
        ({"timeout": 60.0}, (True, [])),
        ({"fail_on_nonzero_exit": True}, (True, [])),
    ],
)
def test_result_diff_rules(host: Any, news: dict[str, Any], expected: tuple[Any, ...]) -> None:
    inputs = {k: STATE[k] for k in ("vps_id", "pid", "run_id", "timeout", "fail_on_nonzero_exit")}
    assert host.diff(RESULT, STATE, {**inputs, **news}) == expected


def test_an_imported_result_adopts_a_run_id_without_replacement(host: Any) -> None:
    imported = {**STATE, "run_id": None}
    news = {"vps_id": WEB, "pid": 4242.0, "run_id": "r9", "timeout": 300.0,
            "fail_on_nonzero_exit": False}  # fmt: skip
    assert host.diff(RESULT, imported, news) == (True, [])


@pytest.mark.parametrize("change", [{"command": "hostname"}, {"triggers": ["v2"]}])
def test_command_changes_replace(host: Any, change: dict[str, Any]) -> None:
    olds = {"vps_id": WEB, "command": "uname -a", "triggers": ["v1"], "pid": 7.0, "run_id": "r"}
    news = {"vps_id": WEB, "command": "uname -a", "triggers": ["v1"], **change}
    assert host.diff(COMMAND, olds, news) == (True, sorted(change))


# -- create, read, update -------------------------------------------------------------------


def test_create_command_then_result(host: Any, sim: HostupSimulator) -> None:
    sim.script_command("echo hi", stdout="hi\n")
    cmd_id, cmd = start(host, "echo hi")
    assert cmd_id == f"{WEB}/{int(cmd['pid'])}"
    assert len(cmd["run_id"]) == 16
    res_id, res = host.create(RESULT, result_inputs(host, cmd))
    assert res_id == cmd_id
    assert (res["exited"], res["exit_code"], res["stdout"]) == (True, 0, "hi\n")
    assert res["run_id"] == cmd["run_id"]
    assert host.secret(RESULT, "stdout")
    assert [r.route for r in sim.requests][:2] == ["probe", "exec_start"]


def test_each_start_gets_its_own_run_id(host: Any) -> None:
    _, first = start(host)
    _, second = start(host)
    assert first["run_id"] != second["run_id"]


def test_refresh_keeps_a_finished_result_when_the_pid_is_reused(
    host: Any, sim: HostupSimulator
) -> None:
    sim.script_command("echo first", stdout="FIRST\n")
    sim.script_command("echo other", stdout="OTHER\n", exit_code=3)
    _, cmd = start(host, "echo first")
    res_id, res = host.create(RESULT, result_inputs(host, cmd))
    host.warnings()
    sim.set_next_pid(int(cmd["pid"]), vps_id=WEB)
    _, other = start(host, "echo other")
    assert other["pid"] == cmd["pid"]
    time.sleep(0.1)

    read_id, refreshed = host.read(RESULT, res_id, res)

    assert read_id == res_id
    assert (refreshed["stdout"], refreshed["exit_code"]) == ("FIRST\n", 0)
    assert host.warnings() == [
        f"HostUp now reports other output for pid {int(cmd['pid'])} on {WEB} than the finished "
        "command recorded in the state (the pid may have been reused by another command); "
        "keeping the recorded result"
    ]


def test_refresh_of_an_unchanged_result_warns_nothing(host: Any) -> None:
    _, cmd = start(host)
    res_id, res = host.create(RESULT, result_inputs(host, cmd))
    read_id, refreshed = host.read(RESULT, res_id, res)
    assert read_id == res_id
    assert set_values(refreshed) == set_values(res)
    assert host.warnings() == []


def set_values(values: dict[str, Any]) -> dict[str, Any]:
    # The engine drops null properties on the way to the plugin.
    return {k: v for k, v in values.items() if v is not None}


def test_import_adopts_the_output_of_a_pid(host: Any, sim: HostupSimulator) -> None:
    sim.script_command("hostname", stdout="IMPORTED\n")
    _, cmd = start(host, "hostname")
    pid = int(cmd["pid"])
    time.sleep(0.05)

    read_id, outputs = host.read(RESULT, f"{WEB}/{pid}", {})
    assert read_id == f"{WEB}/{pid}"
    assert (outputs["stdout"], outputs["exited"], outputs["run_id"]) == ("IMPORTED\n", True, None)

    read_id, outputs = host.read(COMMAND, f"{WEB}/{pid}", {})
    assert read_id == f"{WEB}/{pid}"
    assert (outputs["pid"], outputs["command"]) == (pid, None)
    assert host.read(RESULT, f"{WEB}/999999", {})[0] in (None, "")


def test_update_applies_fail_on_nonzero_exit_to_the_recorded_exit(
    host: Any, sim: HostupSimulator
) -> None:
    sim.script_command("false", exit_code=1)
    _, cmd = start(host, "false")
    _, res = host.create(RESULT, result_inputs(host, cmd))
    before = sim.count()
    assert host.update(RESULT, res, {**result_inputs(host, cmd), "timeout": 60.0})["timeout"] == 60
    with pytest.raises(Exception, match=r"exited with code 1") as caught:
        host.update(RESULT, res, {**result_inputs(host, cmd), "fail_on_nonzero_exit": True})
    assert "Traceback" not in str(caught.value)
    assert sim.count() == before  # an update sends nothing


# -- the native host only: cancel, errors, progress, config ---------------------------------


@pytest.fixture
def native(sim: HostupSimulator) -> Iterator[Native]:
    host = Native(sim)
    yield host
    host.close()


def test_cancel_ends_a_wait_within_two_seconds(native: Native, sim: HostupSimulator) -> None:
    sim.script_command("sleep 30", duration=30)
    _, cmd = start(native, "sleep 30")
    request = exp.CreateRequest(urn(RESULT), pv(result_inputs(native, cmd)), 0, False)

    async def cancel_soon() -> None:
        await asyncio.sleep(0.5)
        await native.provider.cancel()

    async def both() -> BaseException | None:
        results = await asyncio.gather(
            native.provider.create(request), cancel_soon(), return_exceptions=True
        )
        return results[0] if isinstance(results[0], BaseException) else None

    began = time.monotonic()
    error = native.run(both())
    assert time.monotonic() - began < 2.5
    assert str(error) == (
        "creating res was cancelled (Ctrl-C) and nothing was recorded; a started command "
        "keeps running on the VPS: run `pulumi up` again to wait for it"
    )


def test_cancel_with_nothing_in_flight_is_harmless(native: Native) -> None:
    native.run(native.provider.cancel())
    _, cmd = start(native)
    assert native.create(RESULT, result_inputs(native, cmd))[1]["exited"] is True


def test_an_error_is_one_line_for_the_user(sim: HostupSimulator) -> None:
    host = Native(sim, apiKey="hsk_test_not_a_known_key_0000")
    try:
        with pytest.raises(Exception, match="HTTP 401") as caught:
            start(host)
        assert "\n" not in str(caught.value)
    finally:
        host.close()


def test_check_config_names_the_bad_property(native: Native) -> None:
    request = exp.CheckRequest("urn", {}, pv({"base_url": "ftp://x", "max_retries": 99}), b"")
    response = native.run(native.provider.check_config(request))
    assert [f.property for f in response.failures] == ["baseUrl", "maxRetries"]
    assert "not an http(s) URL" in response.failures[0].reason
    assert "between 0 and 10" in response.failures[1].reason


def test_a_long_wait_reports_progress(
    native: Native, sim: HostupSimulator, monkeypatch: Any
) -> None:
    monkeypatch.setattr("hostup_pulumi.lifecycle.agent_exec_result.PROGRESS_EVERY", 0.3)
    sim.script_command("sleep 1", duration=1.0)
    _, cmd = start(native, "sleep 1")
    native.create(RESULT, result_inputs(native, cmd))
    pid = int(cmd["pid"])
    waits = [entry for entry in native.log.statuses if entry[0] == urn(RESULT)]
    assert waits
    assert waits[0] == (urn(RESULT), f"waiting for pid {pid} on {WEB}: 0 s of 300 s")


def test_a_start_says_its_pid_once_in_one_short_line(native: Native) -> None:
    _, cmd = start(native)
    pid = int(cmd["pid"])
    # A status line (the progress view shows it once), not a diagnostic shown again at the end.
    assert native.log.statuses == [(urn(COMMAND), (
        f"started pid {pid} on {WEB} (if this run is killed before it records the command: "
        "docs/reliability.md)"
    ))]  # fmt: skip
    assert native.log.infos == []


def test_invoke_returns_failures_not_errors(native: Native, sim: HostupSimulator) -> None:
    stopped = sim.add_vps(name="old", power_state="stopped")
    request = exp.InvokeRequest("hostup:index:requireAgentAvailable", pv({"vps_id": stopped}))
    response = native.run(native.provider.invoke(request))
    assert response.return_value is None
    [failure] = response.failures
    assert failure.property == "vpsId"
    assert failure.reason.startswith(
        f"QEMU guest agent command execution is not available on {stopped}"
    )
    ok = native.run(native.provider.invoke(exp.InvokeRequest(
        "hostup:index:getVpsAgentAvailability", pv({"vps_id": WEB})
    )))  # fmt: skip
    assert plain(ok.return_value) == {"vps_id": WEB, "available": True, "reason": None,
                                      "vm_running": True}  # fmt: skip


def test_the_plugin_probes_a_list_in_one_invoke(native: Native, sim: HostupSimulator) -> None:
    stopped = sim.add_vps(name="old", power_state="stopped")
    ids = [WEB, stopped, WEB]

    ok = native.run(native.provider.invoke(exp.InvokeRequest(
        "hostup:index:getVpsAgentAvailabilities", pv({"vps_ids": ids})
    )))  # fmt: skip

    items = plain(ok.return_value)["availabilities"]
    # Nested objects carry the schema's names, in the order asked.
    assert [item["vpsId"] for item in items] == ids
    assert [item["available"] for item in items] == [True, False, True]
    assert items[1]["vmRunning"] is False
    assert items[1]["reason"]
    assert sim.count("probe") == 3


def test_the_plugin_starts_without_a_second_probe_after_the_programs_own(
    native: Native, sim: HostupSimulator
) -> None:
    # A program that exports (or gates on) availability probed each VPS up front; the
    # plugin's create of a command on it starts at once, with no probe of its own.
    native.run(native.provider.invoke(exp.InvokeRequest(
        "hostup:index:getVpsAgentAvailabilities", pv({"vps_ids": [WEB]})
    )))  # fmt: skip
    start(native)
    start(native)
    assert [r.route for r in sim.requests] == ["probe", "exec_start", "exec_start"]


def test_a_create_probes_again_when_the_last_answer_was_unavailable(
    native: Native, sim: HostupSimulator
) -> None:
    sim.set_agent(WEB, available=False, reason="agent not responding")
    native.run(native.provider.invoke(exp.InvokeRequest(
        "hostup:index:getVpsAgentAvailability", pv({"vps_id": WEB})
    )))  # fmt: skip
    sim.set_agent(WEB, available=True)
    start(native)
    assert [r.route for r in sim.requests] == ["probe", "probe", "exec_start"]


@pytest.mark.parametrize(
    ("vps_ids", "reason"),
    [
        ("vps_01jlifecycle0web0000000001", "vps_ids must be a list of VPS ids, not str"),
        (["vps_01jlifecycle0web0000000001", "web"], "vps_id 'web' does not start with `vps_`"),
        (["vps_01jlifecycle0web0000000001"] * 1001, "at most 1000 per call: split the list"),
    ],
)
def test_the_plugin_refuses_a_bad_list_before_any_request(
    native: Native, sim: HostupSimulator, vps_ids: Any, reason: str
) -> None:
    response = native.run(native.provider.invoke(exp.InvokeRequest(
        "hostup:index:getVpsAgentAvailabilities", pv({"vps_ids": vps_ids})
    )))  # fmt: skip
    [failure] = response.failures
    assert failure.property == "vpsIds"
    assert reason in failure.reason
    assert sim.count("probe") == 0


def test_the_two_hosts_agree_on_threads(sim: HostupSimulator, capsys: Any) -> None:
    # The dynamic host runs the async lifecycle on one loop for all its worker threads.
    host = Dynamic(sim, capsys)
    results: list[Any] = []
    threads = [threading.Thread(target=lambda: results.append(start(host))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({r[1]["pid"] for r in results}) == 4


def test_run_time_code_never_imports_the_test_tooling() -> None:
    # The client, the Pulumi surface, the lifecycle and the plugin load without testing/.
    import subprocess
    import sys

    code = (
        "import sys, hostup_pulumi, hostup_pulumi.native, hostup_pulumi.resources, "
        "hostup_pulumi.provider._experimental, hostup_pulumi.lifecycle, hostup_pulumi.cli; "
        "print(sorted(m for m in sys.modules if m.startswith('hostup_pulumi.testing')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

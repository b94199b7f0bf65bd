"""Wire models (models.py): the documented examples parse; unknown data is tolerated."""

from __future__ import annotations

import pydantic
import pytest

from hostup_pulumi import AgentAvailability, AgentExecOutput, AgentExecStarted, Vps
from hostup_pulumi.models import VpsPage

# The example documented for GET /api/v2/vps/{id}.
VPS_EXAMPLE = {
    "id": "vps_01hxa3b4c5d6e7f8g9h0j1k2m3",
    "name": "app-01",
    "primaryIp": "192.0.2.10",
    "serviceStatus": "active",
    "powerState": "running",
    "operatingSystem": {
        "displayName": "Ubuntu 24.04",
        "family": "ubuntu",
        "version": "24.04",
        "variant": None,
    },
    "billing": {
        "amount": 199,
        "currencyCode": "SEK",
        "billingCycle": "monthly",
        "isPayg": False,
        "periodYears": 1,
    },
    "resources": {"cpuCores": 2, "memoryGb": 4, "storageGb": 80},
}


def test_probe_example_parses() -> None:
    probe = AgentAvailability.model_validate({"available": True, "reason": None, "vmRunning": True})
    assert probe.available is True
    assert probe.reason is None
    assert probe.vm_running is True


def test_probe_unavailable_with_reason_and_unknown_field() -> None:
    probe = AgentAvailability.model_validate(
        {"available": False, "reason": "VM is not running", "vmRunning": False, "since": "x"}
    )
    assert probe.available is False
    assert probe.reason == "VM is not running"
    assert probe.vm_running is False
    assert probe.extras == {"since": "x"}


def test_probe_without_available_is_refused() -> None:
    with pytest.raises(pydantic.ValidationError):
        AgentAvailability.model_validate({"reason": None, "vmRunning": True})


def test_start_example_parses() -> None:
    started = AgentExecStarted.model_validate(
        {"pid": 4242, "pollUrl": "/api/v2/vps/vps_01hxa3b4c5d6e7f8g9h0j1k2m3/agent/exec?pid=4242"}
    )
    assert started.pid == 4242
    assert started.poll_url == "/api/v2/vps/vps_01hxa3b4c5d6e7f8g9h0j1k2m3/agent/exec?pid=4242"


@pytest.mark.parametrize("pid", [0, -1])
def test_start_pid_must_be_positive(pid: int) -> None:
    with pytest.raises(pydantic.ValidationError):
        AgentExecStarted.model_validate({"pid": pid})


@pytest.mark.parametrize("key", ["exitCode", "exitcode", "exit_code"])
def test_output_exit_code_from_camel_case_or_legacy_lowercase(key: str) -> None:
    output = AgentExecOutput.model_validate(
        {"exited": True, key: 3, "stdout": "out\n", "stderr": "err\n"}
    )
    assert output.exited is True
    assert output.exit_code == 3
    assert output.stdout == "out\n"
    assert output.stderr == "err\n"
    # The legacy spelling is understood, not left over as an unknown field.
    assert output.extras == {}


def test_output_missing_exited_means_still_running() -> None:
    output = AgentExecOutput.model_validate({"stdout": "partial"})
    assert output.exited is False
    assert output.exit_code is None
    assert output.stdout == "partial"
    assert output.stderr == ""


def test_output_null_exited_stdout_and_stderr() -> None:
    output = AgentExecOutput.model_validate(
        {"exited": None, "exitCode": None, "stdout": None, "stderr": None}
    )
    assert output.exited is False
    assert output.exit_code is None
    assert output.stdout == ""
    assert output.stderr == ""


def test_output_keeps_unknown_fields_and_known_optional_ones() -> None:
    output = AgentExecOutput.model_validate(
        {
            "exited": True,
            "exitCode": 0,
            "pid": 4242,
            "truncated": True,
            "signal": "SIGKILL",
            "encoding": "utf-8",
            "stdoutBytes": 1234,
        }
    )
    assert output.pid == 4242
    assert output.truncated is True
    assert output.signal == "SIGKILL"
    assert output.extras == {"encoding": "utf-8", "stdoutBytes": 1234}


def test_output_repr_hides_stdout_and_stderr() -> None:
    output = AgentExecOutput.model_validate(
        {"exited": True, "exitCode": 0, "stdout": "TOP-SECRET-OUT", "stderr": "TOP-SECRET-ERR"}
    )
    assert "TOP-SECRET" not in repr(output)
    assert "TOP-SECRET" not in str(output)
    assert "exit_code=0" in repr(output)


@pytest.mark.parametrize(
    "bad", [{"exited": "maybe"}, {"exitCode": 1.5}, {"stdout": ["a"]}, {"exited": [True]}]
)
def test_output_of_the_wrong_shape_is_refused(bad: dict[str, object]) -> None:
    with pytest.raises(pydantic.ValidationError):
        AgentExecOutput.model_validate(bad)


def test_vps_documented_example_parses() -> None:
    vps = Vps.model_validate(VPS_EXAMPLE)
    assert vps.id == "vps_01hxa3b4c5d6e7f8g9h0j1k2m3"
    assert vps.name == "app-01"
    assert vps.primary_ip == "192.0.2.10"
    assert vps.service_status == "active"
    assert vps.power_state == "running"
    assert vps.operating_system is not None
    assert vps.operating_system.display_name == "Ubuntu 24.04"
    assert vps.operating_system.variant is None
    assert vps.billing is not None
    assert (vps.billing.amount, vps.billing.currency_code) == (199, "SEK")
    assert vps.billing.billing_cycle == "monthly"
    assert vps.billing.is_payg is False
    assert vps.billing.period_years == 1
    assert vps.resources is not None
    assert (vps.resources.cpu_cores, vps.resources.memory_gb, vps.resources.storage_gb) == (
        2,
        4,
        80,
    )
    assert vps.extras == {}


def test_vps_accepts_unknown_enum_values_null_power_state_and_extra_fields() -> None:
    vps = Vps.model_validate(
        {
            "id": "vps_abcdef",
            "serviceStatus": "fraud",
            "powerState": None,
            "pinned": True,
            "tags": ["a"],
        }
    )
    assert vps.service_status == "fraud"
    assert vps.power_state is None
    assert vps.extras == {"pinned": True, "tags": ["a"]}
    vps = Vps.model_validate({"id": "vps_abcdef", "powerState": "hibernating"})
    assert vps.power_state == "hibernating"


def test_vps_requires_an_id() -> None:
    with pytest.raises(pydantic.ValidationError):
        Vps.model_validate({"name": "app-01"})


def test_vps_page_envelope() -> None:
    page = VpsPage.model_validate(
        {"data": [VPS_EXAMPLE, {"id": "vps_other1"}], "hasMore": True, "nextCursor": "c2"}
    )
    assert [v.id for v in page.data] == [VPS_EXAMPLE["id"], "vps_other1"]
    assert page.has_more is True
    assert page.next_cursor == "c2"
    last = VpsPage.model_validate({"data": [], "hasMore": False, "nextCursor": None})
    assert (last.has_more, last.next_cursor, last.data) == (False, None, [])


def test_models_are_frozen() -> None:
    probe = AgentAvailability(available=True)
    with pytest.raises(pydantic.ValidationError):
        probe.available = False  # type: ignore[misc]


def test_models_serialise_back_with_wire_names() -> None:
    probe = AgentAvailability.model_validate({"available": True, "reason": None, "vmRunning": True})
    assert probe.model_dump(by_alias=True) == {"available": True, "reason": None, "vmRunning": True}

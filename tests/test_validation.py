"""Local argument checks (_validation.py): bad input is refused with a helpful message."""

from __future__ import annotations

import pytest

from hostup_pulumi import ConfigurationError, HostupError, ValidationError
from hostup_pulumi._validation import (
    MAX_COMMAND_LENGTH,
    MAX_PID,
    validate_command,
    validate_pid,
    validate_seconds,
    validate_vps_id,
)

GOOD_ID = "vps_01hxa3b4c5d6e7f8g9h0j1k2m3"


def test_validation_error_is_a_hostup_error_and_a_value_error() -> None:
    with pytest.raises(ValidationError) as info:
        validate_vps_id("192.0.2.10")
    assert isinstance(info.value, HostupError)
    assert isinstance(info.value, ValueError)


# -- vps_id ----------------------------------------------------------------------------


@pytest.mark.parametrize("vps_id", [GOOD_ID, "vps_abcdef", "vps_" + "A1" * 32, "vps_01JDEMO"])
def test_vps_id_accepts_public_ids(vps_id: str) -> None:
    assert validate_vps_id(vps_id) == vps_id


RULE = (
    "A VPS id is `vps_` followed by letters and digits (it contains `_`), e.g. "
    "vps_01hxa3b4c5d6e7f8g9h0j1k2m3"
)
FIND = (
    "Find it with `hostup-pulumi list-vps --name NAME` (or `--primary-ip IP`), or "
    "client.list_vps(name=...) / client.list_vps(primary_ip=...)"
)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (
            "192.0.2.10",
            f"vps_id '192.0.2.10' is an IP address, not a VPS id. {RULE}. Find it with "
            "`hostup-pulumi list-vps --primary-ip 192.0.2.10` or "
            "client.list_vps(primary_ip='192.0.2.10')",
        ),
        (
            "web-01.example.com",
            f"vps_id 'web-01.example.com' looks like a hostname, not a VPS id. {RULE}. Find it "
            "with `hostup-pulumi list-vps --name web-01` or client.list_vps(name='web-01')",
        ),
        (
            "12345",
            f"vps_id '12345' is a bare number (a legacy numeric VM id?), not a VPS id. {RULE}. "
            f"{FIND}",
        ),
        ("", f"vps_id is empty. {RULE}. {FIND}"),
        ("vps-01hxa3b4c5", f"vps_id 'vps-01hxa3b4c5' does not start with `vps_`. {RULE}. {FIND}"),
        (
            "VPS_01hxa3b4c5",
            f"vps_id 'VPS_01hxa3b4c5' starts with 'VPS_'; the prefix is lowercase `vps_`. "
            f"{RULE}. {FIND}",
        ),
        (
            "vps_web",
            f"vps_id 'vps_web' is too short: a VPS id has 6 to 64 letters and digits after "
            f"`vps_`. {RULE}. {FIND}",
        ),
        (
            "vps_01hx a3",
            f"vps_id 'vps_01hx a3' has characters other than letters and digits after `vps_`. "
            f"{RULE}. {FIND}",
        ),
        (
            "vps_../admin",
            f"vps_id 'vps_../admin' contains path or URL characters. {RULE}. {FIND}",
        ),
    ],
    ids=["ip", "hostname", "number", "empty", "dash", "uppercase", "short", "space", "path"],
)
def test_vps_id_message_states_the_rule_and_how_to_find_the_id(bad: str, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        validate_vps_id(bad)
    assert str(info.value) == message


@pytest.mark.parametrize("ip", ["192.0.2.10", "2001:db8::1", " 198.51.100.7 "])
def test_vps_id_that_is_an_ip_points_to_list_vps_primary_ip(ip: str) -> None:
    with pytest.raises(ValidationError) as info:
        validate_vps_id(ip)
    message = str(info.value)
    assert "IP address" in message
    assert f"list_vps(primary_ip={ip.strip()!r})" in message


def test_vps_id_that_is_a_hostname_points_to_list_vps_name() -> None:
    with pytest.raises(ValidationError) as info:
        validate_vps_id("web-01.example.com")
    message = str(info.value)
    assert "hostname" in message
    assert "list_vps(name='web-01')" in message


def test_vps_id_that_is_a_bare_number_is_called_a_legacy_id() -> None:
    with pytest.raises(ValidationError) as info:
        validate_vps_id("12345")
    message = str(info.value)
    assert "bare number" in message
    assert "list_vps(name=" in message
    assert "vps_" in message


@pytest.mark.parametrize(
    "bad",
    [
        "vps_abc/def",
        "vps_abc\\def",
        "vps_../../etc",
        "vps_abcdef?pid=1",
        "vps_abcdef#frag",
        "vps_abc%2Fdef",
    ],
)
def test_vps_id_with_path_or_url_characters_is_refused(bad: str) -> None:
    with pytest.raises(ValidationError, match="path or URL characters"):
        validate_vps_id(bad)


@pytest.mark.parametrize(
    "bad",
    ["vps_abc def", "vps_ábcdefgh", "vps_abcdef\n", f"{GOOD_ID} ", "vps_abc", "VPS_abcdefgh"],
)
def test_vps_id_with_spaces_non_ascii_or_too_short_is_refused(bad: str) -> None:
    with pytest.raises(ValidationError) as info:
        validate_vps_id(bad)
    # The message shows exactly what was passed (quoted), so a stray space is visible.
    assert repr(bad) in str(info.value)


def test_vps_id_of_thousands_of_characters_gives_a_short_message() -> None:
    with pytest.raises(ValidationError) as info:
        validate_vps_id("vps_" + "a" * 5000)
    message = str(info.value)
    assert message.startswith(
        f"vps_id {'vps_' + 'a' * 53 + '...'!r} is 5004 characters long; a VPS id has 6 to 64 "
        "letters and digits after `vps_`. "
    )
    assert len(message) < 500


@pytest.mark.parametrize("blank", ["", "   "])
def test_vps_id_empty(blank: str) -> None:
    with pytest.raises(ValidationError, match="empty"):
        validate_vps_id(blank)


@pytest.mark.parametrize("bad", [None, 12345, b"vps_abcdef", ["vps_abcdef"]])
def test_vps_id_must_be_a_string(bad: object) -> None:
    with pytest.raises(ValidationError, match="must be a string"):
        validate_vps_id(bad)


# -- pid ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pid", "expected"), [(1, 1), (4242, 4242), (4242.0, 4242), (MAX_PID, MAX_PID)]
)
def test_pid_accepts_positive_whole_numbers(pid: object, expected: int) -> None:
    result = validate_pid(pid)
    assert result == expected
    assert type(result) is int


@pytest.mark.parametrize("pid", [0, -1, -4242, MAX_PID + 1, 10**30])
def test_pid_out_of_range_is_refused(pid: int) -> None:
    with pytest.raises(ValidationError, match="between 1 and"):
        validate_pid(pid)


@pytest.mark.parametrize("pid", [4242.5, float("nan"), float("inf"), -0.5])
def test_pid_float_with_a_fraction_or_not_finite_is_refused(pid: float) -> None:
    with pytest.raises(ValidationError, match="whole number"):
        validate_pid(pid)


@pytest.mark.parametrize("pid", ["4242", True, False, None, [4242], "x" * 10_000])
def test_pid_of_the_wrong_type_is_refused(pid: object) -> None:
    with pytest.raises(ValidationError) as info:
        validate_pid(pid)
    assert "positive whole number" in str(info.value)
    assert len(str(info.value)) <= 200


# -- command --------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["uname -a", "df -h /", "x" * MAX_COMMAND_LENGTH, "echo é✓"])
def test_command_accepted_unchanged(command: str) -> None:
    assert validate_command(command) == command


@pytest.mark.parametrize("command", ["", " ", "\t\n"])
def test_command_empty_or_whitespace_is_refused(command: str) -> None:
    with pytest.raises(ValidationError, match="empty"):
        validate_command(command)


def test_command_over_4096_characters_is_refused() -> None:
    with pytest.raises(ValidationError) as info:
        validate_command("x" * (MAX_COMMAND_LENGTH + 1))
    assert "4097" in str(info.value)
    assert "4096" in str(info.value)


def test_command_with_nul_is_refused() -> None:
    with pytest.raises(ValidationError, match="NUL"):
        validate_command("echo a\x00b")


@pytest.mark.parametrize("command", [None, b"uname -a", ["uname", "-a"], 42])
def test_command_must_be_a_string(command: object) -> None:
    with pytest.raises(ValidationError, match="must be a string"):
        validate_command(command)


# -- seconds ------------------------------------------------------------------------------


def test_one_seconds_validator_for_arguments_and_config_text() -> None:
    assert validate_seconds(2) == 2.0
    assert validate_seconds("2.5", text=True) == 2.5  # a Pulumi config value is text
    with pytest.raises(ValidationError) as info:
        validate_seconds("2.5")
    assert str(info.value) == "timeout must be a number of seconds, not str"
    with pytest.raises(ConfigurationError) as config:
        validate_seconds("soon", text=True, error=ConfigurationError)
    assert str(config.value) == "timeout must be a number of seconds, got 'soon'"
    with pytest.raises(ValidationError) as negative:
        validate_seconds(-1, "wait_timeout")
    assert str(negative.value) == "wait_timeout must be a positive number of seconds, got -1"
    with pytest.raises(ValidationError, match="at most 60 seconds"):
        validate_seconds(61, maximum=60)

"""The advice each place gives (_advice.py), as a user there reads it in the error."""

from __future__ import annotations

import json

import pytest

from hostup_pulumi._advice import Where
from hostup_pulumi._outcomes import error_from_response

PATH = "/api/v2/vps/vps_01hxa3b4c5d6e7f8g9h0j1k2m3/agent/exec"


def _error(status: int, code: str, where: Where, *, bearer_prefix: bool = False) -> str:
    body = json.dumps({"status": status, "code": code, "title": "T"}).encode()
    headers = {"content-type": "application/problem+json"}
    return str(error_from_response(status_code=status, headers=headers, body=body,
                                   method="GET", path=PATH, where=where,
                                   bearer_prefix=bearer_prefix))  # fmt: skip


KEYS = "(keys are created at https://cloud.hostup.se/api-management)"


@pytest.mark.parametrize(
    ("where", "advice"),
    [
        (Where.PROGRAM, "Set the key with `pulumi config set --secret hostup:apiKey <key>` or "
                        f"the HOSTUP_API_KEY environment variable {KEYS}"),
        (Where.PLUGIN, "Set the key with `pulumi config set --secret hostup:apiKey <key>` or "
                       f"the HOSTUP_API_KEY environment variable of `pulumi` {KEYS}"),
        (Where.PROVIDER, "Check the apiKey input of this explicit hostup provider (it does not "
                         f"read the stack's hostup:apiKey) {KEYS}"),
        (Where.CLI, f"Set the HOSTUP_API_KEY environment variable to a valid key {KEYS}"),
    ],
)  # fmt: skip
def test_a_401_names_where_that_place_reads_its_key(where: Where, advice: str) -> None:
    assert _error(401, "unauthorized", where) == (
        f"HTTP 401 unauthorized on GET {PATH}: T. HostUp refused the credentials. {advice}"
    )


def test_a_bearer_prefix_is_named_wherever_it_was_given() -> None:
    for where in Where:
        assert _error(401, "unauthorized", where, bearer_prefix=True).endswith(
            "The key given starts with 'Bearer ': give the key alone (the client adds "
            "'Bearer ' itself)"
        )


@pytest.mark.parametrize(
    ("where", "how"),
    [
        (Where.PROGRAM, "find the id with `hostup-pulumi list-vps` (or `--name NAME`, "
                        "`--primary-ip IP`) or client.list_vps(name=...)"),
        (Where.PLUGIN, "find the id with `hostup-pulumi list-vps` (or `--name NAME`, "
                       "`--primary-ip IP`)"),
        (Where.CLI, "`hostup-pulumi list-vps` lists the VPSes with their ids, names and "
                    "primary IPs"),
    ],
)  # fmt: skip
def test_a_404_vps_not_found_says_how_to_find_the_id(where: Where, how: str) -> None:
    assert _error(404, "vps_not_found", where) == (
        f"HTTP 404 vps_not_found on GET {PATH}: T. No VPS with this id is visible to this "
        f"key: {how}"
    )
    # Another 404 (an unknown pid) is not about the id.
    assert "list-vps" not in _error(404, "not_found", where)

"""The Pulumi Python SDK under test: `make test` runs the tests on both ends of the range
hostup-pulumi declares (HOSTUP_PULUMI_SDK names the one each run is meant to have)."""

from __future__ import annotations

import importlib.metadata
import os

from packaging.requirements import Requirement
from packaging.version import Version


def _declared() -> Requirement:
    requires = importlib.metadata.requires("hostup-pulumi") or []
    return next(r for r in map(Requirement, requires) if r.name == "pulumi" and not r.marker)


def test_the_pulumi_sdk_is_the_one_this_run_means_to_test() -> None:
    installed = importlib.metadata.version("pulumi")
    expected = os.environ.get("HOSTUP_PULUMI_SDK")
    if expected is not None:  # set by `make test` for each end of the range
        assert installed == expected
    assert Version(installed) in _declared().specifier


def test_the_declared_range_lets_a_newer_pulumi_in() -> None:
    # A project on a newer Pulumi SDK can install hostup-pulumi beside it.
    specifier = _declared().specifier
    assert Version("3.260.0") in specifier
    assert Version("3.272.0") in specifier
    assert Version("4.0.0") not in specifier

"""Fleet benchmark: N availability checks in one Pulumi program, against the bound N * L / C.

Starts the simulator in its own process with per-request latency L and N VPSes, then measures:

(a) ours: N ``hostup.get_vps_agent_availability_output(id)`` calls in a Pulumi program run
    under ``pulumi.runtime.set_mocks`` (the code path of a real program, without the engine;
    the stack config comes from ``PULUMI_CONFIG`` as the CLI passes it), timed from the first
    call until every Output has resolved;
(b) the naive baseline: a sequential loop of fresh ``httpx.get`` calls (a new connection each);
(c) the bound N * L / C, for the client's concurrency limit C.

Requests, statuses and TCP connections are counted by the simulator. With ``--rate-limit R``
the simulator answers 429 beyond R requests/s (bursts of ``--burst``); the bound is then N / R
and the baseline is skipped.

Usage::

    python bench/fleet.py                                   # no rate limit
    python bench/fleet.py --rate-limit 100 --burst 20       # rate-limited run

The last line is machine-readable (``fleet:`` or ``fleet-limited:``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

import httpx
import pulumi
from _common import SimulatorProcess, Stats, simulator, watchdog

import hostup_pulumi as hostup
from hostup_pulumi.settings import Settings

# Ratio targets from the issue.
TARGET_RATIO = 1.5
TARGET_SPEEDUP = 10.0
TARGET_LIMITED_RATIO = 1.3


class _Mocks(pulumi.runtime.Mocks):
    """No other resources: the program only calls the data function."""

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        return f"{args.name}-id", dict(args.inputs)

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], None]:
        return {}, None


def run_program(sim: SimulatorProcess, ids: Sequence[str]) -> tuple[float, list[Any]]:
    """Run N ``_output`` calls in a mocked Pulumi program; return (seconds, results)."""
    config = {"hostup:apiKey": sim.api_key, "hostup:baseUrl": sim.base_url}
    os.environ["PULUMI_CONFIG"] = json.dumps(config)
    pulumi.runtime.set_mocks(_Mocks(), preview=False)
    results: list[Any] = []
    timing: dict[str, float] = {}

    @pulumi.runtime.test  # type: ignore[untyped-decorator]  # pulumi ships it untyped
    def program() -> pulumi.Output[list[Any]]:
        timing["start"] = time.perf_counter()
        outputs = [hostup.get_vps_agent_availability_output(vps_id) for vps_id in ids]
        return pulumi.Output.all(*outputs).apply(results.extend)  # type: ignore[arg-type]

    program()
    return time.perf_counter() - timing["start"], results


def run_baseline(sim: SimulatorProcess, ids: Sequence[str]) -> float:
    """A sequential loop of fresh ``httpx.get`` calls; return seconds."""
    headers = {"Authorization": f"Bearer {sim.api_key}", "Accept": "application/json"}
    started = time.perf_counter()
    for vps_id in ids:
        response = httpx.get(
            f"{sim.base_url}/api/v2/vps/{vps_id}/agent/exec", headers=headers, trust_env=False
        )
        response.raise_for_status()
    return time.perf_counter() - started


def list_ids(sim: SimulatorProcess) -> list[str]:
    """Every VPS id the simulator serves (a few paged requests, before any measurement)."""
    with hostup.HostupClient(sim.api_key, base_url=sim.base_url) as client:
        return [vps.id for vps in client.list_vps()]


def describe(stats: Stats) -> str:
    statuses = ", ".join(f"{k}: {v}" for k, v in sorted(stats.by_status.items()))
    return f"{stats.requests} requests ({statuses}), {stats.connections} TCP connections"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; return 0 when every target is met, else 1."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="VPSes to check (N)")
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per request (L)")
    parser.add_argument("--rate-limit", type=float, default=None, help="server requests/s (R)")
    parser.add_argument("--burst", type=int, default=20, help="server burst with --rate-limit")
    parser.add_argument("--skip-baseline", action="store_true", help="skip the slow baseline")
    parser.add_argument("--max-seconds", type=float, default=900, help="give up after this")
    args = parser.parse_args(argv)
    watchdog(args.max_seconds)

    sim_args = ["--latency", str(args.latency), "--vps-count", str(args.n)]
    if args.rate_limit is not None:
        sim_args += ["--rate-limit", str(args.rate_limit), "--burst", str(args.burst)]
    concurrency = Settings.resolve(api_key="unused", env=os.environ).max_concurrency
    limited = args.rate_limit is not None

    with simulator(sim_args) as sim:
        ids = list_ids(sim)
        assert len(ids) == args.n, f"expected {args.n} VPSes, listed {len(ids)}"

        before = sim.stats()
        ours, results = run_program(sim, ids)
        ours_stats = sim.stats() - before
        available = sum(1 for r in results if r.available)
        assert available == args.n, f"only {available} of {args.n} checks succeeded"

        baseline: float | None = None
        if not limited and not args.skip_baseline:
            before = sim.stats()
            baseline = run_baseline(sim, ids)
            baseline_stats = sim.stats() - before

    n, latency = args.n, args.latency
    print(f"simulator: latency {latency * 1000:g} ms, {n} VPSes", end="")
    print(f", rate limit {args.rate_limit:g}/s burst {args.burst}" if limited else "")
    print(f"ours:     {ours:7.2f} s  {n} get_vps_agent_availability_output calls in one "
          f"program, concurrency {concurrency}: {describe(ours_stats)}")  # fmt: skip

    if limited:
        bound = n / args.rate_limit
        ratio = ours / bound
        too_many = ours_stats.status(429)
        budget = n + too_many
        print(f"bound:    {bound:7.2f} s  N / R")
        print(f"ratio:    {ratio:7.2f}    (target <= {TARGET_LIMITED_RATIO})")
        print(f"requests: {ours_stats.requests} <= N + 429s = {budget}: "
              f"{ours_stats.requests <= budget}")  # fmt: skip
        ok = ratio <= TARGET_LIMITED_RATIO and ours_stats.requests <= budget
        print(f"fleet-limited: N={n} R={args.rate_limit:g} burst={args.burst} ours={ours:.2f} "
              f"bound={bound:.2f} ratio={ratio:.2f} requests={ours_stats.requests} "
              f"429s={too_many} connections={ours_stats.connections}")  # fmt: skip
        return 0 if ok else 1

    bound = n * latency / concurrency
    ratio = ours / bound
    print(f"bound:    {bound:7.2f} s  N * L / C = {n} * {latency:g} / {concurrency}")
    print(f"ratio:    {ratio:7.2f}    (target <= {TARGET_RATIO})")
    ok = ratio <= TARGET_RATIO and ours_stats.connections <= concurrency
    speedup_text = "n/a"
    if baseline is not None:
        speedup = baseline / ours
        speedup_text = f"{speedup:.1f}"
        print(f"baseline: {baseline:7.2f} s  sequential fresh httpx.get, all {n}: "
              f"{describe(baseline_stats)}")  # fmt: skip
        print(f"speedup:  {speedup:7.1f}x   (target >= {TARGET_SPEEDUP:g})")
        ok = ok and speedup >= TARGET_SPEEDUP
    print(f"connections: {ours_stats.connections} (target <= C = {concurrency})")
    baseline_text = "n/a" if baseline is None else f"{baseline:.2f}"
    print(f"fleet: N={n} ours={ours:.2f} bound={bound:.2f} ratio={ratio:.2f} "
          f"baseline={baseline_text} speedup={speedup_text} "
          f"connections={ours_stats.connections}")  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

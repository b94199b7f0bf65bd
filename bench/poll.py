"""Polling benchmark: ``wait_for_agent_exec`` on commands lasting 1, 5 and 20 seconds.

Starts the simulator in its own process (per-request latency L, default 50 ms), starts
``sleep D`` on a VPS through ``HostupClient.start_agent_exec`` and waits for it with
``wait_for_agent_exec`` (the production poll schedule), one command after the other. For
each command it reports the polls the simulator received (``GET ...agent/exec?pid=``) and
the lag between the command's exit and the moment the client returned.

The lag is an upper bound: the command started on the server no earlier than L after the
start request was sent, so it exited no earlier than ``sent + L + D``.

Targets: lag <= 0.1 * D + 0.5 s for each command; on average at most 1 poll per second of
command time, averaged as total polls / total command seconds over the three commands
(the per-command rate is shown too).

A second table replays the same schedule on a fake clock (no server, no sleeping) for
commands of every length from 0.1 s to 120 s, to show the worst lag and poll rate at
any length, not only at the three measured.

Usage: ``python bench/poll.py``. The last line is machine-readable (``poll:``).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import httpx
from _common import SimulatorProcess, simulator, watchdog

from hostup_pulumi import HostupClient, Settings
from hostup_pulumi._core import EXEC_POLL, Core, PollSchedule, Sleep

VPS_ID = "vps_01benchpo11000000000000000"


@dataclass(frozen=True)
class Run:
    """One measured command."""

    duration: float
    polls: int
    starts: int
    lag: float

    @property
    def lag_target(self) -> float:
        return 0.1 * self.duration + 0.5

    @property
    def rate(self) -> float:
        return self.polls / self.duration


def measure(sim: SimulatorProcess, vps_id: str, duration: float, latency: float) -> Run:
    """Start ``sleep duration`` and wait for it; return what it cost."""
    with HostupClient(sim.api_key, base_url=sim.base_url) as client:
        before = sim.stats()
        sent = time.perf_counter()
        started = client.start_agent_exec(vps_id, f"sleep {duration:g}")
        output = client.wait_for_agent_exec(vps_id, started.pid, timeout=duration + 60)
        detected = time.perf_counter()
        spent = sim.stats() - before
    if not output.exited or output.exit_code != 0:
        raise RuntimeError(f"sleep {duration:g} ended unexpectedly: {output!r}")
    lag = detected - (sent + latency + duration)
    polls, starts = spent.by_route.get("exec_output", 0), spent.by_route.get("exec_start", 0)
    return Run(duration, polls, starts, lag)


def replay(schedule: PollSchedule, duration: float, latency: float) -> tuple[int, float]:
    """The schedule on a fake clock: (polls, lag) for a command exiting ``duration`` s after
    the wait began, each request taking ``latency`` s (answered as the server saw it then)."""
    clock = [0.0]
    settings = Settings.resolve(api_key="bench", base_url="http://127.0.0.1:9", env={})
    epoch = datetime(2026, 1, 1, tzinfo=timezone.utc)
    core = Core(settings, clock=lambda: clock[0], now=lambda: epoch + timedelta(seconds=clock[0]))
    flow = core.wait_for_exec(VPS_ID, 1, timeout=duration * 2 + 60, schedule=schedule)
    polls, outcome = 0, None
    try:
        while True:
            step = flow.send(outcome)
            if isinstance(step, Sleep):
                clock[0] += step.seconds
                outcome = None
                continue
            polls += 1
            clock[0] += latency  # the server answers as of its state then
            exited = clock[0] >= duration
            outcome = httpx.Response(
                200, json={"exited": exited, "exitCode": 0 if exited else None}
            )
    except StopIteration:
        pass
    return polls, clock[0] - duration


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; return 0 when every target is met, else 1."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--durations", default="1,5,20", help="command lengths, seconds")
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per request (L)")
    parser.add_argument("--max-seconds", type=float, default=300, help="give up after this")
    args = parser.parse_args(argv)
    durations = [float(d) for d in args.durations.split(",")]
    watchdog(args.max_seconds)
    schedule = EXEC_POLL
    latency = args.latency

    with simulator(["--latency", str(latency), "--vps-count", "1"]) as sim:
        with HostupClient(sim.api_key, base_url=sim.base_url) as client:
            [vps_id] = [vps.id for vps in client.list_vps()]
        runs = [measure(sim, vps_id, d, latency) for d in durations]

    print(
        f"simulator: latency {latency * 1000:g} ms; schedule: first poll at once, then every "
        f"min({schedule.cap:g}, {schedule.first:g} + {schedule.growth:g} * elapsed) s"
    )
    header = ("command", "polls", "+start", "polls/s", "lag (s)", "lag target")
    print("{:>10} {:>6} {:>7} {:>8} {:>8} {:>11}".format(*header))
    ok = True
    for run in runs:
        met = run.lag <= run.lag_target
        ok = ok and met
        row = (f"sleep {run.duration:g}", run.polls, run.starts, run.rate, run.lag, run.lag_target)
        line = "{:>10} {:>6} {:>7} {:>8.2f} {:>8.2f} {:>11.2f}".format(*row)
        print(line if met else line + " MISSED")
    total_polls = sum(r.polls for r in runs)
    total_seconds = sum(r.duration for r in runs)
    average = total_polls / total_seconds
    with_starts = (total_polls + sum(r.starts for r in runs)) / total_seconds
    rate_met = average <= 1.0
    ok = ok and rate_met
    print(
        f"average: {total_polls} polls / {total_seconds:g} command seconds = {average:.2f} "
        f"polls/s (target <= 1){'' if rate_met else ' MISSED'}; "
        f"{with_starts:.2f} requests/s counting the start requests"
    )

    # The same schedule on a fake clock, at every length (not only the three above).
    lengths = [round(0.1 * i, 1) for i in range(1, 1201)]
    replays = {d: replay(schedule, d, latency) for d in lengths}
    worst = max(lengths, key=lambda d: replays[d][1] - (0.1 * d + 0.5))
    rates = ", ".join(f"{replays[d][0] / d:.2f} at {d:g} s" for d in (1.0, 5.0, 20.0, 120.0))
    print(
        f"fake clock, commands of 0.1 to 120 s in 0.1 s steps, L = {latency:g} s: worst lag "
        f"{replays[worst][1]:.2f} s at {worst:g} s (target {0.1 * worst + 0.5:.2f}); "
        f"polls/s {rates}"
    )

    fields = " ".join(
        f"polls_{r.duration:g}s={r.polls} lag_{r.duration:g}s={r.lag:.2f}" for r in runs
    )
    print(f"poll: L={latency:g} {fields} polls_per_s={average:.2f}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""Polling benchmark: ``wait_for_agent_exec`` on commands of 1, 5, 20 and 120 seconds.

Starts the simulator in its own process (per-request latency L, default 50 ms) and, for
each length T at once (one thread and one client each, so the whole run takes about the
longest T), starts ``sleep T`` on a VPS with ``start_agent_exec`` and waits for it with
``wait_for_agent_exec`` on the production poll schedule. The client's transport records
when each poll (``GET ...agent/exec?pid=``) is sent.

Per T it reports:

- lag: from the command's exit to the *sending* of the poll that saw it. The simulator
  starts a command once it has slept L on the start request, so the exit is taken as
  ``start sent + L + T``, the earliest it can be; it reads a poll's answer L after the poll
  was sent, so a lag can be as low as -L.
- polls, and P_min(T): the fewest polls that meet the lag target (polls at t0 = 0 and
  t(k+1) = 1.1 t(k) + 0.5 into the wait, up to the first at or past T), and their ratio.

Targets (issue 14): lag <= 0.1 T + 0.5 s and polls <= ceil(1.1 P_min) + 1. The simulator's
own count of polls is checked against the client's.

Usage: ``python bench/poll.py``. The last line is machine-readable (``poll:``, with the
worst polls/P_min ratio); the exit status is 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import math
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import httpx
from _common import SimulatorProcess, simulator, watchdog

from hostup_pulumi import HostupClient
from hostup_pulumi._pacing import EXEC_POLL


def fewest_polls(seconds: float) -> int:
    """P_min(T): polls at t0 = 0 and t(k+1) = 1.1 t(k) + 0.5, up to the first at or past T."""
    sent, polls = 0.0, 1
    while sent < seconds:
        sent, polls = 1.1 * sent + 0.5, polls + 1
    return polls


class _RecordingTransport(httpx.HTTPTransport):
    """Notes the time each poll of a command's output is sent."""

    def __init__(self) -> None:
        super().__init__(trust_env=False)
        self.polls: list[float] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET" and "pid" in request.url.params:
            self.polls.append(time.monotonic())
        return super().handle_request(request)


@dataclass(frozen=True)
class Run:
    """One measured command."""

    duration: float
    polls: int
    lag: float

    @property
    def fewest(self) -> int:
        return fewest_polls(self.duration)

    @property
    def ratio(self) -> float:
        return self.polls / self.fewest

    @property
    def lag_target(self) -> float:
        return 0.1 * self.duration + 0.5

    @property
    def poll_target(self) -> int:
        return math.ceil(1.1 * self.fewest) + 1

    @property
    def met(self) -> bool:
        return self.lag <= self.lag_target and self.polls <= self.poll_target


def measure(sim: SimulatorProcess, vps_id: str, duration: float, latency: float) -> Run:
    """Start ``sleep duration`` and wait for it; return when the exit was seen, and how."""
    transport = _RecordingTransport()
    with HostupClient(sim.api_key, base_url=sim.base_url, transport=transport) as client:
        sent = time.monotonic()
        started = client.start_agent_exec(vps_id, f"sleep {duration:g}")
        output = client.wait_for_agent_exec(vps_id, started.pid, timeout=duration + 60)
    if not output.exited or output.exit_code != 0:
        raise RuntimeError(f"sleep {duration:g} ended unexpectedly: {output!r}")
    exited_at = sent + latency + duration  # the earliest the simulator can have ended it
    return Run(duration, len(transport.polls), transport.polls[-1] - exited_at)


def measure_all(
    sim: SimulatorProcess, vps_ids: list[str], durations: list[float], latency: float
) -> list[Run]:
    """Every duration at once, one thread (and client, and VPS) each."""
    runs: dict[float, Run] = {}
    failures: list[BaseException] = []

    def one(vps_id: str, duration: float) -> None:
        try:
            runs[duration] = measure(sim, vps_id, duration, latency)
        except BaseException as exc:  # reported below, after the others finish
            failures.append(exc)

    threads = [
        threading.Thread(target=one, args=(vps_id, duration), name=f"sleep-{duration:g}")
        for vps_id, duration in zip(vps_ids, durations, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]
    return [runs[d] for d in durations]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; return 0 when every target is met, else 1."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--durations", default="1,5,20,120", help="command lengths, seconds")
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per request (L)")
    parser.add_argument("--max-seconds", type=float, default=400, help="give up after this")
    args = parser.parse_args(argv)
    durations = [float(d) for d in args.durations.split(",")]
    watchdog(args.max_seconds)
    latency = args.latency
    count = str(len(durations))

    with simulator(["--latency", str(latency), "--vps-count", count]) as sim:
        with HostupClient(sim.api_key, base_url=sim.base_url) as client:
            vps_ids = [vps.id for vps in client.list_vps()]
        before = sim.stats()
        runs = measure_all(sim, vps_ids, durations, latency)
        counted = (sim.stats() - before).by_route.get("exec_output", 0)

    schedule = EXEC_POLL
    print(
        f"simulator: latency {latency * 1000:g} ms; {len(runs)} command(s) at once. Schedule: a "
        f"poll at once, then each sent {schedule.first:g} + {schedule.growth:g} x (when the "
        f"previous one was sent) s after it (gap at most {schedule.cap:g} s)"
    )
    header = ("command", "lag (s)", "target", "polls", "P_min", "polls/P_min", "target", "met")
    line = "{:>10} {:>8} {:>7} {:>6} {:>6} {:>12} {:>7} {:>4}"
    print(line.format(*header))
    for run in runs:
        print(
            line.format(
                f"sleep {run.duration:g}", f"{run.lag:.2f}", f"{run.lag_target:.2f}", run.polls,
                run.fewest, f"{run.ratio:.2f}", run.poll_target, "yes" if run.met else "NO",
            )
        )  # fmt: skip
    polls = sum(run.polls for run in runs)
    agree = counted == polls
    print(
        f"the simulator counted {counted} polls, the clients sent {polls}"
        + ("" if agree else " MISMATCH")
    )
    ok = agree and all(run.met for run in runs)
    worst = max(run.ratio for run in runs)
    fields = " ".join(
        f"lag_{r.duration:g}s={r.lag:.2f} polls_{r.duration:g}s={r.polls} "
        f"pmin_{r.duration:g}s={r.fewest}"
        for r in runs
    )
    print(f"poll: L={latency:g} {fields} worst_ratio={worst:.2f} met={'yes' if ok else 'no'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

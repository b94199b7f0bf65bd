"""Load: N availability checks at concurrency C against a faulty, rate-limited simulator.

The simulator runs in a child process (``multiprocessing``, spawn), so that its server threads
do not compete with the client under test for the GIL. The simulator's command line has no
option for random faults, so the child builds the simulator itself and injects a seeded
random schedule with the public ``inject`` API before serving: for each of the first 3 * N
requests on the probe route, a ``503`` with probability ``--fault-rate`` (default 5 %),
else ``Fault.delay(0)``, which lets the request through untouched. The faults act before the
rate limiter, which answers 429 beyond ``--rate-limit`` requests/s (bursts of ``--burst``).

The parent runs N ``AsyncHostupClient.get_agent_availability`` calls at once, with
``max_concurrency=C``, and checks:

- every check succeeds;
- retries stay bounded: requests (counted by the simulator) <= 1.2 * N + the 429s;
- memory stays flat: RSS before, when each quarter of the checks is done, after, and the
  peak (``getrusage``).

``--max-retries`` defaults to 4: with independent 5 % failures a call fails only when all its
tries fail, 0.05^(retries+1) = 3e-7 per call with 4 (1.25e-4 with the client's default of 2,
that is one failed check in four runs of 2,000). The whole run is bounded by ``--max-seconds``
(the child is terminated and the script exits 2); no process outlives it.

Usage::

    python bench/load.py                    # N=2000, C=64, 5 % 503s, 500/s burst 50

The last line is machine-readable: ``load: N=... ok=... requests=... r429=... ratio=...
peak_rss_mb=...``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing
import os
import random
import resource
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from multiprocessing.connection import Connection
from typing import Any

from hostup_pulumi import AsyncHostupClient, HostupError
from hostup_pulumi.testing import Fault, HostupSimulator

REQUEST_BUDGET = 1.2  # requests <= REQUEST_BUDGET * N + 429s


def serve(conn: Connection, options: dict[str, Any]) -> None:
    """The child: a simulator with N VPSes and the random fault schedule, until told to stop;
    then send back what it counted."""
    sim = HostupSimulator(rate_limit=options["rate_limit"], burst=options["burst"])
    ids = [sim.add_vps(name=f"vps-{i:04d}") for i in range(options["n"])]
    rng = random.Random(options["seed"])
    planned: Counter[str] = Counter()
    runs: list[tuple[bool, int]] = []  # (fault?, how many requests in a row)
    for _ in range(3 * options["n"]):
        fault = rng.random() < options["fault_rate"]
        planned["503" if fault else "pass"] += 1
        if runs and runs[-1][0] == fault:
            runs[-1] = (fault, runs[-1][1] + 1)
        else:
            runs.append((fault, 1))
    for fault, count in runs:
        sim.inject("probe", Fault.status(503) if fault else Fault.delay(0), count=count)
    with sim:
        conn.send({"base_url": sim.base_url, "api_key": sim.api_key, "ids": ids})
        conn.recv()  # "stop"
        statuses = Counter(str(r.status) for r in sim.requests)
        conn.send({"requests": len(sim.requests), "statuses": dict(statuses),
                   "connections": sim.connections_opened, "planned": dict(planned)})  # fmt: skip


def rss_mb() -> float:
    """Resident set size now, in MB (Linux /proc; else the peak)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return peak_rss_mb()


def peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


class _RetryCounter(logging.Handler):
    """Counts the client's retry warnings (and keeps them off the terminal)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.retries = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.retries += record.getMessage().startswith("retrying")


async def check_all(
    info: dict[str, Any], concurrency: int, max_retries: int
) -> tuple[int, list[str], float, list[float], float]:
    """Run every check at once; return (successes, failures, RSS before and at each quarter,
    seconds)."""
    ids: list[str] = info["ids"]
    quarters: list[float] = []
    done = 0
    ok = 0
    failures: list[str] = []

    async def one(vps_id: str) -> None:
        nonlocal done, ok
        try:
            availability = await client.get_agent_availability(vps_id)
            ok += availability.available
        except HostupError as exc:
            failures.append(f"{type(exc).__name__}: {exc}")
        done += 1
        if done % (len(ids) // 4 or 1) == 0:
            quarters.append(rss_mb())

    client = AsyncHostupClient(
        info["api_key"],
        base_url=info["base_url"],
        max_retries=max_retries,
        max_concurrency=concurrency,
    )
    async with client:
        before = rss_mb()
        started = time.perf_counter()
        await asyncio.gather(*(one(vps_id) for vps_id in ids))
        seconds = time.perf_counter() - started
    return ok, failures, before, quarters, seconds


def watchdog(seconds: float, child: multiprocessing.process.BaseProcess) -> threading.Timer:
    """After ``seconds``, terminate the child and exit with status 2."""

    def expire() -> None:
        print(f"load: gave up after {seconds:g}s", file=sys.stderr, flush=True)
        child.terminate()
        child.join(5)
        if child.is_alive():
            child.kill()
        os._exit(2)

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()
    return timer


def main(argv: Sequence[str] | None = None) -> int:
    """Run the load test; return 0 when every check succeeded within the request budget."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="availability checks (N)")
    parser.add_argument("--concurrency", type=int, default=64, help="max_concurrency (C)")
    parser.add_argument("--fault-rate", type=float, default=0.05, help="share of 503s")
    parser.add_argument("--rate-limit", type=float, default=500.0, help="server requests/s")
    parser.add_argument("--burst", type=int, default=50, help="server rate-limit burst")
    parser.add_argument("--max-retries", type=int, default=4, help="client retries")
    parser.add_argument("--seed", type=int, default=20260427, help="fault schedule seed")
    parser.add_argument("--max-seconds", type=float, default=180.0, help="give up after this")
    args = parser.parse_args(argv)

    context = multiprocessing.get_context("spawn")
    parent_end, child_end = context.Pipe()
    options = {"n": args.n, "rate_limit": args.rate_limit, "burst": args.burst,
               "fault_rate": args.fault_rate, "seed": args.seed}  # fmt: skip
    child = context.Process(target=serve, args=(child_end, options), daemon=True)
    child.start()
    timer = watchdog(args.max_seconds, child)
    try:
        if not parent_end.poll(60):
            raise RuntimeError("the simulator did not start within 60 s")
        info = parent_end.recv()
        counter = _RetryCounter()
        log = logging.getLogger("hostup_pulumi")
        log.addHandler(counter)
        log.propagate = False
        ok, failures, rss_before, quarters, seconds = asyncio.run(
            check_all(info, args.concurrency, args.max_retries)
        )
        rss_after = rss_mb()
        parent_end.send("stop")
        counts = parent_end.recv()
    finally:
        timer.cancel()
        child.join(10)
        if child.is_alive():
            child.terminate()
            child.join(5)

    n = args.n
    requests = counts["requests"]
    statuses = counts["statuses"]
    r429, r503 = statuses.get("429", 0), statuses.get("503", 0)
    budget = REQUEST_BUDGET * n + r429
    peak = max(peak_rss_mb(), rss_after, *quarters)
    print(f"simulator: {n} VPSes, rate limit {args.rate_limit:g}/s burst {args.burst}, "
          f"{args.fault_rate:.0%} random 503s (seed {args.seed})")  # fmt: skip
    print(f"client:    AsyncHostupClient max_concurrency={args.concurrency} "
          f"max_retries={args.max_retries}")  # fmt: skip
    print(f"checks:    {ok} of {n} available in {seconds:.2f} s ({n / seconds:.0f}/s)")
    print(f"requests:  {requests} ({', '.join(f'{k}: {v}' for k, v in sorted(statuses.items()))})"
          f" over {counts['connections']} TCP connections")  # fmt: skip
    print(f"budget:    {requests} <= 1.2 * N + 429s = {budget:.0f}: {requests <= budget}; "
          f"{counter.retries} retries")  # fmt: skip
    print(f"503s:      {r503} ({r503 / requests:.1%} of requests)")
    print(f"memory:    RSS {rss_before:.1f} MB before the checks (client built), "
          f"{' / '.join(f'{q:.1f}' for q in quarters)} MB at each quarter, "
          f"{rss_after:.1f} MB after; peak {peak:.1f} MB")  # fmt: skip
    for failure in failures[:5]:
        print(f"failed:    {failure}")
    passed = ok == n and not failures and requests <= budget
    print(f"load: N={n} ok={ok} requests={requests} r429={r429} ratio={requests / n:.3f} "
          f"peak_rss_mb={peak:.1f}")  # fmt: skip
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())

"""``python -m hostup_pulumi.testing``: run the simulator until SIGTERM or SIGINT.

Prints one JSON line ``{"base_url", "api_key", "pid"}`` once it is listening. Another process
can read the request and connection counts from ``GET <base_url>/_simulator/stats`` (no
credentials; see ``HostupSimulator.stats``), as the benchmarks in ``bench/`` do.

``--vps-count N`` adds N generated VPSes whose ids depend only on ``--id-seed`` and their
number, so a restart serves the same ids. More accounts and their keys come from a seed file
(``"account"`` on ``apiKeys`` and ``vps`` entries; see ``seed.py``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from .records import DEFAULT_ACCOUNT
from .simulator import HostupSimulator
from .state import DEFAULT_ID_SEED


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Run the offline HostUp API simulator on 127.0.0.1.",
    )
    parser.add_argument("--port", type=int, default=0, help="TCP port (default: a free one)")
    parser.add_argument("--seed", help="seed JSON file, or 'demo' for the packaged demo")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per request")
    parser.add_argument("--rate-limit", type=float, default=None, help="requests/s per key")
    parser.add_argument("--burst", type=int, default=10, help="rate-limit burst size")
    parser.add_argument("--pid-retention", type=float, default=600.0, help="seconds")
    parser.add_argument(
        "--vps-count",
        type=_count,
        default=0,
        metavar="N",
        help="add N generated VPSes (vps-0001, ...) with ids that are the same on every start",
    )
    parser.add_argument(
        "--id-seed",
        default=DEFAULT_ID_SEED,
        metavar="TEXT",
        help=f"derive the generated VPSes' ids from TEXT (default {DEFAULT_ID_SEED!r})",
    )
    parser.add_argument("--api-key", help="value of the default API key")
    parser.add_argument("--ready-file", type=Path, help="also write the JSON line here")
    return parser


def _write_atomically(path: Path, text: str) -> None:
    # Write beside the target and rename, so a watcher never reads half a line.
    fd, tmp = tempfile.mkstemp(dir=path.parent or Path("."), prefix=".ready-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _count(text: str) -> int:
    """argparse type: a whole number >= 0."""
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 0")
    return int(text)


def banner(sim: HostupSimulator) -> str:
    """What a person needs to use the simulator: its address and key, its VPSes, and the
    lines that point a Pulumi stack or the command line at it."""
    lines = [f"HostUp simulator on {sim.base_url} (Ctrl-C stops it)", f"API key: {sim.api_key}"]
    vpses = [vps for vps in sim.inventory() if vps.account == DEFAULT_ACCOUNT]
    if vpses:
        lines.append("VPSes (id, name, power state, guest agent):")
        width = max(len(vps.name) for vps in vpses)
        for vps in vpses:
            agent = "available" if vps.agent_available else f"not available: {vps.agent_reason}"
            lines.append(f"  {vps.id}  {vps.name:{width}}  {vps.power_state:7}  {agent}")
    else:
        lines.append("No VPSes yet: start it with --seed demo or --vps-count N")
    lines += [
        "Point a Pulumi stack at it:",
        f"  pulumi config set hostup:baseUrl {sim.base_url}",
        f"  pulumi config set --secret hostup:apiKey {sim.api_key}",
        "Or the command line:",
        f"  export HOSTUP_BASE_URL={sim.base_url} HOSTUP_API_KEY={sim.api_key}",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None, prog: str = "python -m hostup_pulumi.testing") -> int:
    """Run the simulator; return the process exit code. ``prog`` is the command the user
    typed, for the usage and help lines."""
    args = _parser(prog).parse_args(argv)
    sim = HostupSimulator(
        port=args.port,
        seed=args.seed,
        latency=args.latency,
        rate_limit=args.rate_limit,
        burst=args.burst,
        pid_retention=args.pid_retention,
        api_key=args.api_key,
    )
    sim.add_generated_vps(args.vps_count, id_seed=args.id_seed)

    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    sim.start()
    try:
        line = json.dumps({"base_url": sim.base_url, "api_key": sim.api_key, "pid": os.getpid()})
        if args.ready_file is not None:
            _write_atomically(args.ready_file, line + "\n")
        # Nobody may read stdout; the ready file (if any) still works.
        with contextlib.suppress(BrokenPipeError):
            print(line, flush=True)
            # For a person: what to paste (stderr, so that stdout stays one JSON line).
            print(banner(sim), file=sys.stderr, flush=True)
        # Short waits keep the main thread responsive to signals.
        while not stop.wait(0.2):
            pass
    finally:
        sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

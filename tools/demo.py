"""`make demo`: the flagship stack against the local HostUp simulator, printing its outputs.

Starts the simulator (demo seed: web-01 with a working agent, db-01 whose agent does not
answer, old-01 stopped) in this process, runs `pulumi up --yes` on the top-level project
with a local file backend under .state/demo, prints the stack outputs and stops the
simulator. Running it again reuses the stack: nothing changes, nothing runs twice.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from hostup_pulumi.testing import HostupSimulator
from hostup_pulumi.testing.engine import EngineNotFoundError, PulumiStack

REPO = Path(__file__).resolve().parent.parent
STATE = REPO / ".state" / "demo"
# A fixed port keeps hostup:baseUrl the same from one run to the next.
DEMO_PORT = 47180


def main() -> int:
    try:
        sim = HostupSimulator(seed="demo", port=DEMO_PORT)
        sim.start()
    except OSError as exc:
        print(f"demo: cannot start the simulator on 127.0.0.1:{DEMO_PORT}: {exc}", file=sys.stderr)
        return 1
    try:
        print(f"==> HostUp simulator at {sim.base_url} (demo seed)", flush=True)
        stack = PulumiStack.create(REPO, STATE, "demo")
        stack.configure_hostup(sim.base_url, sim.api_key)
        print("==> pulumi up --yes (stack 'demo', state in .state/demo)", flush=True)
        up = stack.run("up", "--yes", check=False)
        print(up.stdout, end="")
        if up.returncode != 0:
            print(up.stderr, end="", file=sys.stderr)
            return up.returncode
        show = os.environ.get("SHOW_SECRETS") == "1"
        print(f"==> pulumi stack output --json{' --show-secrets' if show else ''}", flush=True)
        print(json.dumps(stack.outputs(show_secrets=show), indent=2))
        if not show:
            print("\nstdout is a Pulumi secret; `make demo SHOW_SECRETS=1` prints it too.")
        return 0
    except EngineNotFoundError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 1
    except subprocess.CalledProcessError as exc:
        print(f"demo: {' '.join(exc.cmd[:3])} failed:\n{exc.stdout}{exc.stderr}", file=sys.stderr)
        return 1
    finally:
        sim.stop()


if __name__ == "__main__":
    sys.exit(main())

"""``install-plugin``: make the native ``hostup`` provider plugin discoverable by Pulumi.

Writes a launcher ``pulumi-resource-hostup`` that runs ``python -m hostup_pulumi.provider`` on
this Python (the virtualenv that has hostup-pulumi installed, never whatever ``python3`` is
on ``PATH``) and installs it with ``pulumi plugin install resource hostup <version> --file``
into ``$PULUMI_HOME`` (default ``~/.pulumi``). Afterwards YAML programs (and the
plugin-backed Python classes) find the plugin from any directory. Nothing is done when the
installed launcher is already this one.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from .._version import __version__
from ._common import EXIT_ERROR, EXIT_OK, PROG, say

NAME = "hostup"
LAUNCHER = f"pulumi-resource-{NAME}"
# The help text: the module's docstring without its reStructuredText quotes.
DESCRIPTION = (__doc__ or "").split("\n\n", 1)[-1].replace("``", "`")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Add ``install-plugin``."""
    parser = sub.add_parser(
        "install-plugin",
        help="install the native hostup provider plugin into $PULUMI_HOME",
        description=DESCRIPTION,
    )
    parser.add_argument(
        "--pulumi", metavar="PATH", help="the pulumi CLI to install with (default: on PATH)"
    )
    parser.add_argument(
        "--python",
        metavar="PATH",
        default=sys.executable,
        help="the Python that runs the plugin (default: this one)",
    )
    return parser


def launcher(python: str) -> str:
    """The launcher script for ``python`` (an absolute path, not resolved: a virtualenv's
    python is a link that only works under its own name)."""
    return (
        "#!/bin/sh\n# Written by hostup-pulumi install-plugin: the hostup resource provider.\n"
        f'exec {shlex.quote(python)} -m hostup_pulumi.provider "$@"\n'
    )


def pulumi_home() -> Path:
    """``$PULUMI_HOME``, else Pulumi's default ``~/.pulumi``."""
    return Path(os.environ.get("PULUMI_HOME") or Path.home() / ".pulumi")


def run(args: argparse.Namespace) -> int:
    """Install the plugin; one line on success, one error line otherwise."""
    pulumi = args.pulumi or shutil.which("pulumi")
    if not pulumi or not os.access(pulumi, os.X_OK):
        say(sys.stderr, f"{PROG}: error: no pulumi CLI found: pass --pulumi PATH")
        return EXIT_ERROR
    python = os.path.abspath(args.python)
    if not os.access(python, os.X_OK):
        say(sys.stderr, f"{PROG}: error: no Python at {python}: pass --python PATH")
        return EXIT_ERROR
    text = launcher(python)
    home = pulumi_home()
    installed = home / "plugins" / f"resource-{NAME}-v{__version__}" / LAUNCHER
    done = f"hostup plugin v{__version__} is installed in {home} (python: {python})"
    if _reads(installed) == text and not installed.parent.with_suffix(".partial").exists():
        say(sys.stdout, done)
        return EXIT_OK
    # A directory of its own each time: pulumi copies the whole directory, and concurrent
    # installs must not see each other's half-written launcher.
    with tempfile.TemporaryDirectory(prefix="hostup-plugin-") as folder:
        script = Path(folder) / LAUNCHER
        script.write_text(text)
        script.chmod(0o755)
        env = {**os.environ, "PULUMI_HOME": str(home), "PULUMI_SKIP_UPDATE_CHECK": "true"}
        argv = [pulumi, "plugin", "install", "resource", NAME, __version__, "--file", folder,
                "--reinstall"]  # fmt: skip
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)  # noqa: S603
    if proc.returncode != 0 or _reads(installed) != text:
        say(sys.stderr, proc.stdout + proc.stderr)
        say(sys.stderr, f"{PROG}: error: `pulumi plugin install` did not install {installed}")
        return EXIT_ERROR
    say(sys.stdout, done.replace("is installed", "installed"))
    return EXIT_OK


def _reads(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None

"""``simulator``: the offline HostUp API simulator, loaded only when this command runs.

Nothing else in the command line imports :mod:`hostup_pulumi.testing`: a deploy gate or a
one-off ``exec`` never loads the simulator.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from ._common import PROG


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Add ``simulator``. It has no options of its own: every argument, --help included, is
    handed to ``python -m hostup_pulumi.testing``'s parser untouched."""
    return sub.add_parser(
        "simulator",
        add_help=False,
        help="run the offline HostUp API simulator (see: simulator --help)",
    )


def run(arguments: Sequence[str], command_tail: Sequence[str]) -> int:
    """Run the simulator with ``arguments`` (and any words after ``--``) until it stops."""
    from ..testing.__main__ import main as simulator_main  # only this subcommand needs it

    argv = [*arguments, *(["--", *command_tail] if command_tail else [])]
    return simulator_main(argv, prog=f"{PROG} simulator")

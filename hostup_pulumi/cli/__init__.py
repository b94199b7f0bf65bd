"""``hostup-pulumi``: the command line, for deploy gates and quick checks outside Pulumi.

    hostup-pulumi agent-status VPS [--wait SECONDS]
    hostup-pulumi list-vps [--name NAME] [--primary-ip IP]
    hostup-pulumi exec VPS [--timeout SECONDS | --no-wait] -- COMMAND...
    hostup-pulumi output VPS PID [--wait [--timeout SECONDS]]
    hostup-pulumi simulator [--port PORT] ...
    hostup-pulumi install-plugin [--pulumi PATH] [--python PATH]

VPS is a ``vps_...`` id, a display name or a primary IP (looked up with ``list_vps``).
``-v``/``--verbose``, ``--json`` and ``--base-url`` go before or after the command name.
Exit codes: see ``hostup-pulumi --help`` (:data:`EXIT_OK` ... :data:`EXIT_INTERRUPTED`).

Configuration is the client's: the key comes from ``HOSTUP_API_KEY`` (or
``HOSTUP_SESSION_COOKIE``) only, never from the command line, where shell history and ``ps``
would show it; ``--base-url`` or ``HOSTUP_BASE_URL`` chooses the API. Every call goes through
:class:`~hostup_pulumi.HostupClient`, so validation, retries and error messages are the
library's own. One module per command group: :mod:`.agent`, :mod:`.inventory`,
:mod:`.simulator`; :mod:`._common` holds what they share.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from .._version import __version__
from ..client import HostupClient
from ..errors import HostupError
from ..settings import ENV_BASE_URL
from . import agent, inventory, plugin, simulator
from ._common import (
    EPILOG,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_NO,
    EXIT_OK,
    EXIT_RUNNING,
    EXIT_TIMEOUT,
    PROG,
    CliError,
    Handler,
    error_line,
    logging_to_stderr,
    note,
    say,
    settings,
)

__all__ = [
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_NO",
    "EXIT_OK",
    "EXIT_RUNNING",
    "EXIT_TIMEOUT",
    "main",
]


def _global_options(parser: argparse.ArgumentParser, *, defaults: bool) -> None:
    # The same options on the top-level parser (with defaults) and on every subcommand
    # (default SUPPRESS, so that an option given before the command name is not reset).
    def default(value: object) -> object:
        return value if defaults else argparse.SUPPRESS

    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=default(False),
        help="log each request on stderr (no credentials, no command output)",
    )
    parser.add_argument(
        "--json", action="store_true", default=default(False), help="print the result as JSON"
    )
    parser.add_argument(
        "--base-url",
        metavar="URL",
        default=default(None),
        help=f"API base URL (default: ${ENV_BASE_URL}, else HostUp)",
    )


def _parser() -> tuple[
    argparse.ArgumentParser, dict[str, tuple[argparse.ArgumentParser, Handler | None]]
]:
    """The top-level parser, and each subcommand's parser and handler (``None``: the
    simulator, which has no client)."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="HostUp VPS guest-agent commands from the shell: a deploy gate, a VPS id "
        "lookup, one-off commands and their output, and the offline API simulator.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _global_options(parser, defaults=True)
    shared = argparse.ArgumentParser(add_help=False)
    _global_options(shared, defaults=False)
    sub = parser.add_subparsers(dest="subcommand", metavar="COMMAND", required=True)

    def add(name: str, summary: str, description: str) -> argparse.ArgumentParser:
        return sub.add_parser(
            name,
            parents=[shared],
            help=summary,
            description=description,
            epilog=f"environment, exit codes: {PROG} --help",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    commands: dict[str, tuple[argparse.ArgumentParser, Handler | None]] = {}
    commands.update(agent.register(add))
    commands.update(inventory.register(add))
    commands["simulator"] = (simulator.register(sub), None)
    commands["install-plugin"] = (plugin.register(sub), None)
    return parser, commands


def _split_command(argv: list[str]) -> tuple[list[str], list[str]]:
    # Everything after the first "--" is exec's command, verbatim: argparse would drop
    # later "--" words, and they may belong to the command.
    if "--" in argv:
        index = argv.index("--")
        return argv[:index], argv[index + 1 :]
    return argv, []


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code (see ``hostup-pulumi --help``)."""
    words, command_tail = _split_command(list(sys.argv[1:] if argv is None else argv))
    parser, commands = _parser()
    args, extras = parser.parse_known_args(words)
    command_parser, handler = commands[args.subcommand]
    if args.subcommand == "install-plugin":  # no client: it installs, it calls no API
        if extras or command_tail:
            command_parser.error(f"unrecognized arguments: {' '.join(extras + command_tail)}")
        return plugin.run(args)
    if handler is None:  # the simulator parses its own arguments
        if args.verbose or args.json or args.base_url is not None:
            parser.error("-v, --json and --base-url do not apply to the simulator")
        return simulator.run(extras, command_tail)
    if extras:
        hint = " (put the command after --)" if args.subcommand == "exec" else ""
        command_parser.error(f"unrecognized arguments: {' '.join(extras)}{hint}")
    if args.subcommand == "exec":
        args.command = [*args.command, *command_tail]
    elif command_tail:
        command_parser.error("no command is taken after --")
    agent.check(args.subcommand, command_parser, args)
    try:
        with logging_to_stderr(args.verbose), HostupClient(settings=settings(args)) as client:
            return handler(args, client)
    except CliError as exc:
        say(sys.stderr, f"{PROG}: error: {exc.message}")
        for line in exc.details:
            say(sys.stderr, line)
        return EXIT_ERROR
    except HostupError as exc:
        say(sys.stderr, error_line(exc))
        return EXIT_ERROR
    except KeyboardInterrupt:
        note("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (| head): stop quietly, and keep Python from complaining
        # about the unflushable stdout at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_ERROR

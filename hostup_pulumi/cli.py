"""``hostup-pulumi``: the command line, for deploy gates and quick checks outside Pulumi.

    hostup-pulumi agent-status VPS_ID [--wait SECONDS] [--json]
    hostup-pulumi list-vps [--name NAME] [--primary-ip IP] [--json]
    hostup-pulumi exec VPS_ID [--timeout SECONDS] -- COMMAND...
    hostup-pulumi simulator [--port PORT] ...

Configuration is the client's: the key comes from ``HOSTUP_API_KEY`` (or
``HOSTUP_SESSION_COOKIE``) only, never from the command line, where shell history and ``ps``
would show it; ``--base-url`` or ``HOSTUP_BASE_URL`` chooses the API. Every call goes through
:class:`~hostup_pulumi.HostupClient`, so validation, retries and error messages are the
library's own.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from types import TracebackType
from typing import Any, TextIO

from ._validation import validate_command
from ._version import __version__
from .client import DEFAULT_EXEC_TIMEOUT, HostupClient
from .errors import CommandTimeoutError, ConfigurationError, HostupError
from .models import AgentAvailability, AgentExecOutput, Vps
from .settings import ENV_API_KEY, ENV_BASE_URL, ENV_SESSION_COOKIE, Settings

__all__ = [
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_NO",
    "EXIT_OK",
    "EXIT_TIMEOUT",
    "main",
]

PROG = "hostup-pulumi"
EXIT_OK = 0
#: The answer is "no": the agent is not available, or no VPS matched.
EXIT_NO = 1
#: Bad arguments or configuration, or an API or connection error.
EXIT_ERROR = 2
#: ``exec``: the command did not exit within ``--timeout`` (as GNU timeout(1) does).
EXIT_TIMEOUT = 124
EXIT_INTERRUPTED = 130

#: Seconds between progress lines when stderr is not a terminal (a CI log).
PLAIN_PROGRESS_EVERY = 15.0
#: Seconds between redraws of the progress line on a terminal.
TTY_PROGRESS_EVERY = 0.2

_EPILOG = f"""\
environment:
  {ENV_API_KEY}          API key (scopes read:vm, and write:vm for exec). The key is
                          never taken on the command line: shell history and ps show it.
  {ENV_SESSION_COOKIE}   a dashboard hostup_session cookie, used when no key is set
  {ENV_BASE_URL}         API base URL (default https://cloud.hostup.se); --base-url wins

exit codes:
  0    success: the agent is available; VPSes were listed; exec: the command exited 0
  1    the answer is no: the agent is not available (the reason is printed), or
       list-vps matched nothing
  2    error: bad arguments or configuration, or an API or connection error (one line
       on stderr with the error class, HTTP status, error code and request id)
  124  exec: the command did not exit within --timeout (it may still be running)
  130  interrupted (Ctrl-C)
  exec otherwise exits with the command's own exit code (so 1 and 2 may be the
  command's: the hostup-pulumi lines on stderr tell them apart).
"""


# -- output helpers ------------------------------------------------------------------------


def _secrets() -> list[str]:
    # The only credentials the CLI can hold are the environment's.
    values = (os.environ.get(ENV_API_KEY, ""), os.environ.get(ENV_SESSION_COOKIE, ""))
    return [value.strip() for value in values if len(value.strip()) >= 4]


def _redact(text: str) -> str:
    """``text`` with any credential from the environment masked (defence in depth: nothing
    the CLI prints should contain one, but a server could echo one back)."""
    for secret in _secrets():
        text = text.replace(secret, "<redacted>")
    return text


def _say(stream: TextIO, text: str) -> None:
    """Write one line of the CLI's own (redacted) output."""
    stream.write(_redact(text) + "\n")
    stream.flush()


def _note(text: str) -> None:
    """A ``hostup-pulumi: ...`` line on stderr (stdout is for results)."""
    _say(sys.stderr, f"{PROG}: {text}")


def _write_output(stream: TextIO, text: str) -> None:
    """Write a command's own output as it came: UTF-8 bytes when the stream has a buffer, so a
    terminal or pipe with another locale encoding still gets every character."""
    if not text:
        return
    stream.flush()
    buffer = getattr(stream, "buffer", None)
    if buffer is None:
        stream.write(text)
    else:
        buffer.write(text.encode("utf-8", errors="replace"))
        buffer.flush()
    stream.flush()


def _interactive(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty()) and os.environ.get("TERM") != "dumb"


def _terminal_width(stream: TextIO) -> int:
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, OSError, ValueError):  # not a real terminal (or no fileno)
        return 80


def _duration(seconds: float) -> str:
    """``7.5`` -> ``7.5s``, ``75`` -> ``1m15s`` (whole seconds from a minute on)."""
    if seconds < 60:
        return f"{max(0.0, seconds):.3g}s"
    whole = int(seconds)
    return f"{whole // 60}m{whole % 60:02d}s"


class _Progress:
    """Elapsed time and state on stderr while a blocking client call runs.

    On a terminal, one line redrawn in place and erased at the end; otherwise (a CI log) a
    plain line at the start and every :data:`PLAIN_PROGRESS_EVERY` seconds. The client's wait
    methods poll on their own schedule; this only reports, so no polling logic is repeated.
    """

    def __init__(
        self,
        stream: TextIO,
        label: str,
        state: str,
        *,
        limit: float,
        interactive: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stream = stream
        self._label = label
        self._state = state
        self._limit = limit
        self._interactive = _interactive(stream) if interactive is None else interactive
        self._clock = clock
        self._started = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def line(self) -> str:
        """The current status text."""
        elapsed = int(self._clock() - self._started)  # whole seconds: a steady display
        # Time first, so that it stays visible when a narrow terminal cuts the line.
        return (
            f"{PROG}: [{_duration(elapsed)} of {_duration(self._limit)}] "
            f"{self._label}: {self._state}"
        )

    def _run(self) -> None:
        every = TTY_PROGRESS_EVERY if self._interactive else PLAIN_PROGRESS_EVERY
        while not self._stop.wait(every):
            self._draw()

    def _draw(self) -> None:
        if self._interactive:
            # \r and "erase line": redraw in place. A line longer than the terminal would
            # wrap, and \r could not erase the wrapped part: cut it to the width.
            width = _terminal_width(self._stream)
            self._stream.write("\r\x1b[K" + _redact(self.line())[: width - 1])
            self._stream.flush()
        else:
            _say(self._stream, self.line())

    def __enter__(self) -> _Progress:
        self._started = self._clock()
        self._draw()
        self._thread = threading.Thread(target=self._run, name="hostup-progress", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._interactive:
            self._stream.write("\r\x1b[K")
            self._stream.flush()


# -- arguments ---------------------------------------------------------------------------


def _seconds(text: str) -> float:
    """argparse type: a positive, finite number of seconds."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive number of seconds")
    return value


def _parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The top-level parser, and the subcommands' parsers (for their usage in errors)."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="HostUp VPS guest-agent commands from the shell: a deploy gate, a VPS id "
        "lookup, one-off commands, and the offline API simulator.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    api = argparse.ArgumentParser(add_help=False)
    api.add_argument(
        "--base-url", metavar="URL", help=f"API base URL (default: ${ENV_BASE_URL}, else HostUp)"
    )
    api.add_argument(
        "-v", "--verbose", action="store_true", help="log each request (no credentials)"
    )
    sub = parser.add_subparsers(dest="subcommand", metavar="COMMAND", required=True)

    def add(name: str, summary: str, description: str) -> argparse.ArgumentParser:
        return sub.add_parser(
            name,
            parents=[api],
            help=summary,
            description=description,
            epilog=_EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    status = add(
        "agent-status",
        "is guest-agent command execution available on a VPS? (exit 0 yes, 1 no)",
        "Probe whether QEMU guest-agent command execution is available on VPS_ID: exit 0 "
        "when it is, 1 when not (with HostUp's reason), 2 on an error. A deploy gate for CI.",
    )
    status.add_argument("vps_id", metavar="VPS_ID", help="the vps_... id (see list-vps)")
    status.add_argument(
        "--wait",
        type=_seconds,
        metavar="SECONDS",
        help="poll until available, for at most SECONDS (a VM still booting)",
    )
    status.add_argument("--json", action="store_true", help="print the result as JSON")

    listing = add(
        "list-vps",
        "list VPSes to find a vps_... id",
        "List the account's VPSes (id, name, primary IP, power state); exit 1 when none match.",
    )
    listing.add_argument("--name", help="exact display name (case-insensitive)")
    listing.add_argument("--primary-ip", metavar="IP", help="exact primary IP address")
    listing.add_argument("--json", action="store_true", help="print the API's records as JSON")

    run = add(
        "exec",
        "run a command in a VPS and exit with its exit code",
        "Probe availability, start COMMAND in VPS_ID through the guest agent, wait for it, "
        "print its stdout and stderr, and exit with its exit code. Words after -- are joined "
        "with spaces into one command string for the guest's shell, as ssh does.",
    )
    run.add_argument("vps_id", metavar="VPS_ID", help="the vps_... id (see list-vps)")
    run.add_argument("command", nargs="*", metavar="COMMAND", help="the command (after --)")
    run.add_argument(
        "--timeout",
        type=_seconds,
        default=DEFAULT_EXEC_TIMEOUT,
        metavar="SECONDS",
        help=f"wait at most SECONDS for the command to exit (default {DEFAULT_EXEC_TIMEOUT:g})",
    )

    # The simulator has its own parser (python -m hostup_pulumi.testing): every argument,
    # --help included, is handed to it untouched.
    simulator = sub.add_parser(
        "simulator",
        add_help=False,
        help="run the offline HostUp API simulator (see: simulator --help)",
    )
    commands = {"agent-status": status, "list-vps": listing, "exec": run, "simulator": simulator}
    return parser, commands


def _split_command(argv: list[str]) -> tuple[list[str], list[str]]:
    # Everything after the first "--" is exec's command, verbatim: argparse would drop
    # later "--" words, and they may belong to the command.
    if "--" in argv:
        index = argv.index("--")
        return argv[:index], argv[index + 1 :]
    return argv, []


# -- subcommands -----------------------------------------------------------------------


def _settings(args: argparse.Namespace) -> Settings:
    """The client's settings resolution (environment, ``--base-url``), with a message for
    a missing key that fits a command line."""
    settings = Settings.resolve(base_url=args.base_url, require_credentials=False)
    if not settings.api_key and not settings.session_cookie:
        raise ConfigurationError(
            f"no HostUp API key: set the {ENV_API_KEY} environment variable (create a key "
            "with the read:vm and write:vm scopes at https://cloud.hostup.se/api-management). "
            "The key is never taken on the command line, where shell history and ps show it"
        )
    return settings


def _availability_json(vps_id: str, availability: AgentAvailability) -> dict[str, Any]:
    # The same shape as the getVpsAgentAvailability stack output (schema.json).
    return {
        "vpsId": vps_id,
        "available": availability.available,
        "reason": availability.reason,
        "vmRunning": availability.vm_running,
    }


def _unavailable_text(availability: AgentAvailability) -> str:
    text = f"not available: {availability.reason or 'HostUp gave no reason'}"
    if availability.vm_running is not None:
        text += f" (VM running: {str(availability.vm_running).lower()})"
    return text


def _agent_status(args: argparse.Namespace, client: HostupClient) -> int:
    vps_id: str = args.vps_id
    availability = client.get_agent_availability(vps_id)
    waited = False
    if not availability.available and args.wait is not None:
        waited = True
        label = f"waiting for the guest agent on {vps_id}"
        with _Progress(sys.stderr, label, _unavailable_text(availability), limit=args.wait):
            try:
                availability = client.wait_for_agent_available(vps_id, timeout=args.wait)
            except CommandTimeoutError as exc:
                availability = exc.last_availability or availability
    if args.json:
        _say(sys.stdout, json.dumps(_availability_json(vps_id, availability)))
    elif availability.available:
        _say(sys.stdout, f"{vps_id}: available")
    else:
        after = f" after waiting {args.wait:g}s" if waited else ""
        _say(sys.stdout, f"{vps_id}: {_unavailable_text(availability)}{after}")
    return EXIT_OK if availability.available else EXIT_NO


def _table(vpses: Sequence[Vps]) -> list[str]:
    rows = [("ID", "NAME", "PRIMARY IP", "POWER STATE")]
    rows += [(v.id, v.name or "-", v.primary_ip or "-", v.power_state or "-") for v in vpses]
    widths = [max(len(row[col]) for row in rows) for col in range(4)]
    cells = (zip(row, widths, strict=True) for row in rows)
    return ["  ".join(cell.ljust(width) for cell, width in row).rstrip() for row in cells]


def _list_vps(args: argparse.Namespace, client: HostupClient) -> int:
    vpses = list(client.list_vps(name=args.name, primary_ip=args.primary_ip))
    if args.json:
        records = [vps.model_dump(mode="json", by_alias=True) for vps in vpses]
        _say(sys.stdout, json.dumps(records, indent=2))
    elif vpses:
        for line in _table(vpses):
            _say(sys.stdout, line)
    if not vpses:
        _note("no VPS matched" if args.name or args.primary_ip else "the account has no VPS")
        return EXIT_NO
    return EXIT_OK


def _exit_status(output: AgentExecOutput) -> int:
    """The process exit status for a finished command: its exit code when it fits."""
    code = output.exit_code
    if code is None:
        signal = output.signal
        if isinstance(signal, int) and 0 < signal < 128:
            return 128 + signal  # the shell's convention for "killed by a signal"
        _note("HostUp reported the command as exited without an exit code")
        return EXIT_ERROR
    if 0 <= code <= 255:
        return code
    # Exit statuses are 8 bits; code % 256 could turn a failure into 0.
    _note(f"the command exited with code {code}, which does not fit an exit status; using 255")
    return 255


def _exec(args: argparse.Namespace, client: HostupClient) -> int:
    vps_id: str = args.vps_id
    # Refuse a bad command before the probe, so that nothing is sent for it.
    command = validate_command(" ".join(args.command))
    availability = client.get_agent_availability(vps_id)
    if not availability.available:
        _note(
            f"guest-agent command execution on {vps_id} is {_unavailable_text(availability)}; "
            f"`{PROG} agent-status {vps_id} --wait SECONDS` waits for it"
        )
        return EXIT_NO
    started = client.start_agent_exec(vps_id, command)
    label = f"{vps_id} pid {started.pid}"
    try:
        with _Progress(sys.stderr, label, "running", limit=args.timeout):
            output = client.wait_for_agent_exec(vps_id, started.pid, timeout=args.timeout)
    except CommandTimeoutError as exc:
        if exc.last_output is not None:  # whatever it printed so far
            _write_output(sys.stdout, exc.last_output.stdout)
            _write_output(sys.stderr, exc.last_output.stderr)
        _note(
            f"command pid {started.pid} on {vps_id} did not exit within {args.timeout:g}s; "
            "it may still be running"
        )
        return EXIT_TIMEOUT
    except KeyboardInterrupt:
        _note(f"stopped waiting; command pid {started.pid} on {vps_id} may still be running")
        raise
    _write_output(sys.stdout, output.stdout)
    _write_output(sys.stderr, output.stderr)
    if output.truncated:
        _note("HostUp reports that the output was truncated")
    return _exit_status(output)


_COMMANDS: dict[str, Callable[[argparse.Namespace, HostupClient], int]] = {
    "agent-status": _agent_status,
    "list-vps": _list_vps,
    "exec": _exec,
}


@contextlib.contextmanager
def _logging_to_stderr(verbose: bool) -> Iterator[None]:
    """Show the library's log on stderr while a subcommand runs, then put the logger back
    as it was (``main`` may be called in-process, e.g. by tests)."""
    # The library logs retries (warning) and, with -v, each request (debug): method, path,
    # status and request id, never credentials or command output.
    logger = logging.getLogger("hostup_pulumi")
    handler = logging.StreamHandler(sys.stderr)
    prefix = "\r\x1b[K" if _interactive(sys.stderr) else ""  # over a progress line
    handler.setFormatter(logging.Formatter(f"{prefix}{PROG}: %(message)s"))
    saved = (logger.level, logger.propagate)
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose else logging.WARNING)
    logger.propagate = False  # once on stderr is enough
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])  # setLevel, not .level =: it resets the logging cache
        logger.propagate = saved[1]


def _error_line(exc: BaseException) -> str:
    # One line: the error class, then the library's message (status, code, request id).
    return f"{PROG}: error: {type(exc).__name__}: {' '.join(str(exc).split())}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code (see ``hostup-pulumi --help``)."""
    words, command_tail = _split_command(list(sys.argv[1:] if argv is None else argv))
    parser, commands = _parser()
    args, extras = parser.parse_known_args(words)
    command_parser = commands[args.subcommand]
    if args.subcommand == "simulator":
        from .testing.__main__ import main as simulator_main  # only this subcommand needs it

        return simulator_main(extras + (["--", *command_tail] if command_tail else []))
    if extras:
        hint = " (put the command after --)" if args.subcommand == "exec" else ""
        command_parser.error(f"unrecognized arguments: {' '.join(extras)}{hint}")
    if args.subcommand == "exec":
        args.command = [*args.command, *command_tail]
    elif command_tail:
        command_parser.error("no command is taken after --")
    try:
        with _logging_to_stderr(args.verbose), HostupClient(settings=_settings(args)) as client:
            return _COMMANDS[args.subcommand](args, client)
    except HostupError as exc:
        _say(sys.stderr, _error_line(exc))
        return EXIT_ERROR
    except KeyboardInterrupt:
        _note("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (| head): stop quietly, and keep Python from complaining
        # about the unflushable stdout at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())

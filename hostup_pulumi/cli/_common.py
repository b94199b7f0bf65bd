"""What every subcommand shares: exit codes, output, progress, errors and settings."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from types import TracebackType
from typing import Any, TextIO

from .._advice import Where
from .._validation import validate_seconds
from ..client import HostupClient
from ..errors import ConfigurationError, ValidationError
from ..models import AgentExecOutput
from ..settings import ENV_API_KEY, ENV_BASE_URL, ENV_SESSION_COOKIE, Settings

PROG = "hostup-pulumi"

EXIT_OK = 0
#: The answer is "no": the agent is not available, or no VPS matched ``list-vps``.
EXIT_NO = 1
#: Bad arguments or configuration, a VPS that cannot be resolved, or an API or
#: connection error.
EXIT_ERROR = 2
#: ``output`` without ``--wait``: the command has not exited yet.
EXIT_RUNNING = 3
#: ``exec`` or ``output --wait``: the command did not exit within ``--timeout`` (as GNU
#: timeout(1) does).
EXIT_TIMEOUT = 124
EXIT_INTERRUPTED = 130

#: Seconds between progress lines when stderr is not a terminal (a CI log).
PLAIN_PROGRESS_EVERY = 15.0
#: Seconds before the first of them: a wait that ends sooner (a command that finished at once)
#: leaves no line in the log.
PLAIN_PROGRESS_FIRST = 2.0
#: Seconds between redraws of the progress line on a terminal.
TTY_PROGRESS_EVERY = 0.2

#: A subcommand: parsed arguments and an open client in, exit code out.
Handler = Callable[[argparse.Namespace, HostupClient], int]

EPILOG = f"""\
VPS arguments:
  VPS is a vps_... id, a display name (exact, case-insensitive) or a primary IP
  address. A name or IP is looked up first (GET /api/v2/vps?name=... or
  ?primaryIp=...) and must match exactly one VPS; `{PROG} list-vps` lists
  them. An argument that starts with vps_ is always taken as an id.

options anywhere:
  -v/--verbose, --json and --base-url work before or after the command name.

environment:
  {ENV_API_KEY}          API key (scopes read:vm, and write:vm for exec and output).
                          The key is never taken on the command line: shell history
                          and ps show it.
  {ENV_SESSION_COOKIE}   a dashboard hostup_session cookie, used when no key is set
  {ENV_BASE_URL}         API base URL (default https://cloud.hostup.se); --base-url wins

exit codes:
  0    success: the agent is available; VPSes were listed; exec and output: the
       command exited 0; exec --no-wait: the command was started
  1    the answer is no: the agent is not available (the reason is printed; exec
       then starts nothing), or list-vps matched nothing
  2    error: bad arguments (usage), no credentials, a VPS name or IP that matches
       no VPS or several, or an API or connection error (one line on stderr with
       the error class, HTTP status, error code and request id)
  3    output without --wait: the command is still running
  124  exec, output --wait: the command did not exit within --timeout (it may still
       be running: `{PROG} output VPS PID --wait` waits again)
  130  interrupted (Ctrl-C); a started command may still be running
  exec and output otherwise exit with the command's own exit code (128+N when
  signal N ended it, 255 when the code does not fit in 0-255), so 1, 2 and 3 may
  be the command's: the {PROG} lines on stderr, and "exited" in --json, tell
  them apart.
"""


class CliError(Exception):
    """A failure the command line explains itself: one ``error:`` line, then ``details``
    (indented lines, e.g. the candidates of an ambiguous name); exit code ``EXIT_ERROR``."""

    def __init__(self, message: str, details: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.details = tuple(details)


# -- output ------------------------------------------------------------------------------


def _secrets() -> list[str]:
    # The only credentials the CLI can hold are the environment's.
    values = (os.environ.get(ENV_API_KEY, ""), os.environ.get(ENV_SESSION_COOKIE, ""))
    return [value.strip() for value in values if len(value.strip()) >= 4]


def redact(text: str) -> str:
    """``text`` with any credential from the environment masked (defence in depth: nothing
    the CLI prints should contain one, but a server could echo one back)."""
    for secret in _secrets():
        text = text.replace(secret, "<redacted>")
    return text


def say(stream: TextIO, text: str) -> None:
    """Write one line of the CLI's own (redacted) output."""
    stream.write(redact(text) + "\n")
    stream.flush()


def note(text: str) -> None:
    """A ``hostup-pulumi: ...`` line on stderr (stdout is for results)."""
    say(sys.stderr, f"{PROG}: {text}")


def print_json(value: Any, *, indent: int | None = None) -> None:
    """One JSON document on stdout (redacted like every other line)."""
    say(sys.stdout, json.dumps(value, indent=indent))


def write_output(stream: TextIO, text: str) -> None:
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


def table(rows: Sequence[Sequence[str]]) -> list[str]:
    """Rows as left-aligned columns two spaces apart (the first row is the header)."""
    widths = [max(len(row[col]) for row in rows) for col in range(len(rows[0]))]
    cells = (zip(row, widths, strict=True) for row in rows)
    return ["  ".join(cell.ljust(width) for cell, width in row).rstrip() for row in cells]


def is_interactive(stream: TextIO) -> bool:
    """Whether ``stream`` is a terminal that understands cursor codes."""
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty()) and os.environ.get("TERM") != "dumb"


def _terminal_width(stream: TextIO) -> int:
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, OSError, ValueError):  # not a real terminal (or no fileno)
        return 80


def duration(seconds: float) -> str:
    """``7.5`` -> ``7.5s``, ``75`` -> ``1m15s`` (whole seconds from a minute on)."""
    if seconds < 60:
        return f"{max(0.0, seconds):.3g}s"
    whole = int(seconds)
    return f"{whole // 60}m{whole % 60:02d}s"


class Progress:
    """Elapsed time and state on stderr while a blocking client call runs.

    On a terminal, one line redrawn in place and erased at the end; otherwise (a CI log) a
    plain line after :data:`PLAIN_PROGRESS_FIRST` seconds and then every
    :data:`PLAIN_PROGRESS_EVERY` (none for a wait that ends sooner). The client's wait
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
        self._interactive = is_interactive(stream) if interactive is None else interactive
        self._clock = clock
        self._started = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def line(self) -> str:
        """The current status text."""
        elapsed = int(self._clock() - self._started)  # whole seconds: a steady display
        # Time first, so that it stays visible when a narrow terminal cuts the line.
        return (
            f"{PROG}: [{duration(elapsed)} of {duration(self._limit)}] {self._label}: {self._state}"
        )

    def _run(self) -> None:
        every = TTY_PROGRESS_EVERY if self._interactive else PLAIN_PROGRESS_EVERY
        wait = TTY_PROGRESS_EVERY if self._interactive else PLAIN_PROGRESS_FIRST
        while not self._stop.wait(wait):
            self._draw()
            wait = every

    def _draw(self) -> None:
        if self._interactive:
            # \r and "erase line": redraw in place. A line longer than the terminal would
            # wrap, and \r could not erase the wrapped part: cut it to the width.
            width = _terminal_width(self._stream)
            self._stream.write("\r\x1b[K" + redact(self.line())[: width - 1])
            self._stream.flush()
        else:
            say(self._stream, self.line())

    def __enter__(self) -> Progress:
        self._started = self._clock()
        if self._interactive:
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


# -- arguments -------------------------------------------------------------------------


def seconds(text: str) -> float:
    """argparse type: a positive, finite number of seconds (the library's own check)."""
    try:
        return validate_seconds(text, "SECONDS", text=True)
    except ValidationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


#: The largest pid the client accepts (signed 32 bits).
MAX_PID = 2**31 - 1


def pid(text: str) -> int:
    """argparse type: a pid, as ``exec`` printed it (a whole number from 1)."""
    if not text.isdigit() or not 1 <= int(text) <= MAX_PID:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a pid (a whole number from 1 to {MAX_PID}, as exec prints it)"
        )
    return int(text)


# -- running ---------------------------------------------------------------------------


def settings(args: argparse.Namespace) -> Settings:
    """The client's settings resolution (environment, ``--base-url``), with a message for
    a missing key that fits a command line."""
    resolved = Settings.resolve(base_url=args.base_url, require_credentials=False, where=Where.CLI)
    if not resolved.api_key and not resolved.session_cookie:
        raise ConfigurationError(
            f"no HostUp API key: set the {ENV_API_KEY} environment variable (create a key "
            "with the read:vm and write:vm scopes at https://cloud.hostup.se/api-management). "
            "The key is never taken on the command line, where shell history and ps show it"
        )
    return resolved


def exit_status(output: AgentExecOutput) -> int:
    """The process exit status for a finished command: its exit code when it fits."""
    code = output.exit_code
    if code is None:
        signal = output.signal
        if isinstance(signal, int) and 0 < signal < 128:
            return 128 + signal  # the shell's convention for "killed by a signal"
        note("HostUp reported the command as exited without an exit code")
        return EXIT_ERROR
    if 0 <= code <= 255:
        return code
    # Exit statuses are 8 bits; code % 256 could turn a failure into 0.
    note(f"the command exited with code {code}, which does not fit an exit status; using 255")
    return 255


def error_line(exc: BaseException) -> str:
    """One line: the error class, then the library's message (status, code, request id)."""
    return f"{PROG}: error: {type(exc).__name__}: {' '.join(str(exc).split())}"


@contextlib.contextmanager
def logging_to_stderr(verbose: bool) -> Iterator[None]:
    """Show the library's log on stderr while a subcommand runs, then put the logger back
    as it was (``main`` may be called in-process, e.g. by tests)."""
    # The library logs retries (warning) and, with -v, each request (debug): method, path,
    # status and request id, never credentials or command output.
    logger = logging.getLogger("hostup_pulumi")
    handler = logging.StreamHandler(sys.stderr)
    prefix = "\r\x1b[K" if is_interactive(sys.stderr) else ""  # over a progress line
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

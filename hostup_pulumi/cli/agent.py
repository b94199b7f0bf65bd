"""The guest-agent commands: ``agent-status``, ``exec`` and ``output``."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .._validation import validate_command
from ..client import DEFAULT_EXEC_TIMEOUT, HostupClient
from ..errors import CommandTimeoutError
from ..models import AgentAvailability, AgentExecOutput
from ._common import (
    EXIT_NO,
    EXIT_OK,
    EXIT_RUNNING,
    EXIT_TIMEOUT,
    PROG,
    Handler,
    Progress,
    exit_status,
    note,
    pid,
    print_json,
    say,
    seconds,
    write_output,
)
from .inventory import VPS_HELP, AddParser, Target, resolve_vps

# -- agent-status ------------------------------------------------------------------------


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


def agent_status(args: argparse.Namespace, client: HostupClient) -> int:
    """``agent-status``: exit 0 when command execution is available, 1 when not."""
    target = resolve_vps(client, args.vps)
    availability = client.get_agent_availability(target.id)
    waited = False
    if not availability.available and args.wait is not None:
        waited = True
        label = f"waiting for the guest agent on {target.label}"
        with Progress(sys.stderr, label, _unavailable_text(availability), limit=args.wait):
            try:
                availability = client.wait_for_agent_available(target.id, timeout=args.wait)
            except CommandTimeoutError as exc:
                availability = exc.last_availability or availability
    if args.json:
        print_json(_availability_json(target.id, availability))
    elif availability.available:
        say(sys.stdout, f"{target.label}: available")
    else:
        after = f" after waiting {args.wait:g}s" if waited else ""
        say(sys.stdout, f"{target.label}: {_unavailable_text(availability)}{after}")
    return EXIT_OK if availability.available else EXIT_NO


# -- exec and output -------------------------------------------------------------------


def _output_json(target: Target, pid: int, output: AgentExecOutput) -> dict[str, Any]:
    # The state and output always; then whatever else the API sent (truncated, signal,
    # unknown fields), under its wire name.
    record: dict[str, Any] = {
        "vpsId": target.id,
        "pid": pid,
        "exited": output.exited,
        "exitCode": output.exit_code,
        "stdout": output.stdout,
        "stderr": output.stderr,
    }
    sent = output.model_dump(mode="json", by_alias=True, exclude_unset=True)
    record.update({key: value for key, value in sent.items() if key not in record})
    return record


def _show(args: argparse.Namespace, target: Target, pid: int, output: AgentExecOutput) -> None:
    if args.json:
        print_json(_output_json(target, pid, output))
        return
    write_output(sys.stdout, output.stdout)
    write_output(sys.stderr, output.stderr)
    if output.truncated:
        note("HostUp reports that the output was truncated")


def _wait(args: argparse.Namespace, client: HostupClient, target: Target, pid: int) -> int:
    """Wait for ``pid`` with a progress line; show its output; return the exit status."""
    try:
        with Progress(sys.stderr, f"{target.label} pid {pid}", "running", limit=args.timeout):
            output = client.wait_for_agent_exec(target.id, pid, timeout=args.timeout)
    except CommandTimeoutError as exc:
        last = exc.last_output or AgentExecOutput(exited=False)
        _show(args, target, pid, last)  # whatever it printed so far
        note(
            f"command pid {pid} on {target.label} did not exit within {args.timeout:g}s; it "
            f"may still be running: `{PROG} output {target.id} {pid} --wait` waits again"
        )
        return EXIT_TIMEOUT
    except KeyboardInterrupt:
        note(f"stopped waiting; command pid {pid} on {target.label} may still be running")
        raise
    _show(args, target, pid, output)
    return exit_status(output)


def exec_command(args: argparse.Namespace, client: HostupClient) -> int:
    """``exec``: start a command; wait for it and exit with its exit code, or with
    ``--no-wait`` print its pid and poll URL and exit 0."""
    # Refuse a bad command before anything else, so that nothing is sent for it.
    command = validate_command(" ".join(args.command))
    target = resolve_vps(client, args.vps)
    availability = client.get_agent_availability(target.id)
    if not availability.available:
        note(
            f"guest-agent command execution on {target.label} is "
            f"{_unavailable_text(availability)}; "
            f"`{PROG} agent-status {target.id} --wait SECONDS` waits for it"
        )
        return EXIT_NO
    started = client.start_agent_exec(target.id, command)
    if args.no_wait:
        if args.json:
            print_json({"vpsId": target.id, "pid": started.pid, "pollUrl": started.poll_url})
        else:
            say(sys.stdout, f"started pid {started.pid} on {target.label}")
            if started.poll_url:
                say(sys.stdout, f"poll URL: {started.poll_url}")
            note(f"read its output with: {PROG} output {target.id} {started.pid} --wait")
        return EXIT_OK
    return _wait(args, client, target, started.pid)


def output_command(args: argparse.Namespace, client: HostupClient) -> int:
    """``output``: a command's output by pid; exit with its exit code, or 3 while it runs
    (without ``--wait``)."""
    target = resolve_vps(client, args.vps)
    if args.wait:
        return _wait(args, client, target, args.pid)
    output = client.get_agent_exec_output(target.id, args.pid)
    _show(args, target, args.pid, output)  # all of it, or what there is so far
    if output.exited:
        return exit_status(output)
    note(
        f"command pid {args.pid} on {target.label} is still running; "
        f"`{PROG} output {target.id} {args.pid} --wait` waits for it to exit"
    )
    return EXIT_RUNNING


# -- arguments -------------------------------------------------------------------------


def register(add: AddParser) -> dict[str, tuple[argparse.ArgumentParser, Handler]]:
    """Add ``agent-status``, ``exec`` and ``output`` through ``add(name, summary, text)``."""
    status = add(
        "agent-status",
        "is guest-agent command execution available on a VPS? (exit 0 yes, 1 no)",
        "Probe whether QEMU guest-agent command execution is available on VPS: exit 0 "
        "when it is, 1 when not (with HostUp's reason), 2 on an error. A deploy gate for CI.",
    )
    status.add_argument("vps", metavar="VPS", help=VPS_HELP)
    status.add_argument(
        "--wait",
        type=seconds,
        metavar="SECONDS",
        help="poll until available, for at most SECONDS (a VM still booting)",
    )

    run = add(
        "exec",
        "run a command in a VPS and exit with its exit code",
        "Probe availability, start COMMAND in VPS through the guest agent, wait for it, "
        "print its stdout and stderr, and exit with its exit code. Words after -- are joined "
        "with spaces into one command string for the guest's shell, as ssh does. With "
        "--no-wait, print the pid and poll URL and exit 0 at once; read the output later "
        f"with `{PROG} output VPS PID`.",
    )
    run.add_argument("vps", metavar="VPS", help=VPS_HELP)
    run.add_argument("command", nargs="*", metavar="COMMAND", help="the command (after --)")
    run.add_argument(
        "--timeout",
        type=seconds,
        metavar="SECONDS",
        help=f"wait at most SECONDS for the command to exit (default {DEFAULT_EXEC_TIMEOUT:g})",
    )
    run.add_argument(
        "--no-wait",
        action="store_true",
        help="start the command, print its pid and poll URL, and exit 0 without waiting",
    )

    read = add(
        "output",
        "read a started command's output by pid",
        "Read the state and output of command PID on VPS (as exec --no-wait printed it): "
        "stdout to stdout, stderr to stderr, and exit with the command's exit code. If it "
        "is still running: with --wait, wait for it; without, say so and exit 3.",
    )
    read.add_argument("vps", metavar="VPS", help=VPS_HELP)
    read.add_argument("pid", metavar="PID", type=pid, help="the pid exec printed")
    read.add_argument(
        "--wait", action="store_true", help="wait for the command to exit (see --timeout)"
    )
    read.add_argument(
        "--timeout",
        type=seconds,
        metavar="SECONDS",
        help=f"with --wait: wait at most SECONDS (default {DEFAULT_EXEC_TIMEOUT:g})",
    )
    return {
        "agent-status": (status, agent_status),
        "exec": (run, exec_command),
        "output": (read, output_command),
    }


def check(name: str, parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Usage checks that span options; fill in the default timeout."""
    if name == "exec" and args.no_wait and args.timeout is not None:
        parser.error("--timeout does not apply with --no-wait")
    if name == "output" and not args.wait and args.timeout is not None:
        parser.error("--timeout applies only with --wait")
    if name in ("exec", "output") and args.timeout is None:
        args.timeout = DEFAULT_EXEC_TIMEOUT

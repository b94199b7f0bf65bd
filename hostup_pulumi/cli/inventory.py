"""``list-vps``, and turning a VPS argument (id, name or primary IP) into a ``vps_...`` id."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..client import HostupClient
from ..models import Vps
from ._common import EXIT_NO, EXIT_OK, PROG, CliError, Handler, note, print_json, say, table

_log = logging.getLogger("hostup_pulumi.cli")

#: Help text of every VPS argument.
VPS_HELP = "the VPS: its vps_... id, display name or primary IP (see list-vps)"
_LIST_HINT = f"`{PROG} list-vps` lists the VPSes with their ids, names and primary IPs"


@dataclass(frozen=True)
class Target:
    """A VPS argument, resolved."""

    #: The ``vps_...`` id to call the API with.
    id: str
    #: How output names it: the id, or ``name (id)`` when a name or IP was given.
    label: str


def resolve_vps(client: HostupClient, text: str) -> Target:
    """The VPS that ``text`` names: a ``vps_...`` id as it is (the client checks its shape),
    else the one VPS with that primary IP (``text`` is an IP address) or that display name.

    Raises :class:`CliError` when none or several match; the message says how to list VPSes,
    or lists the candidates (id, name, primary IP).
    """
    if text.startswith("vps_"):
        return Target(text, text)
    wanted = text.strip()
    if not wanted:
        raise CliError(f"the VPS is empty: give its vps_... id, name or primary IP ({_LIST_HINT})")
    try:
        address = ipaddress.ip_address(wanted)
    except ValueError:
        matches = list(client.list_vps(name=wanted))
        one = f"is named {wanted!r} (names match exactly, ignoring case)"
        many = f"are named {wanted!r}"
    else:
        wanted = str(address)  # the canonical form (RFC 5952 for IPv6)
        matches = list(client.list_vps(primary_ip=wanted))
        one, many = f"has the primary IP {wanted}", f"have the primary IP {wanted}"
    if not matches:
        raise CliError(f"no VPS {one}; {_LIST_HINT}")
    if len(matches) > 1:
        rows = [("ID", "NAME", "PRIMARY IP")]
        rows += [(v.id, v.name or "-", v.primary_ip or "-") for v in matches]
        raise CliError(
            f"{len(matches)} VPSes {many}; give the id of the one you mean:",
            ["  " + line for line in table(rows)],
        )
    found = matches[0].id
    _log.debug("%s is %s", wanted, found)
    return Target(found, f"{wanted} ({found})")


def _rows(vpses: Sequence[Vps]) -> list[str]:
    rows = [("ID", "NAME", "PRIMARY IP", "POWER STATE")]
    rows += [(v.id, v.name or "-", v.primary_ip or "-", v.power_state or "-") for v in vpses]
    return table(rows)


def list_vps(args: argparse.Namespace, client: HostupClient) -> int:
    """``list-vps``: a table (or the API's records as JSON); exit 1 when nothing matched."""
    vpses = list(client.list_vps(name=args.name, primary_ip=args.primary_ip))
    if args.json:
        print_json([vps.model_dump(mode="json", by_alias=True) for vps in vpses], indent=2)
    elif vpses:
        for line in _rows(vpses):
            say(sys.stdout, line)
    if not vpses:
        note("no VPS matched" if args.name or args.primary_ip else "the account has no VPS")
        return EXIT_NO
    return EXIT_OK


AddParser = Callable[[str, str, str], argparse.ArgumentParser]


def register(add: AddParser) -> dict[str, tuple[argparse.ArgumentParser, Handler]]:
    """Add ``list-vps`` through ``add(name, summary, description)``."""
    listing = add(
        "list-vps",
        "list VPSes (id, name, primary IP, power state)",
        "List the account's VPSes (id, name, primary IP, power state); exit 1 when none "
        "match. With --json, the API's records.",
    )
    listing.add_argument("--name", help="exact display name (case-insensitive)")
    listing.add_argument("--primary-ip", metavar="IP", help="exact primary IP address")
    return {"list-vps": (listing, list_vps)}

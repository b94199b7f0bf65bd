"""What the client checks of ``GET /api/v2/vps`` itself, whatever the server claims.

The ``name`` and ``primaryIp`` query filters are hints that save traffic; the documentation
does not promise that they are honoured, so every page is filtered again here (sync and async
alike, through the core). A tool that names a VPS must never name the wrong one. The same for
the rest of what a list claims: an item's ``id`` must be a ``vps_...`` id, and a page that
says there is more must give a cursor that was not given before. Each broken claim is an
:class:`~hostup_pulumi.errors.APIResponseValidationError` that says so, never a loop or a
silently shorter list.
"""

from __future__ import annotations

import ipaddress

from .errors import APIResponseValidationError
from .models import Vps, VpsPage

__all__ = ["checked_page", "next_cursor"]

_PATH = "/api/v2/vps"


def _invalid(message: str) -> APIResponseValidationError:
    return APIResponseValidationError(f"GET {_PATH} {message}", method="GET", path=_PATH)


def _same_ip(found: str | None, wanted: str) -> bool:
    if found is None:
        return False
    try:  # 2001:db8::1 and 2001:DB8:0::1 are one address
        return ipaddress.ip_address(found) == ipaddress.ip_address(wanted)
    except ValueError:
        return found == wanted


def _matches(vps: Vps, name: str | None, primary_ip: str | None) -> bool:
    if name is not None and (vps.name is None or vps.name.casefold() != name.casefold()):
        return False
    return primary_ip is None or _same_ip(vps.primary_ip, primary_ip)


def checked_page(page: VpsPage, name: str | None, primary_ip: str | None) -> VpsPage:
    """``page`` with only the VPSes that match the filters asked for (``name``
    case-insensitive, ``primary_ip`` as an address); an item whose id is not a VPS id fails."""
    for vps in page.data:
        if not vps.id.startswith("vps_") or len(vps.id) <= len("vps_"):
            raise _invalid(
                f"returned an item whose id {vps.id[:80]!r} is not a VPS id (vps_...); "
                "stopping rather than guessing which VPS it is"
            )
    if name is None and primary_ip is None:
        return page
    kept = [vps for vps in page.data if _matches(vps, name, primary_ip)]
    return page if len(kept) == len(page.data) else page.model_copy(update={"data": kept})


def next_cursor(page: VpsPage, seen: set[str], max_pages: int) -> str | None:
    """The cursor of the next page (``None``: this was the last), recorded in ``seen``. A page
    that claims more without a cursor, a cursor given before (a loop), or more than
    ``max_pages`` pages fail."""
    if not page.has_more:
        return None
    cursor = page.next_cursor
    if not cursor:
        raise _invalid(
            "said there are more VPSes (hasMore) but gave no nextCursor; "
            "stopping instead of returning an incomplete list"
        )
    if cursor in seen:
        raise _invalid(f"returned the cursor {cursor!r} twice; stopping instead of looping")
    if len(seen) + 1 >= max_pages:
        raise _invalid(f"gave more than {max_pages} pages; stopping")
    seen.add(cursor)
    return cursor

"""The request log: what was asked, never with which credentials."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# Query parameters whose values could be secrets if a client misplaced a key there.
_SECRET_PARAMS = frozenset({"key", "api_key", "apikey", "token", "access_token", "session"})
REDACTED = "[redacted]"


@dataclass(frozen=True)
class RecordedRequest:
    """One request the simulator received. Holds no header values, keys or cookies."""

    method: str
    path: str
    query: dict[str, str] = field(hash=False)
    #: Status sent, or ``None`` when the connection was dropped without a response.
    status: int | None
    #: Route name: probe, exec_output, exec_start, list_vps, get_vps or unknown.
    route: str
    #: Epoch time the request was received.
    time: float
    #: Whether an Authorization header or a hostup_session cookie was present.
    has_auth: bool
    #: The account of the credential presented, or ``None`` when there was no known one.
    account: str | None = None
    #: ``HostupSimulator.key_label`` of the API key (or session cookie) presented, known or
    #: not: a short hash prefix that tells keys apart and cannot be turned back into one.
    key_label: str | None = None
    #: The VPS id in the path, if any.
    vps_id: str | None = None
    #: The account that owns that VPS (``None``: no such VPS). A request whose ``account``
    #: differs from it used another account's key on this VPS (and was answered 404).
    vps_account: str | None = None


def redact_query(query: Mapping[str, str]) -> dict[str, str]:
    """Copy ``query``, hiding values of parameters that look like credentials."""
    return {k: REDACTED if k.lower() in _SECRET_PARAMS else v for k, v in query.items()}


class RequestLog:
    """A thread-safe, append-only list of ``RecordedRequest``."""

    def __init__(self) -> None:
        """Create an empty log."""
        self._lock = threading.Lock()
        self._items: list[RecordedRequest] = []

    def append(self, item: RecordedRequest) -> None:
        """Record one request."""
        with self._lock:
            self._items.append(item)

    def snapshot(self) -> list[RecordedRequest]:
        """Return a copy of everything recorded so far."""
        with self._lock:
            return list(self._items)

    def clear(self) -> None:
        """Forget every recorded request."""
        with self._lock:
            self._items.clear()

    def totals(self) -> tuple[dict[str, int], dict[str, int]]:
        """Count recorded requests by route and by status (``"dropped"`` for no response)."""
        by_route: dict[str, int] = {}
        by_status: dict[str, int] = {}
        with self._lock:
            for item in self._items:
                by_route[item.route] = by_route.get(item.route, 0) + 1
                status = "dropped" if item.status is None else str(item.status)
                by_status[status] = by_status.get(status, 0) + 1
        return by_route, by_status

    def stats(self, connections: int, since: float | None = None) -> dict[str, Any]:
        """What ``GET /_simulator/stats`` answers: ``requests``, ``byRoute``, ``byStatus``,
        ``connectionsOpened`` and, with ``since``, :meth:`window`."""
        by_route, by_status = self.totals()
        stats: dict[str, Any] = {
            "requests": sum(by_route.values()),
            "byRoute": by_route,
            "byStatus": by_status,
            "connectionsOpened": connections,
        }
        if since is not None:
            stats["since"] = self.window(since)
        return stats

    def window(self, since: float) -> dict[str, Any]:
        """The requests received at or after epoch time ``since``: how many, and when the
        first and the last of them arrived (``None`` when there were none)."""
        with self._lock:
            times = [item.time for item in self._items if item.time >= since]
        return {"requests": len(times), "firstAt": min(times, default=None),
                "lastAt": max(times, default=None)}  # fmt: skip

    def count(self, route: str | None = None, method: str | None = None) -> int:
        """Count recorded requests, optionally only one route and/or method."""
        with self._lock:
            return sum(
                1
                for item in self._items
                if (route in (None, "*", item.route))
                and (method is None or item.method == method.upper())
            )

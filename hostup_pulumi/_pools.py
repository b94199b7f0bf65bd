"""The async client's connections, spread over several small httpx pools.

httpcore's pool re-examines every connection it holds each time a request enters or leaves it
(closed? expired? -- a ``poll`` of each idle socket -- and, for each idle one, a count of all
the idle ones), so the CPU one request costs grows with the square of the pool's size. At the
client's default of 16 connections that was over half of an availability call's CPU
(400 calls, 0 ms server: 2.6 ms per call in one pool of 16, 1.2 ms in four pools of 4). The
requests in flight stay bounded by the client's own slots; this only decides which pool
carries each one.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable

import httpx

__all__ = ["POOL_SIZE", "AsyncPools"]

# Connections per pool: the measured knee (per-call CPU at 1, 2, 4, 8 and 16 connections:
# 1.07, 1.07, 1.12, 1.39 and 2.57 ms).
POOL_SIZE = 4


class AsyncPools:
    """``max_connections`` connections as pools of at most :data:`POOL_SIZE`.

    ``make(limits, verify)`` builds one ``httpx.AsyncClient``. A caller-supplied transport is
    one pool of its own (it manages its own connections, if any).
    """

    def __init__(
        self,
        max_connections: int,
        make: Callable[[httpx.Limits, ssl.SSLContext | bool], httpx.AsyncClient],
        *,
        single: bool = False,
    ) -> None:
        sizes = [max_connections] if single else _split(max_connections)
        # One TLS context for all of them: building one loads the CA bundle (about 20 ms).
        verify: ssl.SSLContext | bool = True if single else httpx.create_ssl_context()
        self._clients = [
            make(httpx.Limits(max_connections=size, max_keepalive_connections=size), verify)
            for size in sizes
        ]
        self._room = list(sizes)

    def acquire(self) -> int:
        """The index of the first pool with a free connection: later pools are used only
        while the earlier ones are busy, so the client keeps to as few connections (and
        warm ones) as its load needs. If none is free (more requests than connections),
        the least busy; httpcore queues the request there."""
        free = [i for i, room in enumerate(self._room) if room > 0]
        index = free[0] if free else max(range(len(self._room)), key=self._room.__getitem__)
        self._room[index] -= 1
        return index

    def client(self, index: int) -> httpx.AsyncClient:
        """The pool at ``index``."""
        return self._clients[index]

    def release(self, index: int) -> None:
        """Give back what :meth:`acquire` took."""
        self._room[index] += 1

    async def aclose(self) -> None:
        """Close every pool."""
        for client in self._clients:
            await client.aclose()


def _split(total: int) -> list[int]:
    """``total`` connections as pools of POOL_SIZE, the last one smaller if it must be."""
    full, rest = divmod(total, POOL_SIZE)
    return [POOL_SIZE] * full + ([rest] if rest else [])

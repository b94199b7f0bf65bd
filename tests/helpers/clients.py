"""The one way to call a client method as the sync or the async client."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping
from typing import Any

import httpx

from hostup_pulumi import AsyncHostupClient, HostupClient, HostupError

from .clock import FakeClock

KINDS = ("sync", "async")
#: One TLS context for every client these helpers build: making one per client costs ~20 ms.
_SSL = ssl.create_default_context()


def call(
    kind: str,
    method: str,
    *args: Any,
    client: Mapping[str, Any],
    clock: FakeClock | None = None,
    **kwargs: Any,
) -> Any:
    """Call ``method`` on a fresh client of ``kind`` ("sync" or "async") built with the
    keyword arguments ``client``, closed after; ``list_vps`` is read to a list. With
    ``clock``, the client runs on that fake clock (its sleeps move the clock instead of
    taking time). Returns the result, or the HostupError raised."""
    options = dict(client)
    if clock is not None:
        options["clock"] = clock
        options["sleep"] = clock.sleep if kind == "sync" else clock.async_sleep
    if kind == "sync":
        options.setdefault("transport", httpx.HTTPTransport(verify=_SSL))
        with HostupClient(**options) as sync_client:
            try:
                result = getattr(sync_client, method)(*args, **kwargs)
                return list(result) if method == "list_vps" else result
            except HostupError as exc:
                return exc

    async def run() -> Any:
        options.setdefault("transport", httpx.AsyncHTTPTransport(verify=_SSL))
        async with AsyncHostupClient(**options) as async_client:
            try:
                if method == "list_vps":
                    return [vps async for vps in async_client.list_vps(*args, **kwargs)]
                return await getattr(async_client, method)(*args, **kwargs)
            except HostupError as exc:
                return exc

    return asyncio.run(run())

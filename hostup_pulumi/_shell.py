"""What the two clients' shells share: settings and repr, the read response that a ``Send``
step hands back to its flow, and a workaround for httpcore's async requests.

:mod:`hostup_pulumi.client` holds the two public clients; each carries out the core's steps
with its own I/O (blocking or awaited) on top of this.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from collections.abc import Callable

import httpx

from ._core import Core
from ._pacing import PollSchedule
from ._retry import RetryPolicy
from .errors import ValidationError
from .settings import Settings

__all__ = ["ClientBase", "completed"]

# httpcore runs `import sniffio` on every async request. Where sniffio is not installed (it is
# optional) each of those is a failed search of the whole sys.path, about a quarter of an async
# call's CPU (bench: 400 calls 1.93 s -> 1.42 s). Marking it absent makes the same import fail
# at once, with the same outcome.
if importlib.util.find_spec("sniffio") is None:
    sys.modules.setdefault("sniffio", None)  # type: ignore[arg-type]


def completed(streamed: httpx.Response, raw: bytearray) -> httpx.Response:
    """A read response from a streamed one and its raw body (decoded by its headers)."""
    read = httpx.Response(
        streamed.status_code,
        headers=streamed.headers,
        content=bytes(raw),
        request=streamed.request,
        extensions=streamed.extensions,
    )
    # httpx binds a streamed response and its stream to each other: a reference cycle that
    # only the garbage collector frees (about 40 objects a request, each a push towards a
    # full collection in a big Pulumi program). The stream is closed and no longer needed.
    streamed.stream = httpx.ByteStream(b"")
    return read


class ClientBase:
    """Settings resolution and repr, shared by both clients."""

    def __init__(
        self,
        api_key: str | None,
        base_url: str | None,
        session_cookie: str | None,
        timeout: float | None,
        max_retries: int | None,
        settings: Settings | None,
        retry: RetryPolicy | None,
        poll: PollSchedule | None,
        clock: Callable[[], float] | None,
    ) -> None:
        if settings is None:
            settings = Settings.resolve(
                api_key=api_key,
                base_url=base_url,
                session_cookie=session_cookie,
                timeout=timeout,
                max_retries=max_retries,
            )
        self._core = Core(settings, retry=retry, poll=poll, clock=clock or time.monotonic)

    def _concurrency(self, max_concurrency: int | None) -> int:
        """``max_concurrency`` checked, or the settings' value when None."""
        if max_concurrency is None:
            return self._core.settings.max_concurrency
        ok = isinstance(max_concurrency, int) and not isinstance(max_concurrency, bool)
        if not ok or max_concurrency < 1:
            raise ValidationError(
                f"max_concurrency must be a positive integer, got {max_concurrency!r}"
            )
        return max_concurrency

    @property
    def settings(self) -> Settings:
        """The resolved settings (credentials hidden from repr)."""
        return self._core.settings

    @property
    def base_url(self) -> str:
        """The API base URL in use."""
        return self._core.settings.base_url

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r})"

"""Token-bucket rate limiting per principal, with the HostUp 429 headers."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from .ids import iso_utc


@dataclass(frozen=True)
class RateDecision:
    """The outcome of one rate-limit check."""

    allowed: bool
    limit: int
    remaining: int
    #: Epoch time when the window resets (full bucket, or the next token when denied).
    reset_at: float
    #: Whole seconds to wait, at least 1; only meaningful when denied.
    retry_after: int

    def headers(self) -> dict[str, str]:
        """Return the X-RateLimit-* (and, when denied, Retry-After) headers."""
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": iso_utc(self.reset_at),
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.retry_after)
        return headers


class RateLimiter:
    """Per-principal token buckets: ``rate`` requests/s, bursts of ``burst``; None is off."""

    def __init__(
        self, rate: float | None, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        """Create a limiter; see ``configure``."""
        self._lock = threading.Lock()
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # identity -> (tokens, stamp)
        self._rate: float | None = None
        self._burst = 10
        self.configure(rate, burst)

    @property
    def burst(self) -> int:
        """Bucket capacity, reported as ``X-RateLimit-Limit``."""
        return self._burst

    def configure(self, rate: float | None, burst: int) -> None:
        """Change the limits and start every bucket full again."""
        if rate is not None and rate <= 0:
            raise ValueError("rate must be positive (or None to disable rate limiting)")
        if burst < 1:
            raise ValueError("burst must be at least 1")
        with self._lock:
            self._rate, self._burst = rate, burst
            self._buckets.clear()

    def check(self, identity: str) -> RateDecision | None:
        """Spend one token of ``identity``'s bucket; ``None`` when limiting is off."""
        with self._lock:
            rate, burst = self._rate, self._burst
            if rate is None:
                return None
            now = self._clock()
            tokens, stamp = self._buckets.get(identity, (float(burst), now))
            tokens = min(float(burst), tokens + (now - stamp) * rate)
            allowed = tokens >= 1.0
            if allowed:
                tokens -= 1.0
                wait = (burst - tokens) / rate
            else:
                wait = (1.0 - tokens) / rate
            self._buckets[identity] = (tokens, now)
        return RateDecision(
            allowed=allowed,
            limit=burst,
            remaining=math.floor(tokens),
            reset_at=time.time() + wait,
            retry_after=max(1, math.ceil(wait)),
        )

"""Identifiers and timestamps in the shapes the HostUp API v2 uses."""

from __future__ import annotations

import re
import secrets
import time
from datetime import datetime, timezone

# Crockford base32, lowercase: the alphabet of ULIDs (no i, l, o, u).
_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"

#: Shape of a public VPS id: ``vps_`` then 26 lowercase alphanumerics.
VPS_ID_RE = re.compile(r"vps_[0-9a-z]{26}")


def ulid_like(now: float | None = None) -> str:
    """Return 26 ULID-like characters: a 48-bit millisecond time then 80 random bits."""
    millis = int((time.time() if now is None else now) * 1000) & ((1 << 48) - 1)
    value = (millis << 80) | secrets.randbits(80)
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def new_vps_id() -> str:
    """Return a fresh ``vps_...`` id."""
    return "vps_" + ulid_like()


def new_request_id() -> str:
    """Return a fresh ``req_...`` id, as found in problem bodies and ``X-Request-Id``."""
    return "req_" + ulid_like()


def iso_utc(epoch: float | None = None) -> str:
    """Format an epoch time as ISO 8601 UTC with milliseconds and ``Z``."""
    moment = datetime.fromtimestamp(time.time() if epoch is None else epoch, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"

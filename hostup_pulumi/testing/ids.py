"""Identifiers and timestamps in the shapes the HostUp API v2 uses."""

from __future__ import annotations

import hashlib
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
    return _encode((millis << 80) | secrets.randbits(80))


def _encode(value: int) -> str:
    # 26 characters of 5 bits each, most significant first (a 128-bit value starts 0-7,
    # as a ULID does).
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def new_vps_id() -> str:
    """Return a fresh ``vps_...`` id."""
    return "vps_" + ulid_like()


def stable_vps_id(seed: str, index: int) -> str:
    """Return the ``vps_...`` id for (``seed``, ``index``): the same on every run.

    128 bits of SHA-256 over both, in the ULID alphabet, so ids of generated VPSes survive a
    simulator restart (a stack's state and a test's expectations stay valid) while different
    seeds or indexes give different ids.
    """
    digest = hashlib.sha256(f"hostup-simulator-vps\0{seed}\0{index}".encode()).digest()
    return "vps_" + _encode(int.from_bytes(digest[:16], "big"))


def credential_label(secret: str) -> str:
    """Return a short, non-reversible label of an API key or session cookie.

    ``sha256:`` and the first 12 hex digits of the secret's SHA-256: enough to tell the
    credentials of a test apart in the request log, never enough to recover one.
    """
    return "sha256:" + hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()[:12]


def new_request_id() -> str:
    """Return a fresh ``req_...`` id, as found in problem bodies and ``X-Request-Id``."""
    return "req_" + ulid_like()


def iso_utc(epoch: float | None = None) -> str:
    """Format an epoch time as ISO 8601 UTC with milliseconds and ``Z``."""
    moment = datetime.fromtimestamp(time.time() if epoch is None else epoch, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"

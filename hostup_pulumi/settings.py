"""Settings: credentials, base URL, timeouts and retries, and where each comes from.

Resolution order, first match wins: explicit argument, Pulumi config (``hostup:apiKey``,
``hostup:baseUrl``, ``hostup:timeout``, ``hostup:maxRetries``, ``hostup:maxConcurrency``,
``hostup:sessionCookie``), then the environment (``HOSTUP_API_KEY``, ``HOSTUP_BASE_URL``,
``HOSTUP_SESSION_COOKIE``, ``HOSTUP_MAX_CONCURRENCY``). The credentials are
never shown by ``repr()`` or ``str()``.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ._advice import Where
from ._validation import validate_seconds
from .errors import ConfigurationError

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_TIMEOUT",
    "Settings",
]

DEFAULT_BASE_URL = "https://cloud.hostup.se"
DEFAULT_TIMEOUT = 30.0
DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_MAX_RETRIES = 2
_MAX_RETRIES_LIMIT = 10

# Pulumi config keys (namespaced, as both pulumi.Config and a dynamic provider's configure()
# see them) and environment variables.
CONFIG_API_KEY = "hostup:apiKey"
CONFIG_BASE_URL = "hostup:baseUrl"
CONFIG_TIMEOUT = "hostup:timeout"
CONFIG_MAX_RETRIES = "hostup:maxRetries"
CONFIG_SESSION_COOKIE = "hostup:sessionCookie"
CONFIG_MAX_CONCURRENCY = "hostup:maxConcurrency"
CONFIG_KEYS = (
    CONFIG_API_KEY, CONFIG_BASE_URL, CONFIG_TIMEOUT, CONFIG_MAX_RETRIES, CONFIG_SESSION_COOKIE,
    CONFIG_MAX_CONCURRENCY,
)  # fmt: skip
ENV_API_KEY = "HOSTUP_API_KEY"
ENV_BASE_URL = "HOSTUP_BASE_URL"
ENV_SESSION_COOKIE = "HOSTUP_SESSION_COOKIE"
ENV_MAX_CONCURRENCY = "HOSTUP_MAX_CONCURRENCY"
DEFAULT_MAX_CONCURRENCY = 16
_MAX_CONCURRENCY_LIMIT = 256

NO_CREDENTIALS = (
    "No HostUp credentials. In a Pulumi program (the hostup functions and resources, and "
    "hostup.program_client()): `pulumi config set --secret hostup:apiKey <key>`. Anywhere: "
    "the HOSTUP_API_KEY environment variable, or HostupClient(api_key=...). "
    "Keys are created at https://cloud.hostup.se/api-management"
)


def _check_secret(name: str, value: str | None) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigurationError(f"{name} must be a string, not {type(value).__name__}")
    value = value.strip()
    if not value:
        return None
    # A CR/LF in a header value could split the request; say so without echoing the secret.
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        raise ConfigurationError(
            f"{name} contains a control character (such as a newline); "
            "copy the key again without line breaks"
        )
    if not value.isascii():
        raise ConfigurationError(f"{name} contains non-ASCII characters; copy the key again")
    return value


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _host_and_port(netloc: str) -> str:
    # The netloc without a user or password, which must never be quoted back.
    return netloc.rpartition("@")[2]


def _suggest_a_scheme(url: str) -> None:
    """``127.0.0.1:34861`` or ``api.example.com``: a host (and port) without its scheme.
    Say which URL was meant: http for a loopback address (the simulator), else https."""
    if "://" in url or "@" in url:
        return
    try:
        parts = urlsplit("//" + url)
        host, _ = parts.hostname, parts.port
    except ValueError:
        return
    if host and ("." in host or ":" in host or host == "localhost"):
        scheme = "http" if _is_loopback(host) else "https"
        where = _host_and_port(parts.netloc)
        raise ConfigurationError(
            f"base URL {where} has no scheme, so it is not an http(s) URL; use {scheme}://{where}"
        )


def _check_base_url(url: str) -> str:
    # Messages name the scheme and host only: the URL itself could carry a credential.
    url = url.strip().rstrip("/")
    # Whitespace or a control character inside would be dropped by urlsplit or reach the
    # request line (CR/LF): refuse them rather than send something else than was written.
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        raise ConfigurationError(
            "base URL contains whitespace or a control character (such as a line break); "
            f"use e.g. {DEFAULT_BASE_URL}"
        )
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:  # e.g. an unclosed [IPv6 address
        raise ConfigurationError(
            f"base URL is not a valid URL; use e.g. {DEFAULT_BASE_URL}"
        ) from None
    if parts.scheme not in ("https", "http") or not host:
        _suggest_a_scheme(url)
        scheme = f"scheme {parts.scheme!r}" if parts.scheme else "no scheme"
        raise ConfigurationError(
            f"base URL with {scheme} and {f'host {host!r}' if host else 'no host'} is not an "
            f"http(s) URL; use e.g. {DEFAULT_BASE_URL}"
        )
    # Plain http would send the key in clear text: allowed for a local simulator only.
    if parts.scheme == "http" and not _is_loopback(host):
        where = _host_and_port(parts.netloc)
        raise ConfigurationError(
            f"base URL http://{where} uses plain http; use https://{where} (plain http is "
            "allowed only for loopback addresses such as the local simulator)"
        )
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ConfigurationError(
            f"base URL for host {host!r} must not carry credentials, a query or a fragment"
        )
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:  # not a number, out of range, or 0 (which no server listens on)
        raise ConfigurationError(
            f"base URL for host {host!r} has an invalid port; use e.g. https://{host}:8443"
        )
    return url


def _check_cookie(value: str | None) -> str | None:
    # A ';' or ',' would add cookies of its own to the Cookie header; no session value has them.
    if value is not None and any(ch in value for ch in ';,"\\ '):
        raise ConfigurationError(
            "the session cookie contains ';', ',', a quote, a backslash or a space; copy only "
            "the value of the hostup_session cookie"
        )
    return value


def _check_int(name: str, value: float | str, low: int, high: int) -> int:
    if isinstance(value, float) and not value.is_integer():
        raise ConfigurationError(f"{name} must be a whole number, got {value!r}")
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigurationError(f"{name} must be a whole number, got {value!r}") from None
    if isinstance(value, bool) or not low <= number <= high:
        raise ConfigurationError(f"{name} must be between {low} and {high}, got {value!r}")
    return number


@dataclass(frozen=True)
class Settings:
    """Resolved client settings. Build with :meth:`resolve`; credentials stay out of reprs."""

    api_key: str | None = field(default=None, repr=False)
    session_cookie: str | None = field(default=None, repr=False)
    base_url: str = DEFAULT_BASE_URL
    timeout: float = DEFAULT_TIMEOUT
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    max_retries: int = DEFAULT_MAX_RETRIES
    #: Requests in flight at once per async client (the sync client sends one at a time).
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    #: Where the client runs: errors give the advice that fits there (``_advice``).
    where: Where = Where.PROGRAM

    def __repr__(self) -> str:
        return (
            f"Settings(api_key={'<set>' if self.api_key else None}, "
            f"session_cookie={'<set>' if self.session_cookie else None}, "
            f"base_url={self.base_url!r}, timeout={self.timeout}, "
            f"connect_timeout={self.connect_timeout}, max_retries={self.max_retries}, "
            f"max_concurrency={self.max_concurrency}, where={self.where.value!r})"
        )

    __str__ = __repr__

    @classmethod
    def resolve(
        cls,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        session_cookie: str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        max_concurrency: int | None = None,
        config: Mapping[str, str] | None = None,
        env: Mapping[str, str] | None = None,
        require_credentials: bool = True,
        where: Where = Where.PROGRAM,
    ) -> Settings:
        """Resolve each setting: explicit argument, then Pulumi ``config``, then ``env``.

        ``config`` maps namespaced keys (``hostup:apiKey``) to strings; ``env`` defaults to
        ``os.environ``. Raises :class:`ConfigurationError` when there are no credentials
        (unless ``require_credentials`` is false) or a value is invalid. ``where`` says where
        the client runs, so that its errors advise what works there.
        """
        config = config or {}
        env = os.environ if env is None else env

        def pick(explicit: object, config_key: str, env_key: str | None) -> Any:
            if explicit is not None:
                return explicit
            if config.get(config_key) not in (None, ""):
                return config[config_key]
            if env_key and env.get(env_key):
                return env[env_key]
            return None

        key = _check_secret("the API key", pick(api_key, CONFIG_API_KEY, ENV_API_KEY))
        cookie = _check_cookie(
            _check_secret(
                "the session cookie",
                pick(session_cookie, CONFIG_SESSION_COOKIE, ENV_SESSION_COOKIE),
            )
        )
        if require_credentials and not key and not cookie:
            raise ConfigurationError(NO_CREDENTIALS)
        url = pick(base_url, CONFIG_BASE_URL, ENV_BASE_URL)
        seconds = pick(timeout, CONFIG_TIMEOUT, None)
        retries = pick(max_retries, CONFIG_MAX_RETRIES, None)
        concurrency = pick(max_concurrency, CONFIG_MAX_CONCURRENCY, ENV_MAX_CONCURRENCY)
        timeout_s = DEFAULT_TIMEOUT
        if seconds is not None:
            timeout_s = validate_seconds(seconds, text=True, error=ConfigurationError)
        return cls(
            api_key=key,
            session_cookie=cookie,
            base_url=_check_base_url(str(url)) if url is not None else DEFAULT_BASE_URL,
            timeout=timeout_s,
            connect_timeout=min(DEFAULT_CONNECT_TIMEOUT, timeout_s),
            max_retries=DEFAULT_MAX_RETRIES
            if retries is None
            else _check_int("max_retries", retries, 0, _MAX_RETRIES_LIMIT),
            max_concurrency=DEFAULT_MAX_CONCURRENCY
            if concurrency is None
            else _check_int("max_concurrency", concurrency, 1, _MAX_CONCURRENCY_LIMIT),
            where=where,
        )

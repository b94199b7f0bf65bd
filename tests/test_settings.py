"""Settings (settings.py): where each setting comes from, and what is refused."""

from __future__ import annotations

import pytest

from hostup_pulumi import ConfigurationError, Settings
from hostup_pulumi.settings import DEFAULT_BASE_URL, DEFAULT_MAX_RETRIES, DEFAULT_TIMEOUT

KEY = "hk_live_0123456789abcdef"


def resolve(**kwargs: object) -> Settings:
    kwargs.setdefault("env", {})
    return Settings.resolve(**kwargs)  # type: ignore[arg-type]


# -- resolution order -----------------------------------------------------------------------


def test_explicit_beats_config_beats_env() -> None:
    config = {"hostup:apiKey": "from-config", "hostup:baseUrl": "https://config.example"}
    env = {"HOSTUP_API_KEY": "from-env", "HOSTUP_BASE_URL": "https://env.example"}
    explicit = resolve(
        api_key="explicit", base_url="https://explicit.example", config=config, env=env
    )
    assert (explicit.api_key, explicit.base_url) == ("explicit", "https://explicit.example")
    from_config = resolve(config=config, env=env)
    assert (from_config.api_key, from_config.base_url) == ("from-config", "https://config.example")
    from_env = resolve(env=env)
    assert (from_env.api_key, from_env.base_url) == ("from-env", "https://env.example")


def test_empty_config_values_fall_through_to_env() -> None:
    settings = resolve(
        config={"hostup:apiKey": "", "hostup:baseUrl": ""},
        env={"HOSTUP_API_KEY": "from-env", "HOSTUP_BASE_URL": "https://env.example"},
    )
    assert settings.api_key == "from-env"
    assert settings.base_url == "https://env.example"


def test_env_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOSTUP_API_KEY", "from-os-env")
    monkeypatch.setenv("HOSTUP_BASE_URL", "http://127.0.0.1:8080")
    settings = Settings.resolve()
    assert settings.api_key == "from-os-env"
    assert settings.base_url == "http://127.0.0.1:8080"


def test_config_timeout_and_max_retries_as_strings() -> None:
    settings = resolve(api_key=KEY, config={"hostup:timeout": "12.5", "hostup:maxRetries": "4"})
    assert settings.timeout == 12.5
    assert settings.max_retries == 4
    explicit = resolve(
        api_key=KEY,
        timeout=3,
        max_retries=0,
        config={"hostup:timeout": "12.5", "hostup:maxRetries": "4"},
    )
    assert (explicit.timeout, explicit.max_retries) == (3.0, 0)


def test_defaults() -> None:
    settings = resolve(api_key=KEY)
    assert settings.base_url == DEFAULT_BASE_URL == "https://cloud.hostup.se"
    assert settings.timeout == DEFAULT_TIMEOUT
    assert settings.max_retries == DEFAULT_MAX_RETRIES
    # The connect timeout never exceeds the read timeout.
    assert settings.connect_timeout <= settings.timeout
    assert resolve(api_key=KEY, timeout=0.5).connect_timeout == 0.5


def test_session_cookie_alone_is_enough() -> None:
    settings = resolve(env={"HOSTUP_SESSION_COOKIE": "cookie-value"})
    assert settings.api_key is None
    assert settings.session_cookie == "cookie-value"
    from_config = resolve(config={"hostup:sessionCookie": "cfg-cookie"})
    assert from_config.session_cookie == "cfg-cookie"


# -- credentials ----------------------------------------------------------------------------


@pytest.mark.parametrize("api_key", [None, "", "   "])
def test_no_credentials_says_how_to_set_them(api_key: str | None) -> None:
    with pytest.raises(ConfigurationError) as info:
        resolve(api_key=api_key)
    message = str(info.value)
    assert "pulumi config set --secret hostup:apiKey" in message
    assert "HOSTUP_API_KEY" in message


def test_no_credentials_allowed_when_not_required() -> None:
    settings = resolve(require_credentials=False)
    assert settings.api_key is None
    assert settings.session_cookie is None


def test_key_is_stripped_of_surrounding_whitespace() -> None:
    # A key pasted from a file usually ends with a newline: that one is harmless.
    assert resolve(api_key=f"  {KEY}\n").api_key == KEY


@pytest.mark.parametrize("bad", [f"{KEY}\r\nX-Injected: 1", "abc\ndef", "abc\rdef", "ab\x00cd"])
def test_key_with_control_characters_is_refused_without_echoing_it(bad: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        resolve(api_key=bad)
    message = str(info.value)
    assert "control character" in message
    for fragment in (KEY, "abc", "def", "ab", "cd", "Injected"):
        if fragment in bad:
            assert fragment not in message


def test_non_ascii_key_is_refused_without_echoing_it() -> None:
    with pytest.raises(ConfigurationError) as info:
        resolve(api_key="hk_kéy_secretpart")
    assert "non-ASCII" in str(info.value)
    assert "secretpart" not in str(info.value)


def test_cookie_with_newline_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="session cookie"):
        resolve(session_cookie="abc\r\nSet-Cookie: x")


def test_key_of_the_wrong_type_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="must be a string"):
        resolve(api_key=12345)


def test_credentials_never_in_repr_or_str() -> None:
    settings = resolve(api_key=KEY, session_cookie="cookie-secret-value")
    for text in (repr(settings), str(settings)):
        assert KEY not in text
        assert "cookie-secret-value" not in text
        assert "<set>" in text
    assert "api_key=None" in repr(resolve(session_cookie="c"))


# -- base URL -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://cloud.hostup.se", "https://cloud.hostup.se"),
        ("https://cloud.hostup.se/", "https://cloud.hostup.se"),
        ("  https://api.example.com:8443/prefix/  ", "https://api.example.com:8443/prefix"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://localhost:8080", "http://localhost:8080"),
        ("http://[::1]:8080", "http://[::1]:8080"),
    ],
)
def test_base_url_accepted(url: str, expected: str) -> None:
    assert resolve(api_key=KEY, base_url=url).base_url == expected


@pytest.mark.parametrize(
    "url", ["http://cloud.hostup.se", "http://192.0.2.10", "http://localhost.example.com"]
)
def test_plain_http_only_for_loopback(url: str) -> None:
    with pytest.raises(ConfigurationError, match="plain http"):
        resolve(api_key=KEY, base_url=url)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        # The simulator prints its address; pasted without a scheme, the fix is named.
        ("127.0.0.1:34861", "base URL 127.0.0.1:34861 has no scheme, so it is not an http(s) "
         "URL; use http://127.0.0.1:34861"),
        ("localhost:8080", "base URL localhost:8080 has no scheme, so it is not an http(s) URL; "
         "use http://localhost:8080"),
        ("api.example.com:8443", "base URL api.example.com:8443 has no scheme, so it is not an "
         "http(s) URL; use https://api.example.com:8443"),
        # The port quoted is the port given.
        ("http://api.example.com:8443", "base URL http://api.example.com:8443 uses plain http; "
         "use https://api.example.com:8443 (plain http is allowed only for loopback addresses "
         "such as the local simulator)"),
    ],
)  # fmt: skip
def test_base_url_errors_name_the_url_that_was_meant(url: str, message: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        resolve(api_key=KEY, base_url=url)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    "url", ["ftp://cloud.hostup.se", "cloud.hostup.se", "/api/v2", "https://", "file:///etc/passwd"]
)
def test_base_url_without_http_scheme_or_host_is_refused(url: str) -> None:
    with pytest.raises(ConfigurationError, match="not an http"):
        resolve(api_key=KEY, base_url=url)


@pytest.mark.parametrize(
    "url",
    [
        "https://user:pw@cloud.hostup.se",
        "https://cloud.hostup.se/?key=x",
        "https://cloud.hostup.se#x",
    ],
)
def test_base_url_with_credentials_query_or_fragment_is_refused(url: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        resolve(api_key=KEY, base_url=url)
    assert "pw" not in str(info.value)


def test_base_url_with_a_bad_port_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="port"):
        resolve(api_key=KEY, base_url="https://cloud.hostup.se:notaport")


# -- timeout and retries --------------------------------------------------------------------


@pytest.mark.parametrize("timeout", [0, -1, "0", "abc", float("nan"), float("inf"), True, [5]])
def test_bad_timeout_is_refused(timeout: object) -> None:
    with pytest.raises(ConfigurationError, match="timeout"):
        resolve(api_key=KEY, timeout=timeout)


@pytest.mark.parametrize("retries", [-1, 11, "x", 2.5, "2.5", True, None.__class__])
def test_bad_max_retries_is_refused(retries: object) -> None:
    with pytest.raises(ConfigurationError, match="max_retries"):
        resolve(api_key=KEY, max_retries=retries)


@pytest.mark.parametrize(("retries", "expected"), [(0, 0), (10, 10), ("3", 3), (2.0, 2)])
def test_max_retries_accepted(retries: object, expected: int) -> None:
    assert resolve(api_key=KEY, max_retries=retries).max_retries == expected


def test_max_concurrency_resolution_and_bounds() -> None:
    assert resolve(api_key=KEY).max_concurrency >= 1
    assert (
        resolve(
            api_key=KEY, config={"hostup:maxConcurrency": "4"}, env={"HOSTUP_MAX_CONCURRENCY": "8"}
        ).max_concurrency
        == 4
    )
    assert resolve(api_key=KEY, env={"HOSTUP_MAX_CONCURRENCY": "8"}).max_concurrency == 8
    assert (
        resolve(api_key=KEY, max_concurrency=2, env={"HOSTUP_MAX_CONCURRENCY": "8"}).max_concurrency
        == 2
    )
    for bad in (0, -1, "many", 10_000):
        with pytest.raises(ConfigurationError, match="max_concurrency"):
            resolve(api_key=KEY, max_concurrency=bad)

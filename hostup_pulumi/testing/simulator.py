"""``HostupSimulator``: the public face of the fake HostUp API server."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any

from .faults import Fault, FaultQueue
from .ids import credential_label
from .ratelimit import RateLimiter
from .recorder import RecordedRequest, RequestLog
from .records import DEFAULT_ACCOUNT, CommandResult, Vps
from .routes import ROUTES, ListQuirks
from .seed import SeedSource, apply_seed, read_seed
from .server import Backend, SimulatorServer
from .state import DEFAULT_ID_SEED, DEFAULT_SCOPES, SimState


class HostupSimulator:
    """An in-process HostUp API v2 server on 127.0.0.1 for offline tests and demos.

    Serves the VPS list/get routes and the guest-agent exec routes with Bearer/cookie auth,
    scopes, accounts, cursor pagination, problem+json errors, optional latency and rate
    limiting, injectable faults, and a credential-free request log. Use it as a context
    manager::

        with HostupSimulator(seed="demo") as sim:
            client = httpx.Client(base_url=sim.base_url,
                                  headers={"Authorization": f"Bearer {sim.api_key}"})

    Accounts: every key and VPS belongs to one (``DEFAULT_ACCOUNT``, ``"default"``, unless
    ``account=`` says otherwise; the default key and the session cookie belong to it). A key
    sees only its account's VPSes: another account's VPS is 404 ``vps_not_found`` and is
    left out of the list::

        sim.add_api_key("hsk_acme_key", ["read:vm", "write:vm"], account="acme")
        acme_vps = sim.add_vps(name="web-1", account="acme")
    """

    def __init__(
        self,
        *,
        latency: float = 0.0,
        rate_limit: float | None = None,
        burst: int = 10,
        pid_retention: float = 600.0,
        seed: SeedSource | None = None,
        port: int = 0,
        api_key: str | None = None,
    ) -> None:
        """Configure (but do not start) a simulator.

        ``latency`` seconds are slept before every answer; ``rate_limit`` requests/s with
        bursts of ``burst`` apply per credential; pids are forgotten ``pid_retention``
        seconds after exit; ``seed`` is a seed mapping, a JSON file or ``"demo"``;
        ``api_key`` chooses the default key's value (random ``hsk_test_...`` otherwise).
        """
        if latency < 0 or pid_retention < 0:
            raise ValueError("latency and pid_retention must not be negative")
        self._state = SimState(pid_retention=pid_retention)
        self._api_key = api_key or "hsk_test_" + secrets.token_hex(16)
        self._session_cookie = "hss_" + secrets.token_urlsafe(24)
        self._state.add_api_key(self._api_key, DEFAULT_SCOPES)
        self._state.add_session(self._session_cookie)
        self._backend = Backend(
            state=self._state,
            faults=FaultQueue(),
            limiter=RateLimiter(rate_limit, burst),
            log=RequestLog(),
            latency=latency,
        )
        self._port = port
        self._server: SimulatorServer | None = None
        self._thread: threading.Thread | None = None
        self._lifecycle = threading.Lock()
        self._stopped = False
        if seed is not None:
            apply_seed(self._state, read_seed(seed))

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> HostupSimulator:
        """Bind the port and serve on a daemon thread. A simulator starts once."""
        with self._lifecycle:
            if self._server is not None or self._stopped:
                raise RuntimeError("HostupSimulator.start() may be called only once")
            self._server = SimulatorServer(self._backend, self._port)
            self._thread = threading.Thread(
                target=self._server.serve,
                name=f"hostup-simulator:{self._server.port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close the listening socket and every open connection. Idempotent."""
        with self._lifecycle:
            if self._stopped:
                return
            self._stopped = True
            server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self._backend.stopping.set()  # wake handlers sleeping on latency or delay faults
        server.stop_serving()
        thread.join()
        server.server_close()
        server.close_connections()

    def __enter__(self) -> HostupSimulator:
        """Start (if not yet started) and return the simulator."""
        if self._server is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the simulator."""
        self.stop()

    def __repr__(self) -> str:
        """Show the address, never the credentials."""
        where = self.base_url if self._server is not None else "not started"
        return f"<HostupSimulator {where}>"

    # -- connection facts --------------------------------------------------------------
    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``; available once started."""
        if self._server is None:
            raise RuntimeError("start the simulator before asking for base_url")
        return f"http://127.0.0.1:{self._server.port}"

    @property
    def port(self) -> int:
        """The bound TCP port; available once started."""
        if self._server is None:
            raise RuntimeError("start the simulator before asking for port")
        return self._server.port

    @property
    def api_key(self) -> str:
        """The default API key (scopes ``read:vm`` and ``write:vm``)."""
        return self._api_key

    @property
    def session_cookie(self) -> str:
        """A valid ``hostup_session`` cookie value (every scope)."""
        return self._session_cookie

    @property
    def connections_opened(self) -> int:
        """TCP connections accepted since start."""
        return 0 if self._server is None else self._server.connections_opened

    # -- world -----------------------------------------------------------------------
    def add_api_key(
        self, key: str, scopes: Iterable[str], *, account: str = DEFAULT_ACCOUNT
    ) -> None:
        """Accept ``key`` as a Bearer token of ``account`` with exactly ``scopes``.

        Adding a key again replaces its scopes and account.
        """
        self._state.add_api_key(key, scopes, account)

    @staticmethod
    def key_label(key: str) -> str:
        """The label the request log records for ``key`` (``RecordedRequest.key_label``):
        ``sha256:`` and 12 hex digits of its hash, so a test can tell which key made a
        request although the log never holds a key."""
        return credential_label(key)

    def inventory(self) -> list[Vps]:
        """Every VPS the simulator serves, of every account (copies): id, name, account,
        power state and what its agent says."""
        return self._state.all_vps()

    def add_vps(self, *, name: str, **options: Any) -> str:
        """Add a VPS; return its id (``vps_`` + 26 lowercase ULID-like characters, random
        unless ``vps_id`` is given).

        Options (keyword, as :meth:`SimState.add_vps` types them): ``primary_ip``,
        ``vps_id``, ``power_state`` ("running"), ``service_status`` ("active"),
        ``agent_available``, ``agent_reason``, ``extra``, ``account`` (the default account).
        The agent is available by default exactly when ``power_state == "running"``; an
        unavailable agent's reason defaults to "VM is not running" (or, for a running VM,
        "QEMU guest agent is not responding"). ``extra`` members are served at top level
        and override the defaults (operatingSystem, billing, resources, ...).
        """
        return self._state.add_vps(name=name, **options)

    def add_generated_vps(
        self, count: int, *, id_seed: str = DEFAULT_ID_SEED, account: str = DEFAULT_ACCOUNT
    ) -> list[str]:
        """Add ``count`` running VPSes with stable ids; return the ids.

        The n-th VPS generated from ``id_seed`` (counting across calls) is named
        ``vps-{n:04d}``, has primary IP ``10.x.y.z`` (n in base 256) and an id derived from
        ``id_seed`` and n alone: the same calls give the same ids on every start, which
        ``--vps-count N`` on the command line relies on.
        """
        return self._state.add_generated_vps(count, id_seed=id_seed, account=account)

    def set_agent(
        self,
        vps_id: str,
        *,
        available: bool,
        reason: str | None = None,
        vm_running: bool | None = None,
    ) -> None:
        """Change a VPS's agent availability; ``vm_running`` also sets powerState."""
        self._state.set_agent(vps_id, available=available, reason=reason, vm_running=vm_running)

    def script_command(
        self,
        match: str,
        *,
        stdout: str = "",
        stderr: str = "",
        exit_code: int = 0,
        duration: float = 0.0,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        """Make the exact command ``match`` run for ``duration`` s and end as given.

        ``extra`` members are added to the finished output body (e.g. ``{"truncated": True}``).
        """
        result = CommandResult(stdout, stderr, exit_code, duration, dict(extra or {}))
        self._state.script_command(match, result)

    def block_command(self, substring: str) -> None:
        """Answer 400 ``command_blocked`` to any command containing ``substring``."""
        self._state.block_command(substring)

    def set_next_pid(self, pid: int, *, vps_id: str | None = None) -> None:
        """Give the next command started (on ``vps_id``, or on any VPS) the pid ``pid``.

        A test hook for pid reuse: if that VPS still remembers a process ``pid``, the new
        command replaces it, so polling ``pid`` from then on shows the new command's output,
        as on a guest that reused the pid. One-shot; later pids count on above ``pid``.
        ``ValueError`` for a pid outside 1..2**31-1, ``KeyError`` for an unknown VPS.
        """
        self._state.set_next_pid(pid, vps_id)

    # -- behaviour -------------------------------------------------------------------
    def inject(self, route: str, fault: Fault, count: int = 1) -> None:
        """Apply ``fault`` to the next ``count`` requests on ``route`` (``"*"``: any route).

        Faults queue in injection order and act before authentication.
        """
        if route != "*" and route not in ROUTES:
            raise ValueError(f"unknown route {route!r}; use one of {', '.join(ROUTES)} or '*'")
        self._backend.faults.add(route, fault, count)

    def clear_faults(self) -> None:
        """Drop every fault not yet applied."""
        self._backend.faults.clear()

    def set_latency(self, seconds: float) -> None:
        """Sleep ``seconds`` before answering each request from now on."""
        if seconds < 0:
            raise ValueError("latency must not be negative")
        self._backend.latency = seconds

    def set_list_quirks(self, *, ignore_filters: bool = False, repeat_cursor: bool = False) -> None:
        """Make ``GET /api/v2/vps`` misbehave from now on, in ways its documentation does not
        rule out: ``ignore_filters`` answers as if no ``name``/``primaryIp`` was sent,
        ``repeat_cursor`` gives every page the same ``nextCursor``. Both off: as documented."""
        self._backend.list_quirks = ListQuirks(ignore_filters, repeat_cursor)

    def set_rate_limit(self, rate: float | None, burst: int = 10) -> None:
        """Limit each credential to ``rate`` requests/s with bursts of ``burst``; None: off."""
        self._backend.limiter.configure(rate, burst)

    # -- request log -------------------------------------------------------------------
    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of the request log (no header values, keys or cookies)."""
        return self._backend.log.snapshot()

    def stats(self, since: float | None = None) -> dict[str, Any]:
        """Counts so far, as ``GET /_simulator/stats[?since=EPOCH]`` answers them (for other
        processes): ``requests``, ``byRoute``, ``byStatus`` (``"dropped"``: no response) and
        ``connectionsOpened``; with ``since``, also ``since``: ``requests``, ``firstAt`` and
        ``lastAt`` of those received from that epoch time on. Stats requests are not
        counted, but their connections are."""
        if self._server is not None:
            return self._server.stats(since)
        return self._backend.log.stats(0, since)

    def clear_requests(self) -> None:
        """Empty the request log."""
        self._backend.log.clear()

    def count(self, route: str | None = None, method: str | None = None) -> int:
        """Count logged requests, optionally only one route (``"*"``: all) and/or method."""
        return self._backend.log.count(route, method)

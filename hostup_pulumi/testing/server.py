"""The HTTP layer: connections, auth, rate limiting, faults, latency and the request log."""

from __future__ import annotations

import contextlib
import logging
import math
import selectors
import socket
import socketserver
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from .faults import MUTATING_KINDS, FaultQueue, render, spoil
from .ids import credential_label, new_request_id
from .problems import Response, json_response, problem_response
from .ratelimit import RateLimiter
from .recorder import RecordedRequest, RequestLog, redact_query
from .records import Principal
from .routes import REQUIRED_SCOPE, Call, ListQuirks, RouteMatch, handle, resolve
from .state import SimState

_log = logging.getLogger("hostup_pulumi.testing")

SESSION_COOKIE = "hostup_session"
MAX_BODY = 1 << 20  # well above a 4096-character command
#: ``GET`` here answers :meth:`SimulatorServer.stats` as JSON: no auth, latency, rate limit or
#: faults, and not in the request log, so a benchmark in another process can read the counts.
STATS_PATH = "/_simulator/stats"


@dataclass
class Backend:
    """Everything the handlers share; owned by ``HostupSimulator``."""

    state: SimState
    faults: FaultQueue
    limiter: RateLimiter
    log: RequestLog
    latency: float = 0.0
    list_quirks: ListQuirks = field(default_factory=ListQuirks)
    #: Set on stop so that sleeping handlers (latency, delay faults) wake up at once.
    stopping: threading.Event = field(default_factory=threading.Event)

    def pause(self, seconds: float) -> None:
        """Sleep ``seconds`` unless the simulator is stopping."""
        if seconds > 0:
            self.stopping.wait(seconds)


class SimulatorServer(ThreadingHTTPServer):
    """A threaded HTTP/1.1 server on 127.0.0.1 that tracks its connections."""

    daemon_threads = True
    request_queue_size = 256  # many clients connect at once in concurrency tests

    def __init__(self, backend: Backend, port: int = 0) -> None:
        """Bind to ``127.0.0.1:port`` (0 picks a free port); call ``serve_forever`` to run."""
        self.backend = backend
        self.connections_opened = 0
        self._conn_lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._handler_threads: set[threading.Thread] = set()
        # A socketpair wakes the accept loop at once on stop (serve_forever would poll).
        self._wake_recv, self._wake_send = socket.socketpair()
        self._serving = True
        super().__init__(("127.0.0.1", port), _Handler)

    def serve(self) -> None:
        """Accept connections until ``stop_serving`` is called."""
        with selectors.DefaultSelector() as selector:
            selector.register(self.socket, selectors.EVENT_READ)
            selector.register(self._wake_recv, selectors.EVENT_READ)
            while self._serving:
                for key, _ in selector.select():
                    if key.fileobj is self.socket and self._serving:
                        self._accept_one()

    def _accept_one(self) -> None:
        try:
            request, address = self.get_request()
        except OSError:
            return
        try:
            self.process_request(request, address)
        except Exception:
            self.handle_error(request, address)
            self.shutdown_request(request)

    def stop_serving(self) -> None:
        """Make ``serve`` return; safe to call from any thread, more than once."""
        self._serving = False
        with contextlib.suppress(OSError):
            self._wake_send.send(b"x")

    def server_close(self) -> None:
        """Close the listening socket and the wake-up pair."""
        super().server_close()
        self._wake_recv.close()
        self._wake_send.close()

    def server_bind(self) -> None:
        """Bind without ``HTTPServer.server_bind``'s getfqdn(), which can stall on DNS."""
        socketserver.TCPServer.server_bind(self)
        self.server_name = "127.0.0.1"
        # Kept after close, so a stopped simulator still reports where it was.
        self.port: int = int(self.socket.getsockname()[1])
        self.server_port = self.port

    def get_request(self) -> tuple[socket.socket, Any]:
        """Accept a connection and count it."""
        conn, addr = self.socket.accept()
        # Headers and body go out in separate writes; without this, Nagle plus delayed
        # ACKs add ~40 ms to every keep-alive response.
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._conn_lock:
            self.connections_opened += 1
            self._open.add(conn)
        return conn, addr

    def stats(self, since: float | None = None) -> dict[str, Any]:
        """Counts so far: logged requests (total, by route, by status) and TCP connections;
        with ``since`` (epoch seconds), also ``since``: the requests received from then on
        (``RequestLog.window``)."""
        return self.backend.log.stats(self.connections_opened, since)

    def process_request(
        self, request: socket.socket | tuple[bytes, socket.socket], client_address: Any
    ) -> None:
        """Serve the connection on a daemon thread we can join on stop."""
        thread = threading.Thread(target=self._serve, args=(request, client_address), daemon=True)
        with self._conn_lock:
            self._handler_threads.add(thread)
        thread.start()

    def _serve(self, request: socket.socket | tuple[bytes, socket.socket], address: Any) -> None:
        try:
            self.process_request_thread(request, address)
        finally:
            with self._conn_lock:
                self._handler_threads.discard(threading.current_thread())

    def shutdown_request(self, request: socket.socket | tuple[bytes, socket.socket]) -> None:
        """Forget and close a finished connection."""
        if isinstance(request, socket.socket):
            with self._conn_lock:
                self._open.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Ignore clients that went away; log anything else instead of printing it."""
        if not isinstance(sys.exc_info()[1], OSError):
            _log.exception("HostUp simulator: error while serving a connection")

    def close_connections(self, timeout: float = 5.0) -> None:
        """Shut every open connection down and wait for handler threads to finish."""
        with self._conn_lock:
            sockets, threads = list(self._open), list(self._handler_threads)
        for conn in sockets:
            with contextlib.suppress(OSError):  # already closed by the peer
                conn.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "hostup-simulator"
    sys_version = ""
    server: SimulatorServer

    def log_message(self, format: str, *args: Any) -> None:
        """Stay silent: tests read ``HostupSimulator.requests`` instead of stderr."""

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def _stats(self, query: dict[str, str], request_id: str) -> Response:
        """``GET /_simulator/stats[?since=EPOCH]``."""
        if "since" not in query:
            return json_response(self.server.stats())
        try:
            since = float(query["since"])
        except ValueError:
            since = math.nan
        if not math.isfinite(since):
            detail = f"since must be epoch seconds (a number), not {query['since']!r}"
            return problem_response(400, "invalid_request", instance=STATS_PATH,
                                    request_id=request_id, detail=detail)  # fmt: skip
        return json_response(self.server.stats(since))

    def do_OPTIONS(self) -> None:
        self._dispatch()

    # -- the pipeline: body, latency, fault, route, auth, rate limit, scope, handler ----
    def _dispatch(self) -> None:
        backend = self.server.backend
        received = time.time()
        request_id = new_request_id()
        split = urlsplit(self.path)
        path = split.path or "/"
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        match = resolve(self.command, path, query)
        call = Call(path, query, b"", request_id)

        def record(status: int | None) -> None:
            # Recorded before the response is written, so a client never sees an
            # answer whose request is not yet in the log.
            principal = self._principal()
            owner = None if match.vps_id is None else backend.state.get_vps(match.vps_id)
            entry = RecordedRequest(
                self.command,
                path,
                redact_query(query),
                status,
                match.route,
                received,
                self._has_auth(),
                account=None if principal is None else principal.account,
                key_label=self._credential_label(),
                vps_id=match.vps_id,
                vps_account=None if owner is None else owner.account,
            )
            backend.log.append(entry)

        body = self._read_body(call)
        if path == STATS_PATH and self.command == "GET" and not isinstance(body, Response):
            self._send(self._stats(query, request_id), request_id)
            return
        if isinstance(body, Response):
            record(body.status)
            self._send(body, request_id)
            return
        call = Call(path, query, body, request_id)

        backend.pause(backend.latency)
        fault = backend.faults.take(match.route)
        if fault is not None and fault.kind == "delay":
            backend.pause(fault.seconds)
            fault = None
        if fault is not None and fault.kind == "drop":
            record(None)
            self.close_connection = True
            return
        if fault is None or fault.kind in MUTATING_KINDS:
            response = self._respond(match, call)
            if fault is not None:
                response = spoil(fault, response)
        else:
            response = render(
                fault, instance=path, request_id=request_id, limit=backend.limiter.burst
            )
        record(response.status)
        self._send(response, request_id)

    def _respond(self, match: RouteMatch, call: Call) -> Response:
        try:
            return self._authorised(match, call)
        except Exception:  # a simulator bug must still produce an answer
            _log.exception("HostUp simulator: handler failed")
            return call.problem(500, "internal_error")

    def _authorised(self, match: RouteMatch, call: Call) -> Response:
        backend = self.server.backend
        if match.route == "unknown":
            if match.allowed:
                allow = ", ".join(match.allowed)
                detail = f"Method {self.command} is not allowed here; use {allow}."
                return call.problem(405, "method_not_allowed", detail, headers={"Allow": allow})
            return call.problem(404, "not_found", f"No route matches {call.path}.")
        principal = self._principal()
        if principal is None:
            headers = {"WWW-Authenticate": 'Bearer realm="hostup"'}
            return call.problem(401, "unauthorized", headers=headers)
        decision = backend.limiter.check(principal.identity)
        rate_headers = decision.headers() if decision is not None else {}
        if decision is not None and not decision.allowed:
            return call.problem(429, "rate_limited", headers=rate_headers)
        scope = REQUIRED_SCOPE[match.route]
        if not principal.allows(scope):
            response = call.problem(
                403,
                "forbidden",
                f"This API key lacks the required scope: {scope}",
                extensions={"requiredScope": scope},
            )
        else:
            response = handle(
                match, replace(call, account=principal.account), backend.state, backend.list_quirks
            )
        response.headers.update(rate_headers)
        return response

    # -- credentials (values are looked up, never stored) --------------------------------
    def _bearer(self) -> str | None:
        header = self.headers.get("Authorization")
        if header is None:
            return None
        scheme, _, token = header.strip().partition(" ")
        return token.strip() if scheme.lower() == "bearer" else ""

    def _session(self) -> str | None:
        raw = self.headers.get("Cookie")
        if not raw:
            return None
        try:
            cookie = SimpleCookie(raw)
        except CookieError:
            return None
        morsel = cookie.get(SESSION_COOKIE)
        return None if morsel is None else morsel.value

    def _has_auth(self) -> bool:
        return self._bearer() is not None or self._session() is not None

    def _credential_label(self) -> str | None:
        # The label of what was presented (an Authorization header wins, as in _principal),
        # known to the simulator or not; never the value itself.
        token = self._bearer()
        if token is not None:
            return credential_label(token) if token else None
        session = self._session()
        return None if not session else credential_label(session)

    def _principal(self) -> Principal | None:
        state = self.server.backend.state
        token = self._bearer()
        if token is not None:  # an Authorization header wins over any cookie
            return state.principal_for_key(token) if token else None
        session = self._session()
        return None if session is None else state.principal_for_session(session)

    # -- wire I/O ----------------------------------------------------------------------
    def _read_body(self, call: Call) -> bytes | Response:
        """Read the body so keep-alive stays in sync; return a problem when we cannot."""
        if self.headers.get("Transfer-Encoding"):
            response = call.problem(411, "invalid_request", "Send a Content-Length body.")
            response.close = True
            return response
        raw = self.headers.get("Content-Length", "0").strip() or "0"
        if not raw.isdigit():
            response = call.problem(400, "invalid_request", "Invalid Content-Length.")
            response.close = True
            return response
        length = int(raw)
        if length > MAX_BODY:
            response = call.problem(413, "payload_too_large", "Request body is too large.")
            response.close = True
            return response
        return self.rfile.read(length) if length else b""

    def _send(self, response: Response, request_id: str) -> None:
        length = len(response.body) if response.content_length is None else response.content_length
        try:
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(length))
            self.send_header("X-Request-Id", request_id)
            for name, value in response.headers.items():
                self.send_header(name, value)
            if response.close:
                self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":  # HEAD answers carry headers only
                self.wfile.write(response.body)
            self.wfile.flush()
        except OSError:
            response.close = True  # the client is gone
        if response.close:
            self.close_connection = True

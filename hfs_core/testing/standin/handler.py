"""HTTP plumbing of the stand-in: a threaded HTTP/1.1 server and its request handler.

The handler routes requests, reads bodies, writes JSON and chunked SSE bodies (with delays, error
events and connection drops) and talks to the :class:`~hfs_core.testing.standin.server.StandIn`
only through the small interface :class:`Backend`: :meth:`exchange`, :meth:`stats`, :meth:`request_log`,
:meth:`control`, :meth:`note_warmup`, :meth:`connection_opened` and :meth:`connection_closed`.
"""

from __future__ import annotations

import contextlib
import json
import socket
import socketserver
import sys
import time
import uuid
from contextlib import AbstractContextManager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from hfs_core.testing.standin import gemini, openai
from hfs_core.testing.standin.exchange import Plan, Replay, Request, SseBody, StreamBreak, WireFormat

HOST = "127.0.0.1"
_DISCONNECT_ERRORS: tuple[type[BaseException], ...] = (ConnectionError, TimeoutError, OSError)


class Backend(Protocol):
    """The stand-in as its HTTP handler sees it (a :class:`~hfs_core.testing.standin.server.StandIn`)."""

    def exchange(self, request: Request) -> AbstractContextManager[Plan]:
        """Decide, record and plan the answer to one LLM request; it counts as in flight inside."""

    def stats(self) -> dict[str, Any]:
        """The statistics (``GET /stats``)."""

    def request_log(self, since: int = 0) -> list[dict[str, Any]]:
        """The requests seen from entry `since` on (``GET /log``)."""

    def control(self, command: dict[str, Any]) -> dict[str, Any]:
        """Apply a control command (``POST /control``)."""

    def note_warmup(self) -> None:
        """Count one connection warm-up request."""

    def connection_opened(self, conn: socket.socket) -> None:
        """Note an open client connection."""

    def connection_closed(self, conn: socket.socket) -> None:
        """Forget a client connection."""


class Server(ThreadingHTTPServer):
    """Threaded HTTP/1.1 server that skips reverse DNS and stays silent about client disconnects."""

    daemon_threads = True
    request_queue_size = 512
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], standin: Backend) -> None:
        self.standin = standin
        super().__init__(address, Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(), a potentially slow DNS lookup.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, _DISCONNECT_ERRORS):
            return
        super().handle_error(request, client_address)


class _AbortStream(Exception):
    """Raised inside a handler to drop the connection mid-stream."""


def _wire_for(path: str) -> WireFormat:
    """The wire-format module whose errors fit ``path``."""
    return gemini if "/models/" in path or path.startswith("/v1beta") else openai


class Handler(BaseHTTPRequestHandler):
    """Request handler; one instance per connection, looping over keep-alive requests."""

    protocol_version = "HTTP/1.1"
    server_version = "standin/1.0"
    sys_version = ""
    timeout = 300
    server: Server

    # ------------------------------------------------------------------ plumbing

    def setup(self) -> None:
        super().setup()
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.standin.connection_opened(self.connection)

    def finish(self) -> None:
        self.server.standin.connection_closed(self.connection)
        with contextlib.suppress(*_DISCONNECT_ERRORS):
            super().finish()

    def handle(self) -> None:
        with contextlib.suppress(*_DISCONNECT_ERRORS, _AbortStream):
            super().handle()

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default per-request logging."""

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            body = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(body)
                body += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-request-id", f"req_{uuid.uuid4().hex[:24]}")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _send_recorded(self, replay: Replay) -> None:
        """Send a recorded reply as it is: its status, its own headers and body, and no stand-in headers."""
        self.send_response_only(replay.status)
        self.send_header("Date", self.date_time_string())
        self.send_header("Content-Type", replay.content_type)
        self.send_header("Content-Length", str(len(replay.body)))
        for name, value in replay.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(replay.body)

    def _send_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def _abort(self) -> None:
        """Drop the connection without finishing the response body."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)
        raise _AbortStream

    def _stream(
        self, sse: SseBody, headers: dict[str, str], chunk_delay: float, breaker: StreamBreak | None
    ) -> None:
        """Send ``sse`` as a chunked body, ``chunk_delay`` apart, broken by ``breaker`` if given."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("x-request-id", f"req_{uuid.uuid4().hex[:24]}")
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        for index, event in enumerate(sse.events):
            if breaker is not None and index - sse.first_content >= breaker.chunks:
                if breaker.mode == "abort":
                    self._abort()
                self._send_chunk(breaker.event or sse.error_event)
                break
            if chunk_delay > 0 and index > 0:
                time.sleep(chunk_delay)
            self._send_chunk(event)
        self.wfile.write(b"0\r\n\r\n")

    # ------------------------------------------------------------------ routing

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path == "/stats":
            self._send_json(200, self.server.standin.stats())
        elif path == "/log":
            since = parse_qs(urlsplit(self.path).query).get("since", ["0"])[0]
            log = self.server.standin.request_log(int(since) if since.isdigit() else 0)
            self._send_json(200, {"requests": log})
        elif path.endswith("/tcp_warming"):
            self.server.standin.note_warmup()
            self._send_json(200, "OK")
        elif path in ("/", "/health", "/healthz"):
            self._send_json(200, {"ok": True})
        else:
            self._send_json(404, _wire_for(path).error_body(404, f"Unknown path {path}"))

    def do_POST(self) -> None:
        parts = urlsplit(self.path)
        path = parts.path
        body = self._read_body()
        if path == "/control":
            self._handle_control(body)
        elif path.endswith("/chat/completions"):
            self._llm_request(openai, path, parts.query, body)
        elif gemini.PATH.search(path):
            self._llm_request(gemini, path, parts.query, body)
        else:
            self._send_json(404, _wire_for(path).error_body(404, f"Unknown path {path}"))

    def _handle_control(self, body: bytes) -> None:
        try:
            command = json.loads(body or b"{}")
            if not isinstance(command, dict):
                raise ValueError("control body must be a JSON object")
            result = self.server.standin.control(command)
        except (ValueError, TypeError, KeyError) as exc:
            self._send_json(400, {"ok": False, "error": str(exc)})
            return
        self._send_json(200, result)

    def _llm_request(self, wire: WireFormat, path: str, query: str, raw: bytes) -> None:
        request = wire.parse(path, query, self.headers, raw)
        with self.server.standin.exchange(request) as plan:
            if plan.delay > 0:
                time.sleep(plan.delay)
            if plan.replay is not None:
                self._send_recorded(plan.replay)
                return
            if plan.answer is None:
                self._send_json(plan.decision.status, wire.error_payload(plan.decision), plan.decision.headers)
                return
            reply = wire.body(request, plan.answer)
            if isinstance(reply, SseBody):
                self._stream(reply, plan.decision.headers, plan.chunk_delay, plan.stream_break)
            else:
                self._send_json(200, reply, plan.decision.headers)

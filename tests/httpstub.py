"""A tiny real HTTP server for tests: canned replies per route, every request recorded.

    with StubServer() as server:
        server.route("GET", "/jobs/a", Reply(503), Reply(200, {"id": "a"}))
        ...                                   # talk to server.url over loopback
        assert server.count("GET", "/jobs/a") == 2

Replies for a route are served in order and the last one repeats. A reply may also be
a function of the recorded request (for pagination or echoing bodies). ``Reply.drop``
closes the connection without answering; ``Reply.truncate_at`` announces the whole
body but sends only its first bytes. Unknown routes answer 404.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

__all__ = ["Recorded", "Reply", "StubServer", "free_port"]


@dataclass(frozen=True)
class Recorded:
    """One request as the server received it."""

    method: str
    path: str  # without the query
    query: dict[str, str]
    headers: dict[str, str]  # names in lower case
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class Reply:
    """A canned answer. ``body`` may be bytes, text, or anything JSON-serialisable."""

    status: int = 200
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    drop: bool = False
    truncate_at: int | None = None

    def payload(self) -> tuple[bytes, str | None]:
        if self.body is None:
            return b"", None
        if isinstance(self.body, bytes):
            return self.body, "application/octet-stream"
        if isinstance(self.body, str):
            return self.body.encode(), "text/plain; charset=utf-8"
        return json.dumps(self.body).encode(), "application/json"


Responder = Reply | Callable[[Recorded], Reply]


def free_port() -> int:
    """A loopback port nobody listens on (yet)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class StubServer:
    """A ``ThreadingHTTPServer`` on 127.0.0.1 that serves canned replies per route."""

    def __init__(self, port: int = 0) -> None:
        self._port = port
        self._routes: dict[tuple[str, str], list[Responder]] = {}
        self._lock = threading.Lock()
        self.requests: list[Recorded] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- setup

    def route(self, method: str, path: str, *replies: Responder) -> None:
        """Serve ``replies`` in order for ``method path``; the last one repeats."""
        if not replies:
            raise ValueError("a route needs at least one reply")
        with self._lock:
            self._routes[(method.upper(), path)] = list(replies)

    def start(self) -> StubServer:
        server = ThreadingHTTPServer(("127.0.0.1", self._port), _Handler)
        server.daemon_threads = True
        server.stub = self  # type: ignore[attr-defined]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> StubServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- inspection

    @property
    def url(self) -> str:
        if self._server is None:
            return f"http://127.0.0.1:{self._port}"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def count(self, method: str | None = None, path: str | None = None) -> int:
        with self._lock:
            return sum(
                1
                for r in self.requests
                if (method is None or r.method == method.upper())
                and (path is None or r.path == path)
            )

    # -- serving

    def _answer(self, request: Recorded) -> Reply:
        with self._lock:
            self.requests.append(request)
            replies = self._routes.get((request.method, request.path))
            if not replies:
                return Reply(404, {"error": {"code": "NotFound", "message": "no such route"}})
            responder = replies.pop(0) if len(replies) > 1 else replies[0]
        return responder(request) if callable(responder) else responder


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the real service

    def log_message(self, format: str, *args: Any) -> None:  # silence stderr
        pass

    def _handle(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        recorded = Recorded(
            method=self.command,
            path=parts.path,
            query=dict(parse_qsl(parts.query, keep_blank_values=True)),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=self.rfile.read(length) if length else b"",
        )
        reply = self.server.stub._answer(recorded)  # type: ignore[attr-defined]
        if reply.drop:
            self.close_connection = True
            return
        body, content_type = reply.payload()
        self.send_response(reply.status)
        if content_type and "content-type" not in {k.lower() for k in reply.headers}:
            self.send_header("Content-Type", content_type)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        if reply.truncate_at is not None:
            self.send_header("Connection", "close")
            self.close_connection = True
            body = body[: reply.truncate_at]
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    do_GET = do_PUT = do_POST = do_DELETE = do_PATCH = _handle

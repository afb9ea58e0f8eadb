"""A fault-injecting HTTP proxy on 127.0.0.1, between s3fs and the S3 server (moto).

s3fs is pointed at the proxy (`endpoint_url`); the proxy forwards each request to the upstream
server unchanged (Host header included, so SigV4 signatures still match) and, for a seeded fraction
of requests, injects one fault *before* forwarding, so a faulted request never reaches the store
and every retry is safe:

- `503`: HTTP 503 with an S3 XML error body (`SlowDown`, what S3 sends when throttling);
- `reset`: the connection is closed with a TCP RST (SO_LINGER 0) before any response byte;
- `slow`: the response is delayed by `slow_s` seconds, then forwarded normally.

`counts` records what was injected (`requests` how many came, `seen` their methods and paths), so tests can assert that
faults really happened. Choices come from `random.Random(seed)` drawn under a lock: the same
request order gives the same faults (Ray's scheduling makes the order vary, not the fraction).
"""
from __future__ import annotations

import http.client
import random
import socket
import struct
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

SLOWDOWN_XML = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
                b"<Message>Please reduce your request rate.</Message>"
                b"<RequestId>FAULTPROXY</RequestId></Error>")
HOP_HEADERS = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"}


class ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: "FaultProxy"

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def _handle(self) -> None:
        body = self._read_body()
        fault = self.server.draw(self.command, self.path)
        if fault == "503":
            self._send(503, {"Content-Type": "application/xml", "Retry-After": "0"}, SLOWDOWN_XML)
            return
        if fault == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
            self.close_connection = True
            return
        if fault == "slow":
            time.sleep(self.server.slow_s)
        status, headers, data = self.server.forward(self.command, self.path, self.headers, body)
        self._send(status, headers, data)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle  # noqa: N815 (http.server names)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, headers: dict[str, str], data: bytes) -> None:
        self.send_response(status)
        length = str(len(data))
        for name, value in headers.items():
            if name.lower() == "content-length":
                length = value if self.command == "HEAD" else length  # HEAD: the object's size
            elif name.lower() not in HOP_HEADERS:
                self.send_header(name, value)
        self.send_header("Content-Length", length)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)


class FaultProxy(ThreadingHTTPServer):
    """`FaultProxy(upstream, rate=0.2, seed=7).start()`; `.url` is what s3fs talks to."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, upstream: str, rate: float = 0.2, seed: int = 0,
                 kinds: tuple[str, ...] = ("503", "reset", "slow"), slow_s: float = 1.0) -> None:
        super().__init__(("127.0.0.1", 0), ProxyHandler)
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.rate, self.kinds, self.slow_s = rate, kinds, slow_s
        self.rng = random.Random(seed)
        self.counts: Counter[str] = Counter()
        self.requests = 0
        self.seen: list[tuple[str, str]] = []  # (method, path?query) of every request
        self.enabled = True
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def draw(self, method: str = "GET", path: str = "/") -> str | None:
        with self._lock:
            self.requests += 1
            self.seen.append((method, path))
            if not self.enabled or self.rng.random() >= self.rate:
                return None
            fault = self.rng.choice(self.kinds)
            self.counts[fault] += 1
            return fault

    def forward(self, method: str, path: str, headers: Any,
                body: bytes) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection(*self.upstream, timeout=60)
        try:
            out = {k: v for k, v in headers.items() if k.lower() not in HOP_HEADERS}
            if body or method in ("PUT", "POST"):
                out["Content-Length"] = str(len(body))
            conn.request(method, path, body=body or None, headers=out)
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, dict(resp.getheaders()), data
        finally:
            conn.close()

    def start(self) -> "FaultProxy":
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()

"""A real HTTP server on 127.0.0.1 serving JPEGs and the faults a crawler meets.

Threaded `http.server` on an ephemeral port, HTTP/1.1 with keep-alive. Started and stopped by the
`fault_server` fixture in test_fetch.py; `python tests/integration/faultserver.py` runs it alone
(for bench/bench_fetch.py) and prints its base URL. Every request is counted in `hits` by path.
"""
from __future__ import annotations

import io
import socket
import struct
import sys
import threading
import time
from collections import Counter
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from PIL import Image

ROBOTS_TXT = b"User-agent: *\nDisallow: /private/\n"
HTML = b"<!doctype html><html><body><h1>Not an image</h1></body></html>"
SLOW_SECONDS = 2.0
MAX_TEST_BYTES = 100_000  # what the tests set as max_bytes; /huge bodies exceed it


@lru_cache(maxsize=64)
def make_jpeg(n: int, size: tuple[int, int] = (64, 48), quality: int = 90) -> bytes:
    """A real JPEG, different for each `n` (a gradient with an n-dependent colour)."""
    w, h = size
    image = Image.new("RGB", size)
    image.putdata([((x * 255 // w + n * 37) % 256, (y * 255 // h) % 256, (n * 91) % 256)
                   for y in range(h) for x in range(w)])
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


@lru_cache(maxsize=16)
def make_photo(n: int) -> bytes:
    """An ImageNet-sized JPEG (500x375, about 100 kB): noise over a colour, for benchmarks."""
    noise = Image.effect_noise((500, 375), 24).convert("RGB")
    tint = Image.new("RGB", (500, 375), ((n * 53) % 256, (n * 97) % 256, 128))
    buf = io.BytesIO()
    Image.blend(noise, tint, 0.5).save(buf, "JPEG", quality=90)
    return buf.getvalue()


class FaultHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are separate writes: no 40 ms stalls
    server: "FaultServer"

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        path = self.path.split("?", 1)[0]
        first = self.server.count(path) == 1
        route = ROUTES.get(path)
        if route is not None:
            route(self, first)
        elif path.startswith("/photo/"):
            self.send(200, make_photo(_number(path) % 16), "image/jpeg")
        elif path.startswith("/img/") or path.startswith("/private/"):
            self.send(200, make_jpeg(_number(path)), "image/jpeg")
        elif path.startswith("/redirect/"):
            n = _number(path)
            self.redirect(f"/redirect/{n - 1}" if n > 0 else "/img/7.jpg")
        elif path.startswith("/hang/"):  # answers only after `hang_seconds` (if still running)
            self.hang()
        elif path.startswith("/flaky/"):
            self.send(500, b"oops") if first else self.send(200, make_jpeg(8), "image/jpeg")
        elif path.startswith("/ratelimited/"):
            if first:
                self.send(429, b"slow down", extra={"Retry-After": "1"})
            else:
                self.send(200, make_jpeg(9), "image/jpeg")
        else:
            self.send(404, b"not found")

    def send(self, status: int, body: bytes, ctype: str = "text/plain",
             extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def redirect(self, location: str) -> None:
        self.send(302, b"", extra={"Location": location})

    def hang(self) -> None:
        until = time.monotonic() + self.server.hang_seconds
        while time.monotonic() < until and not self.server.stopping.is_set():
            time.sleep(0.05)
        self.send(200, make_jpeg(13), "image/jpeg")

    def slow(self, first: bool) -> None:
        time.sleep(SLOW_SECONDS)
        self.send(200, make_jpeg(3), "image/jpeg")

    def reset(self, first: bool) -> None:
        """Promise 100 kB, send 1 kB, then reset the connection (RST, not a clean close)."""
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", "100000")
        self.end_headers()
        self.wfile.write(make_jpeg(4)[:1000])
        self.wfile.flush()
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True

    def huge_streamed(self, first: bool) -> None:
        """A chunked body with no Content-Length that grows past the limit."""
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        chunk = make_jpeg(5) + b"\0" * 16_384
        try:
            for _ in range(MAX_TEST_BYTES * 4 // len(chunk) + 1):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.write(b"0\r\n\r\n")
        except OSError:  # the client hung up once it saw enough: what we expect
            self.close_connection = True


def _number(path: str) -> int:
    digits = "".join(ch for ch in path.rsplit("/", 1)[-1] if ch.isdigit())
    return int(digits) if digits else 0


ROUTES = {
    "/robots.txt": lambda h, first: h.send(200, ROBOTS_TXT),
    "/404": lambda h, first: h.send(404, b"not found"),
    "/down": lambda h, first: h.send(503, b"down", extra={"Retry-After": "0"}),
    "/slow": FaultHandler.slow,
    "/reset": FaultHandler.reset,
    "/huge-declared": lambda h, first: h.send(200, b"\xff\xd8\xff" + b"\0" * (MAX_TEST_BYTES * 2)),
    "/huge-streamed": FaultHandler.huge_streamed,
    "/loop": lambda h, first: h.redirect("/loop"),
    "/to-private": lambda h, first: h.redirect("http://10.0.0.1/img/1.jpg"),
    # cloud metadata and link-local: refused even with private networks open (never connected)
    "/to-metadata": lambda h, first: h.redirect("http://169.254.169.254/latest/meta-data/"),
    "/to-mapped-metadata": lambda h, first: h.redirect("http://[::ffff:169.254.169.254]/"),
    "/to-link-local": lambda h, first: h.redirect("http://169.254.7.7/img/1.jpg"),
    "/to-ftp": lambda h, first: h.redirect("ftp://example.com/x.jpg"),
    "/page.html": lambda h, first: h.send(200, HTML, "text/html"),
    "/fake.jpg": lambda h, first: h.send(200, HTML, "image/jpeg"),
    "/wrongtype": lambda h, first: h.send(200, make_jpeg(6), "text/html; charset=utf-8"),
    "/noai.jpg": lambda h, first: h.send(200, make_jpeg(10), "image/jpeg",
                                         extra={"X-Robots-Tag": "noai"}),
    "/noimageai.jpg": lambda h, first: h.send(200, make_jpeg(11), "image/jpeg",
                                              extra={"X-Robots-Tag": "synshard: noimageai"}),
    "/otherbot.jpg": lambda h, first: h.send(200, make_jpeg(12), "image/jpeg",
                                             extra={"X-Robots-Tag": "otherbot: noai"}),
}


class FaultServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256

    def __init__(self, port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), FaultHandler)
        self.hits: Counter[str] = Counter()
        self._lock = threading.Lock()
        self.hang_seconds = 30.0  # how long /hang/... URLs keep the client waiting
        self.stopping = threading.Event()

    def handle_error(self, request: object, client_address: object) -> None:
        """Clients hanging up on slow or huge responses is expected here: stay quiet."""
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)

    def count(self, path: str) -> int:
        with self._lock:
            self.hits[path] += 1
            return self.hits[path]

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def start(self) -> "FaultServer":
        threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.shutdown()
        self.server_close()


if __name__ == "__main__":
    server = FaultServer(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
    print(server.base, flush=True)
    server.serve_forever()

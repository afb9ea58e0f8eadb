"""What a reply or a client error means for a URL: its row reason, whether a retry may help
(and after how long the server asks), and whether the body is an image at all.

Pure functions of a response's bytes, headers and the client's exceptions; the fetcher
(`ingest/http.py`) acts on them.
"""
from __future__ import annotations

import asyncio
import socket
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

import aiohttp

from .netguard import BlockedError


class Rejected(Exception):
    """A URL's final failure; `reason` becomes the row's reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Transient(Rejected):
    """A failure worth retrying; `retry_after` is the server's requested wait, if any."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


def sniff_image(data: bytes) -> str | None:
    """The image format the leading bytes announce, or None (HTML, text, JSON, empty...).

    The patterns are the WHATWG MIME Sniffing image table plus TIFF, HEIF/AVIF, JPEG 2000 and
    JPEG XL: the body decides, not the Content-Type. Decoding later is the real judge.
    """
    head = data[:16]
    if head[4:8] == b"ftyp" and head[8:12] in (b"avif", b"avis", b"heic", b"heix", b"mif1"):
        return "heif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    return None


def head(chunks: list[bytes], n: int = 16) -> bytes:
    """The first `n` bytes of a body given as chunks."""
    first = chunks[0] if chunks else b""
    return first[:n] if len(first) >= n else b"".join(chunks)[:n]


_MAGIC = (
    (b"\xff\xd8\xff", "jpeg"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
    (b"BM", "bmp"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
    (b"\x00\x00\x01\x00", "ico"),
    (b"\x00\x00\x02\x00", "ico"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "jpeg2000"),
    (b"\xff\x4f\xff\x51", "jpeg2000"),
    (b"\xff\x0a", "jxl"),
    (b"\x00\x00\x00\x0cJXL \r\n\x87\n", "jxl"),
)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delay-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def classify_error(exc: BaseException) -> Rejected:
    """Map a client exception to a row reason; `Transient` when a retry may succeed."""
    if isinstance(exc, asyncio.TimeoutError):  # aiohttp's timeouts subclass it
        return Transient("timeout")
    if isinstance(exc, aiohttp.ClientSSLError):
        return Rejected("tls error")
    if isinstance(exc, aiohttp.ClientConnectorError):
        cause = exc.os_error
        if isinstance(cause, BlockedError):
            return Rejected(cause.reason)
        if isinstance(cause, socket.gaierror):
            return Rejected("dns error")
        return Transient("connection error")
    if isinstance(exc, (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError)):
        return Transient("connection reset")
    if isinstance(exc, aiohttp.ClientOSError):
        return Transient("connection reset")
    if isinstance(exc, aiohttp.InvalidURL):
        return Rejected("bad url")
    if isinstance(exc, aiohttp.ClientResponseError):
        return Rejected("bad response")
    return Rejected(f"http error: {type(exc).__name__}")

"""HTTP/1.1 as both clients write and read it: a request's bytes, an answer's head and framing.

strata answers HTTP/1.1 with Content-Length bodies (chunked is read too, and a body up to the
close for an HTTP/1.0-style answer); the clients send no pipelined requests. The blocking client
reads over a socket, the asyncio one over a StreamReader: the I/O differs, these rules do not.
http.client is not used: its header parsing (the email package) cost more Python time per call
than the whole round trip to strata on loopback (bench/python, bench/README.md).
"""
from typing import Dict, Iterable, Optional, Tuple

# body_length()'s answers besides a byte count
CHUNKED = -1
UNTIL_CLOSE = -2


def request_bytes(method: str, target: str, hostport: str, headers: Dict[str, str],
                  body: Optional[bytes]) -> bytes:
    """The request as sent: request line, Host, the headers, Content-Length when there is a body
    (or the method takes one), the body."""
    parts = [f"{method} {target} HTTP/1.1\r\nHost: {hostport}\r\n"]
    for name, value in headers.items():
        if "\r" in value or "\n" in value:
            raise ValueError(f"strata: header {name} has a line break in its value")
        parts.append(f"{name}: {value}\r\n")
    if body is not None or method in ("POST", "PUT", "PATCH"):
        parts.append(f"Content-Length: {len(body) if body is not None else 0}\r\n")
    parts.append("\r\n")
    data = "".join(parts).encode("latin-1")
    return data + body if body else data


class Malformed(ValueError):
    """The answer is not HTTP/1.x."""


def parse_head(status_line: bytes, header_lines: Iterable[bytes]) -> Tuple[int, Dict[str, str],
                                                                          bool]:
    """(status, headers with lower-case names, whether the connection stays open)."""
    parts = status_line.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise Malformed(f"malformed status line {status_line[:80]!r}")
    status = int(parts[1])
    keep = parts[0] == b"HTTP/1.1"
    headers: Dict[str, str] = {}
    for line in header_lines:
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    conn = headers.get("connection")
    if conn is not None:
        conn = conn.lower()
        if "close" in conn:
            keep = False
        elif "keep-alive" in conn:
            keep = True
    return status, headers, keep


def body_length(method: str, status: int, headers: Dict[str, str]) -> int:
    """The answer's body: a byte count, CHUNKED or UNTIL_CLOSE."""
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        return 0
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return CHUNKED
    length = headers.get("content-length")
    if length is None:
        return UNTIL_CLOSE
    if not length.isdigit():
        raise Malformed(f"bad Content-Length {length[:40]!r}")
    return int(length)


def chunk_size(line: bytes) -> int:
    """The size on a chunk's first line (extensions ignored)."""
    text = line.split(b";", 1)[0].strip()
    try:
        return int(text, 16)
    except ValueError:
        raise Malformed(f"bad chunk size {line[:40]!r}") from None


def is_blank(line: bytes) -> bool:
    """The end of a head: an empty line (or the end of the stream)."""
    return line in (b"\r\n", b"\n", b"")

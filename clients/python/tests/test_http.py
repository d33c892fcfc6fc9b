"""The HTTP/1.1 rules both clients share (strata/_http.py): what a request is sent as, how an
answer's head and framing are read, and what is refused. The clients' I/O over them is covered
against real servers by the other tests."""
import pytest

from strata import Strata
from strata._http import (CHUNKED, UNTIL_CLOSE, Malformed, body_length, chunk_size, parse_head,
                          request_bytes)


def test_a_request_as_sent():
    assert request_bytes("GET", "/v1/cache/a/b", "127.0.0.1:8080", {"X-Tenant": "acme"}, None) == \
        b"GET /v1/cache/a/b HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nX-Tenant: acme\r\n\r\n"
    assert request_bytes("PUT", "/k", "h", {}, b"xy") == \
        b"PUT /k HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nxy"
    assert request_bytes("POST", "/k", "h", {}, None).endswith(b"Content-Length: 0\r\n\r\n")


def test_a_line_break_in_a_header_value_is_refused():
    with pytest.raises(ValueError, match="line break"):
        request_bytes("GET", "/", "h", {"X-Tenant": "a\r\nX-Evil: 1"}, None)


def test_a_header_with_a_line_break_never_reaches_the_server(server, ns):
    with Strata(server.url, tenant="a\r\nX-Tenant: b", namespace=ns) as c:
        with pytest.raises(ValueError, match="line break"):
            c.get("k")


def test_heads_and_framing():
    status, headers, keep = parse_head(b"HTTP/1.1 404 Not Found\r\n",
                                       [b"Content-Length: 3\r\n", b"X-Cache: MISS\r\n"])
    assert (status, headers, keep) == (404, {"content-length": "3", "x-cache": "MISS"}, True)
    assert parse_head(b"HTTP/1.1 200 OK\r\n", [b"Connection: close\r\n"])[2] is False
    assert parse_head(b"HTTP/1.0 200 OK\r\n", [])[2] is False
    assert parse_head(b"HTTP/1.0 200 OK\r\n", [b"Connection: keep-alive\r\n"])[2] is True
    for bad in (b"SSH-2.0-OpenSSH\r\n", b"HTTP/1.1 abc\r\n", b"\r\n"):
        with pytest.raises(Malformed):
            parse_head(bad, [])
    assert body_length("GET", 200, {"content-length": "12"}) == 12
    assert body_length("HEAD", 200, {"content-length": "12"}) == 0
    assert body_length("GET", 204, {}) == 0
    assert body_length("GET", 200, {"transfer-encoding": "chunked"}) == CHUNKED
    assert body_length("GET", 200, {}) == UNTIL_CLOSE
    with pytest.raises(Malformed):
        body_length("GET", 200, {"content-length": "-1"})
    assert chunk_size(b"1a;ext=1\r\n") == 26
    with pytest.raises(Malformed):
        chunk_size(b"zz\r\n")

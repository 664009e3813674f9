"""Replays written straight to the socket (wire.py), over raw TCP against a real gunicorn with
uvicorn's worker: keep-alive, pipelining, HEAD, HTTP/1.0 and Connection: close must behave
exactly as through uvicorn's own path, byte for byte apart from the Date header."""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from iiif_server.check import free_port, running_server
from tests.conftest import decode, make_pattern, pixel, save_pyramid

TILE = "/iiif/3/scan.tif/256,0,256,256/256,/0/default.jpg"
INFO = "/iiif/3/scan.tif/info.json"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int, Path]]:
    base = tmp_path_factory.mktemp("wire")
    root = base / "images"
    root.mkdir()
    save_pyramid(make_pattern(1024, 768), root / "scan.tif", compression="jpeg")
    log = base / "server.log"
    port = free_port()
    env = {"IIIF_SERVER_SERVER_WORKER": "asgi"}
    with running_server(["serve", "--images", str(root), "--workers", "1"], port, env, log=log):
        yield "127.0.0.1", port, log


def _request(path: str, method: str = "GET", version: str = "1.1", extra: str = "") -> bytes:
    return f"{method} {path} HTTP/{version}\r\nHost: iiif.test\r\n{extra}\r\n".encode()


def _read_response(sock: socket.socket, buffer: bytearray, head_only: bool = False) -> tuple[str, dict, bytes]:
    """One response off the connection: status line, headers (lower-case names), body."""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before a response")
        buffer += chunk
    end = buffer.index(b"\r\n\r\n")
    lines = buffer[:end].decode("latin-1").split("\r\n")
    del buffer[: end + 4]
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])}
    length = 0 if head_only else int(headers.get("content-length", "0"))
    while len(buffer) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed inside a body")
        buffer += chunk
    body = bytes(buffer[:length])
    del buffer[:length]
    return lines[0], headers, body


def _without_date(headers: dict) -> dict:
    return {name: value for name, value in headers.items() if name != "date"}


def _connect(server: tuple[str, int, Path]) -> socket.socket:
    return socket.create_connection(server[:2], timeout=30)


def test_keep_alive_replays_equal_the_first_answer(server: tuple[str, int, Path]) -> None:
    with _connect(server) as sock:
        buffer = bytearray()
        answers = []
        for _ in range(6):
            sock.sendall(_request(TILE))
            answers.append(_read_response(sock, buffer))
    first = answers[0]
    assert first[0] == "HTTP/1.1 200 OK"
    assert all(a[0] == first[0] and _without_date(a[1]) == _without_date(first[1]) for a in answers)
    assert all(a[2] == first[2] for a in answers) and re.match(r"\w{3}, \d\d \w{3} \d{4}", answers[-1][1]["date"])
    image = decode(answers[-1][2])
    assert (image.width, image.height) == (256, 256) and pixel(image, 10, 10) != (0, 0, 0)


def test_pipelined_requests_are_answered_in_order(server: tuple[str, int, Path]) -> None:
    with _connect(server) as sock:
        buffer = bytearray()
        for path in (TILE, INFO):  # known to the worker: the pipelined ones below may be replays
            for _ in range(2):
                sock.sendall(_request(path))
                _read_response(sock, buffer)
        order = [TILE, INFO, TILE, "/iiif/3/scan.tif/full/50,/0/default.png", INFO, TILE]
        sock.sendall(b"".join(_request(path) for path in order))
        answers = [_read_response(sock, buffer) for _ in order]
    kinds = [headers["content-type"] for _, headers, _ in answers]
    assert kinds == [
        "image/jpeg",
        'application/ld+json;profile="http://iiif.io/api/image/3/context.json"',
        "image/jpeg",
        "image/png",
        'application/ld+json;profile="http://iiif.io/api/image/3/context.json"',
        "image/jpeg",
    ]
    assert answers[0][2] == answers[2][2] == answers[5][2] and decode(answers[3][2]).width == 50


def test_head_sends_the_headers_only(server: tuple[str, int, Path]) -> None:
    with _connect(server) as sock:
        buffer = bytearray()
        sock.sendall(_request(TILE))
        _, get_headers, body = _read_response(sock, buffer)
        for _ in range(2):
            sock.sendall(_request(TILE, "HEAD"))
            status, headers, _ = _read_response(sock, buffer, head_only=True)
            assert status == "HTTP/1.1 200 OK" and _without_date(headers) == _without_date(get_headers)
        sock.sendall(_request(INFO))  # the connection is still in step: no stray body bytes
        status, headers, info = _read_response(sock, buffer)
    assert status == "HTTP/1.1 200 OK" and info.startswith(b"{") and int(headers["content-length"]) == len(info)
    assert int(get_headers["content-length"]) == len(body)


@pytest.mark.parametrize(("version", "extra"), [("1.1", "Connection: close\r\n"), ("1.0", "")])
def test_a_closing_request_is_answered_then_closed(server: tuple[str, int, Path], version: str, extra: str) -> None:
    with _connect(server) as sock:
        buffer = bytearray()
        sock.sendall(_request(TILE, version=version, extra=extra))
        status, headers, body = _read_response(sock, buffer)
        assert status.endswith("200 OK") and len(body) == int(headers["content-length"])
        assert sock.recv(1) == b""  # closed by the server


def test_an_active_connection_outlives_the_keep_alive_timeout(server: tuple[str, int, Path]) -> None:
    """Two replays pipelined in one packet each arm the keep-alive timer; the first must not be
    left armed to close the connection while the client keeps using it (keepalive is 5 s)."""
    with _connect(server) as sock:
        buffer = bytearray()
        for _ in range(3):  # on a thread, then inline and kept: from now on, replays
            sock.sendall(_request(TILE))
            _read_response(sock, buffer)
        sock.sendall(_request(TILE) + _request(TILE))
        _read_response(sock, buffer)
        _read_response(sock, buffer)
        for _ in range(4):
            time.sleep(1.6)
            sock.sendall(_request(TILE))
            assert _read_response(sock, buffer)[0] == "HTTP/1.1 200 OK"


def test_replays_on_the_wire_are_logged(server: tuple[str, int, Path]) -> None:
    with _connect(server) as sock:
        buffer = bytearray()
        for _ in range(4):
            sock.sendall(_request(TILE + "?wire-log", extra="User-Agent: wire-test\r\n"))
            _read_response(sock, buffer)
    time.sleep(1.5)  # the access log is written in batches, at most a second late
    lines = [line for line in server[2].read_text().splitlines() if "?wire-log" in line]
    assert len(lines) == 4, lines
    assert all('" 200 ' in line and '"wire-test"' in line and line.endswith("pass-through") for line in lines)


def _one(server: tuple[str, int, Path], path: str, extra: str = "") -> tuple[str, dict, bytes]:
    with _connect(server) as sock:
        sock.sendall(_request(path, extra=extra))
        return _read_response(sock, bytearray())


def test_every_answer_says_nosniff(server: tuple[str, int, Path]) -> None:
    """Error bodies echo the identifier as text/plain: no browser may sniff them into HTML."""
    answers = {
        "tile": _one(server, TILE),
        "replayed tile": _one(server, TILE),
        "image 404": _one(server, "/iiif/3/%3Cscript%3E.tif/info.json"),
        "image 400": _one(server, "/iiif/3/scan.tif/full/nope/0/default.jpg"),
        "page": _one(server, "/"),
        "page 404": _one(server, "/no-such-page"),
        "liveness": _one(server, "/health/live"),
    }
    for name, (status, headers, _) in answers.items():
        assert headers.get("x-content-type-options") == "nosniff", (name, status, headers)
    assert (
        answers["image 404"][0] == "HTTP/1.1 404 Not Found"
        and answers["image 404"][1]["access-control-allow-origin"] == "*"
    )


def test_if_modified_since_in_the_future_is_ignored(server: tuple[str, int, Path]) -> None:
    """RFC 9110 §13.1.3: a date later than the server's clock is invalid, so no 304 on its strength."""
    _, headers, body = _one(server, TILE)
    future = "Fri, 01 Jan 2100 00:00:00 GMT"
    status, _, again = _one(server, TILE, extra=f"If-Modified-Since: {future}\r\n")
    assert status == "HTTP/1.1 200 OK" and again == body
    status, _, _ = _one(server, TILE, extra=f"If-Modified-Since: {headers['last-modified']}\r\n")
    assert status == "HTTP/1.1 304 Not Modified"

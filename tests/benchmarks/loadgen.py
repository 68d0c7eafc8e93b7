"""A closed-loop HTTP client that costs little: the sandbox's ceiling, the web server's load.

One thread multiplexes every connection with :mod:`selectors` and writes
prebuilt request bytes, so the client side costs little and the server is
what saturates. For the sandbox's ceiling (:func:`ceiling`) the requests are
the docs-style ones (all four vendors in turn), so the sandbox does the same
validation and recording work as for the library's requests; the web server
benchmark sends its page requests through :func:`closed_loop` directly.
"""

from __future__ import annotations

import json
import selectors
import socket
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from tests.benchmarks.common import distribution
from tests.benchmarks.handwritten import vendor_requests


def _raw_requests(base_url: str, count: int) -> list[bytes]:
    host = urlsplit(base_url).netloc
    raws = []
    for n in range(count):
        for url, headers, body in vendor_requests(base_url, n):
            data = json.dumps(body).encode()
            lines = [
                f"POST {urlsplit(url).path} HTTP/1.1",
                f"Host: {host}",
                "Content-Type: application/json",
                f"Content-Length: {len(data)}",
                *(f"{name}: {value}" for name, value in headers.items()),
            ]
            raws.append(("\r\n".join(lines) + "\r\n\r\n").encode() + data)
    return raws


def ceiling(base_url: str, connections: int, seconds: float, warmup: float = 0.5) -> dict[str, Any]:
    """Answers per second over ``seconds`` after ``warmup``, with ``connections`` in flight."""
    address = urlsplit(base_url)
    run = closed_loop(
        (address.hostname or "", address.port or 80),
        _raw_requests(base_url, 64),
        connections,
        seconds,
        warmup,
    )
    del run["latency_ms"]
    return run


@dataclass
class _Client:
    """One client connection: its socket, what it has read, which request it is on."""

    sock: socket.socket
    next: int
    buffer: bytes = b""
    sent_at: float = 0.0


def closed_loop(
    address: tuple[str, int],
    raws: Sequence[bytes],
    connections: int,
    seconds: float,
    warmup: float = 0.5,
    *,
    keep_headers: bool = False,
) -> dict[str, Any]:
    """``connections`` clients, each sending its next request as soon as the last is answered.

    Requests are ``raws`` in turn. Counted: the answers (and their latency,
    send to last byte, reconnecting included) that arrive in the ``seconds``
    after ``warmup``; then every client finishes its request in flight. A
    connection stays open unless the server answers ``Connection: close``
    (gunicorn's sync workers always do), then the client reconnects. With
    ``keep_headers`` the result's ``headers`` holds every answer's headers
    (lower-case names), warm-up and tail included.
    """
    selector = selectors.DefaultSelector()
    clients = [_Client(_connect(address), index) for index in range(connections)]
    for client in clients:
        selector.register(client.sock, selectors.EVENT_READ, client)
        client.sent_at = time.perf_counter()
        client.sock.sendall(raws[client.next % len(raws)])
    statuses: Counter[int] = Counter()
    latencies: list[float] = []
    kept: list[dict[str, str]] = []
    started = time.perf_counter()
    measure_from = started + warmup
    deadline = measure_from + seconds
    in_flight = connections
    try:
        while in_flight:
            for key, _ in selector.select(timeout=1.0):
                client = key.data
                chunk = client.sock.recv(65536)
                if not chunk:
                    raise ConnectionError("the server closed a connection without answering")
                client.buffer += chunk
                while (answer := _complete_answer(client.buffer)) is not None:
                    now = time.perf_counter()
                    client.buffer = client.buffer[answer.length :]
                    if keep_headers:
                        kept.append(answer.headers)
                    if measure_from <= now < deadline:
                        statuses[answer.status] += 1
                        latencies.append((now - client.sent_at) * 1000)
                    closed = answer.headers.get("connection", "").lower() == "close"
                    if closed:
                        selector.unregister(client.sock)
                        client.sock.close()
                    if now >= deadline:
                        in_flight -= 1  # answered: close it cleanly below, no reset
                        break
                    client.next += connections
                    client.sent_at = time.perf_counter()  # before reconnecting: that counts
                    if closed:
                        client.sock = _connect(address)
                        selector.register(client.sock, selectors.EVENT_READ, client)
                    client.sock.sendall(raws[client.next % len(raws)])
            if time.perf_counter() > deadline + 30:
                raise TimeoutError("the server stopped answering")
    finally:
        for client in clients:
            if client.sock.fileno() >= 0:
                selector.unregister(client.sock)
                client.sock.close()
    counted = sum(statuses.values())
    run: dict[str, Any] = {
        "connections": connections,
        "seconds": seconds,
        "requests": counted,
        "requests_per_second": counted / seconds,
        "statuses": {str(status): count for status, count in statuses.items()},
        "latency_ms": distribution(latencies),
    }
    if keep_headers:
        run["headers"] = kept
    return run


def _connect(address: tuple[str, int]) -> socket.socket:
    sock = socket.create_connection(address)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setblocking(False)
    return sock


@dataclass
class _Answer:
    status: int
    #: Lower-case names.
    headers: dict[str, str]
    #: Bytes of the buffer it takes, head and body.
    length: int


def _complete_answer(buffer: bytes) -> _Answer | None:
    """The first complete answer in ``buffer`` (Content-Length framed), else None."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = buffer[:end].decode("latin-1").split("\r\n")
    headers = {}
    for line in head[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = end + 4 + int(headers.get("content-length", 0))
    if len(buffer) < length:
        return None
    return _Answer(int(head[0][9:12]), headers, length)

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
    load = _ClosedLoop(address, raws, connections, warmup, seconds, keep_headers)
    load.run()
    counted = sum(load.statuses.values())
    run: dict[str, Any] = {
        "connections": connections,
        "seconds": seconds,
        "requests": counted,
        "requests_per_second": counted / seconds,
        "statuses": {str(status): count for status, count in load.statuses.items()},
        "latency_ms": distribution(load.latencies),
    }
    if keep_headers:
        run["headers"] = load.kept
    return run


class _ClosedLoop:
    """The state of one :func:`closed_loop` run."""

    def __init__(
        self,
        address: tuple[str, int],
        raws: Sequence[bytes],
        connections: int,
        warmup: float,
        seconds: float,
        keep_headers: bool,
    ) -> None:
        self.address = address
        self.raws = raws
        self.connections = connections
        self.keep_headers = keep_headers
        self.selector = selectors.DefaultSelector()
        self.statuses: Counter[int] = Counter()
        self.latencies: list[float] = []
        self.kept: list[dict[str, str]] = []
        self.measure_from = time.perf_counter() + warmup
        self.deadline = self.measure_from + seconds
        self.in_flight = connections
        self.clients = [_Client(_connect(address), index) for index in range(connections)]

    def run(self) -> None:
        try:
            for client in self.clients:
                self.selector.register(client.sock, selectors.EVENT_READ, client)
                self._send_next(client)
            while self.in_flight:
                for key, _ in self.selector.select(timeout=1.0):
                    self._read(key.data)
                if time.perf_counter() > self.deadline + 30:
                    raise TimeoutError("the server stopped answering")
        finally:
            for client in self.clients:
                if client.sock.fileno() >= 0:
                    self.selector.unregister(client.sock)
                    client.sock.close()

    def _send_next(self, client: _Client) -> None:
        client.sent_at = time.perf_counter()
        client.sock.sendall(self.raws[client.next % len(self.raws)])

    def _read(self, client: _Client) -> None:
        chunk = client.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed a connection without answering")
        client.buffer += chunk
        while (answer := _complete_answer(client.buffer)) is not None:
            client.buffer = client.buffer[answer.length :]
            if not self._answered(client, answer):
                break

    def _answered(self, client: _Client, answer: _Answer) -> bool:
        """Count ``answer``; send the client's next request unless time is up (False)."""
        now = time.perf_counter()
        if self.keep_headers:
            self.kept.append(answer.headers)
        if self.measure_from <= now < self.deadline:
            self.statuses[answer.status] += 1
            self.latencies.append((now - client.sent_at) * 1000)
        closed = answer.headers.get("connection", "").lower() == "close"
        if closed:
            self.selector.unregister(client.sock)
            client.sock.close()
        if now >= self.deadline:
            self.in_flight -= 1  # answered: close it cleanly, no reset
            return False
        client.next += self.connections
        if closed:  # reconnecting counts in the next request's latency
            client.sent_at = time.perf_counter()
            client.sock = _connect(self.address)
            self.selector.register(client.sock, selectors.EVENT_READ, client)
            client.sock.sendall(self.raws[client.next % len(self.raws)])
            return True
        self._send_next(client)
        return True


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

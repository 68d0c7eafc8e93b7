"""The sandbox's own ceiling: many keep-alive connections, no library code.

One thread multiplexes every connection with :mod:`selectors` and writes
prebuilt request bytes, so the client side costs little and the sandbox is
what saturates. The requests are the docs-style ones (all four vendors in
turn), so the sandbox does the same validation and recording work as for the
library's requests.
"""

from __future__ import annotations

import json
import selectors
import socket
import time
from collections import Counter
from typing import Any
from urllib.parse import urlsplit

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
    raws = _raw_requests(base_url, 64)
    selector = selectors.DefaultSelector()
    sockets = []
    for index in range(connections):
        sock = socket.create_connection((address.hostname, address.port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        sock.sendall(raws[index % len(raws)])
        selector.register(sock, selectors.EVENT_READ, {"buffer": b"", "next": index})
        sockets.append(sock)
    statuses: Counter[int] = Counter()
    started = time.perf_counter()
    measure_from = started + warmup
    deadline = measure_from + seconds
    counted = 0
    in_flight = connections
    try:
        while in_flight:
            now = time.perf_counter()
            for key, _ in selector.select(timeout=1.0):
                connection: socket.socket = key.fileobj  # type: ignore[assignment]
                state = key.data
                chunk = connection.recv(65536)
                if not chunk:
                    raise ConnectionError("the sandbox closed a keep-alive connection")
                state["buffer"] += chunk
                while (answer := _complete_answer(state["buffer"])) is not None:
                    status, length = answer
                    state["buffer"] = state["buffer"][length:]
                    if measure_from <= now < deadline:
                        counted += 1
                        statuses[status] += 1
                    if now >= deadline:
                        in_flight -= 1  # answered: close it cleanly below, no reset
                        continue
                    state["next"] += connections
                    connection.sendall(raws[state["next"] % len(raws)])
            if now > deadline + 10:
                raise TimeoutError("the sandbox stopped answering")
    finally:
        for sock in sockets:
            selector.unregister(sock)
            sock.close()
    return {
        "connections": connections,
        "seconds": seconds,
        "requests": counted,
        "requests_per_second": counted / seconds,
        "statuses": {str(status): count for status, count in statuses.items()},
    }


def _complete_answer(buffer: bytes) -> tuple[int, int] | None:
    """(status, bytes used) of the first complete answer in ``buffer``, else None."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = buffer[:end].decode("latin-1")
    length = 0
    for line in head.split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    if len(buffer) < end + 4 + length:
        return None
    return int(head[9:12]), end + 4 + length

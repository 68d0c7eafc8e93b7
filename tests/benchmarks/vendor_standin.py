"""``python -m tests.benchmarks.vendor_standin``: a vendor stand-in that answers after a latency.

A load server, not a sandbox: it takes any ``POST /<vendor>/...`` for the four
vendors, validates nothing, and answers 200 with a body like the vendor's
after a configurable delay, so a benchmark can give every vendor a real round
trip (20, 100, 300 ms) without the stand-in itself costing CPU while it waits.
One asyncio loop serves every keep-alive connection; the delay is an
``asyncio.sleep``, so requests in flight overlap however many there are.

It speaks :class:`~tests.benchmarks.common.SandboxProcess`'s protocol (one
JSON command per stdin line; end of stdin stops it): ``reset``, ``latency``
(``seconds``), ``counts`` and ``marks`` (the ``n`` property and arrival time of
every event received, stamped on arrival, before the delay).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import Counter
from typing import Any

from tests.benchmarks.common import VENDORS, serve_commands
from tests.processes.helpers import marker

#: What each vendor answers on success (the sandbox's bodies; the adapters read them).
BODIES = {
    "hellotext": b'{"status": "received"}',
    "browsee": b'{"status": "success"}',
}


class StandIn:
    """What the stand-in received, and how long it waits before answering."""

    def __init__(self) -> None:
        self.latency = 0.0
        self._lock = threading.Lock()
        self._requests: Counter[str] = Counter()
        self._events: Counter[str] = Counter()
        self._marks: dict[str, list[list[float]]] = {vendor: [] for vendor in VENDORS}

    def record(self, vendor: str, body: bytes, received_at: float) -> None:
        try:
            payload = json.loads(body)
        except ValueError:
            payload = None
        # PrimeData takes a batch: {"events": [...]}; the others one event per request.
        batch = payload.get("events") if isinstance(payload, dict) else None
        events = batch if isinstance(batch, list) else [payload]
        numbers = [marker(vendor, e) if isinstance(e, dict) else None for e in events]
        with self._lock:
            self._requests[vendor] += 1
            self._events[vendor] += len(events)
            self._marks[vendor] += [[n, received_at] for n in numbers if n is not None]

    def answer(self, command: dict[str, Any]) -> dict[str, Any]:
        cmd = command.pop("cmd")
        with self._lock:
            if cmd == "reset":
                self._requests.clear()
                self._events.clear()
                self._marks = {vendor: [] for vendor in VENDORS}
                return {"ok": True}
            if cmd == "latency":
                self.latency = float(command["seconds"])
                return {"ok": True}
            if cmd == "counts":
                return {"accepted_events": dict(self._events), "requests": dict(self._requests)}
            if cmd == "marks":
                return {"marks": {vendor: list(marks) for vendor, marks in self._marks.items()}}
        return {"error": f"unknown command {cmd!r}"}

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One keep-alive connection: read a request, wait, answer; until the client leaves."""
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                received_at = time.time()
                request_line, *header_lines = head.decode("latin-1").split("\r\n")
                length = 0
                for line in header_lines:
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                body = await reader.readexactly(length)
                vendor = request_line.split(" ")[1].split("/")[1]
                if vendor not in VENDORS:
                    writer.write(_answer(404, b'{"error": "unknown vendor"}'))
                    continue
                self.record(vendor, body, received_at)
                if self.latency:
                    await asyncio.sleep(self.latency)
                writer.write(_answer(200, BODIES.get(vendor, b"{}")))
                await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            writer.close()


def _answer(status: int, body: bytes) -> bytes:
    reason = {200: "OK", 404: "Not Found"}[status]
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def main() -> None:
    standin = StandIn()
    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(
        asyncio.start_server(standin.serve, "127.0.0.1", 0, backlog=1024)
    )
    port = server.sockets[0].getsockname()[1]
    threading.Thread(target=loop.run_forever, daemon=True, name="vendor-standin").start()
    serve_commands(f"http://127.0.0.1:{port}", standin.answer)


if __name__ == "__main__":
    main()

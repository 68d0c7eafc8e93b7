"""Benchmark 1: what ``track()`` costs the caller, per call, inside a transaction.

Against (a) a plain ORM insert of one comparable row (the same event, as one
``Event`` row: what a hand-rolled "log it to a table" costs) and (b)
segment-analytics-python's ``track()``, an in-memory queue with no
durability, its consumer thread posting to a local sink (never the internet).

Four vendors are configured and ``DELIVERY="worker"``: the web process only
writes rows, which is exactly what the request path pays with any backend
(the ``thread`` backend adds one ``Event.set()`` after commit). The variants
run interleaved in rounds, each round one transaction per variant, so drift
on a noisy machine hits them alike.
"""

from __future__ import annotations

import http.server
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from tests.benchmarks.common import (
    VENDORS,
    child_parser,
    database_description,
    distribution,
    profiled,
    ratio,
    setup_django,
    write_result,
)

PROPERTIES = {"product": "SKU-1042", "amount": 19.99, "currency": "USD", "quantity": 2}


class _Sink(http.server.BaseHTTPRequestHandler):
    """Accepts segment's batches with a 200, like its API would."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", "0")))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format: str, *args: Any) -> None:
        return None


@contextmanager
def segment_sink() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def configure_vendors() -> None:
    """Four vendors pointed at a closed loopback port: with the worker backend nothing is sent."""
    from django_eventtrack.sandbox import registry_specs

    credentials = {spec.name: spec.credentials for spec in registry_specs()}
    for vendor in VENDORS:
        for key, value in credentials[vendor].items():
            os.environ[f"EVENTTRACK_{vendor.upper()}_{key}"] = value
        os.environ[f"EVENTTRACK_{vendor.upper()}_API_URL"] = f"http://127.0.0.1:9/{vendor}"
    os.environ["EVENTTRACK_DELIVERY"] = "worker"


def variants(segment_host: str) -> dict[str, Callable[[int], object]]:
    from django.utils import timezone
    from segment.analytics.client import Client

    from django_eventtrack import track
    from django_eventtrack.models import Event

    client = Client(
        "bench-write-key", host=segment_host, send=True, max_queue_size=1_000_000, max_retries=0
    )

    def eventtrack(n: int) -> object:
        return track("product.purchased", {**PROPERTIES, "n": n}, profile="P1042")

    def orm_insert(n: int) -> object:
        return Event.objects.create(
            id=uuid.uuid4(),
            name="product.purchased",
            properties={**PROPERTIES, "n": n},
            identity={"profile": "P1042"},
            timestamp=timezone.now(),
        )

    def segment(n: int) -> object:
        return client.track(
            user_id="P1042", event="product.purchased", properties={**PROPERTIES, "n": n}
        )

    return {
        "eventtrack track() (4 vendors)": eventtrack,
        "plain ORM insert (1 row)": orm_insert,
        "segment analytics.track()": segment,
    }


def measure(
    calls: dict[str, Callable[[int], object]], rounds: int, per_round: int
) -> dict[str, list[float]]:
    """Microseconds per call; each round is one transaction per variant, timed call by call."""
    from django.db import transaction

    samples: dict[str, list[float]] = {name: [] for name in calls}
    n = 0
    for round_number in range(rounds):
        order = list(calls.items())
        if round_number % 2:
            order.reverse()
        for name, call in order:
            with transaction.atomic():
                for _ in range(per_round):
                    started = time.perf_counter_ns()
                    call(n)
                    samples[name].append((time.perf_counter_ns() - started) / 1000)
                    n += 1
    return samples


def main() -> None:
    args = child_parser(__doc__ or "").parse_args()
    configure_vendors()
    setup_django()
    rounds, per_round = (4, 25) if args.quick else (60, 50)
    with segment_sink() as host:
        calls = variants(host)
        measure(calls, 2, 20)  # warm up: imports, prepared statements, caches
        samples = profiled(args.profile, lambda: measure(calls, rounds, per_round))
    results = {name: distribution(values) for name, values in samples.items()}
    names = list(calls)
    ours, orm, segment = (results[name] for name in names)
    write_result(
        args.result,
        {
            "database": database_description(),
            "unit": "microseconds per call",
            "calls_per_variant": rounds * per_round,
            "variants": results,
            "ratio_vs_orm_insert_p50": ratio(ours["p50"], orm["p50"]),
            "ratio_vs_orm_insert_p99": ratio(ours["p99"], orm["p99"]),
            "ratio_vs_segment_p50": ratio(ours["p50"], segment["p50"]),
            "target": "track() with 4 vendors < 2x a plain ORM insert (p50)",
            "target_met": ratio(ours["p50"], orm["p50"]) < 2.0,
        },
    )


if __name__ == "__main__":
    main()

"""Benchmark 3: commit to "vendor received", p50/p99, under a steady light load.

The ``thread`` backend in a web-like process tracks events at a steady rate,
one transaction each; the sandbox runs in its own process. Baseline: one
keep-alive HTTP request to the same sandbox, sent by hand (``http.client``),
the floor any delivery path pays for the network hop itself.
"""

from __future__ import annotations

import http.client
import json
import os
import sqlite3
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

from tests.benchmarks import web
from tests.benchmarks.common import (
    VENDORS,
    SandboxProcess,
    child_parser,
    database_description,
    distribution,
    exactly_once,
    ratio,
    write_result,
)
from tests.benchmarks.handwritten import vendor_requests


def request_floor_ms(base_url: str, count: int) -> dict[str, float]:
    """Milliseconds per sequential keep-alive request (Hackle's), no library code."""
    url, headers, body = vendor_requests(base_url, 0)[1]
    address = urlsplit(url)
    connection = http.client.HTTPConnection(address.hostname or "", address.port, timeout=10)
    data = json.dumps(body)
    headers = {**headers, "Content-Type": "application/json"}
    samples = []
    try:
        for _ in range(count):
            started = time.perf_counter()
            connection.request("POST", address.path, body=data, headers=headers)
            connection.getresponse().read()
            samples.append((time.perf_counter() - started) * 1000)
    finally:
        connection.close()
    return distribution(samples)


def sqlite_commit_ms(count: int) -> dict[str, float]:
    """Milliseconds per one-row SQLite write transaction in a scratch file next to the
    benchmark's database: what each claim and outcome write waits for the disk.

    The ``thread`` backend must commit a claim before it sends, so on a busy disk
    this, not the library, sets the floor of commit-to-received.
    """
    directory = Path(urlsplit(os.environ["BENCH_DATABASE_URL"]).path).parent
    samples = []
    with tempfile.TemporaryDirectory(dir=directory) as scratch:
        connection = sqlite3.connect(Path(scratch) / "commit.sqlite3", isolation_level=None)
        try:
            connection.execute("CREATE TABLE t (n INTEGER)")
            for n in range(count):
                started = time.perf_counter()
                connection.execute("BEGIN IMMEDIATE")
                connection.execute("INSERT INTO t VALUES (?)", (n,))
                connection.execute("COMMIT")
                samples.append((time.perf_counter() - started) * 1000)
        finally:
            connection.close()
    return distribution(samples)


def main() -> None:
    args = child_parser(__doc__ or "").parse_args()
    rate, seconds = (20.0, 1.5) if args.quick else (20.0, 20.0)
    commits: dict[int, float] = {}
    with SandboxProcess() as sandbox:
        floor = request_floor_ms(sandbox.url, 50 if args.quick else 300)
        sqlite = os.environ["BENCH_DATABASE_URL"].startswith("sqlite")
        commit = sqlite_commit_ms(20 if args.quick else 100) if sqlite else None
        sandbox.reset()
        web.start(sandbox)
        count = web.steady(rate, seconds, 0, commits)
        sandbox.wait_for_events(dict.fromkeys(VENDORS, count), timeout=60)
        marks = sandbox.marks()
    table = web.latency_table(marks, commits, range(count))
    write_result(
        args.result,
        {
            "database": database_description(),
            "backend": "thread",
            "rate_per_second": rate,
            "events": count,
            "unit": "milliseconds",
            "commit_to_received": table,
            "baseline_one_request": floor,
            "ratio_vs_one_request_p50": ratio(table["all vendors"]["p50"], floor["p50"]),
            "sqlite_commit_ms": commit,
            "exactly_once": exactly_once(marks, count),
        },
    )


if __name__ == "__main__":
    main()

"""``python -m tests.benchmarks [--quick] [--only NAME ...] [--out DIR]``: run the benchmarks.

Each benchmark runs in a fresh process on a fresh database (a SQLite file in
a temporary directory; PostgreSQL too for the request path, the web server and
the outbox growth when ``--postgres DSN`` or ``EVENTTRACK_TEST_POSTGRES`` names
one). The results go to ``DIR/results.json`` and ``DIR/results.md`` (default
``bench-results/``), and the target table and the summary table are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.benchmarks.common import base_environ, environment, run_child
from tests.benchmarks.report import markdown, summary_table, targets_table

#: name: (module, databases it runs on)
BENCHMARKS: dict[str, tuple[str, tuple[str, ...]]] = {
    "request_path": ("tests.benchmarks.request_path", ("sqlite", "postgresql")),
    "web_server": ("tests.benchmarks.web_server", ("sqlite", "postgresql")),
    "drain": ("tests.benchmarks.drain", ("sqlite",)),
    "throughput": ("tests.benchmarks.throughput", ("sqlite",)),
    "latency": ("tests.benchmarks.latency", ("sqlite",)),
    "outage": ("tests.benchmarks.outage", ("sqlite",)),
    "outbox_growth": ("tests.benchmarks.outbox_growth", ("sqlite", "postgresql")),
    "sender_limits": ("tests.benchmarks.sender_limits", ("sqlite",)),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny sizes, seconds")
    parser.add_argument("--only", nargs="+", choices=list(BENCHMARKS), help="run just these")
    parser.add_argument("--out", type=Path, default=Path("bench-results"), help="report directory")
    parser.add_argument(
        "--postgres",
        default=os.environ.get("EVENTTRACK_TEST_POSTGRES", ""),
        help="PostgreSQL DSN (postgres://user@host:port/db) to run on as well; its eventtrack "
        "tables are emptied (default: $EVENTTRACK_TEST_POSTGRES)",
    )
    parser.add_argument(
        "--outage-seconds", type=float, default=60.0, help="how long the vendor is down (60)"
    )
    parser.add_argument(
        "--vendor-latency-ms",
        type=float,
        default=100.0,
        help="how long the vendors take to answer in the web server benchmark (100)",
    )
    parser.add_argument("--profile", action="store_true", help="write pyinstrument profiles too")
    return parser


def run(args: argparse.Namespace) -> dict[str, Any]:
    args.out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "environment": environment(),
        "results": {},
    }
    for name in args.only or BENCHMARKS:
        module, databases = BENCHMARKS[name]
        for database in databases:
            key = f"{name} ({database})"
            report["results"][key] = run_one(args, name, module, database)
            print(f"{key}: done", file=sys.stderr, flush=True)
    report["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    return report


def run_one(args: argparse.Namespace, name: str, module: str, database: str) -> dict[str, Any]:
    if database == "postgresql" and not args.postgres:
        return {"skipped": "no PostgreSQL: pass --postgres DSN or set EVENTTRACK_TEST_POSTGRES"}
    extra = ["--quick"] if args.quick else []
    if name == "outage":
        extra += ["--outage-seconds", str(args.outage_seconds)]
    if name == "web_server":
        extra += ["--vendor-latency-ms", str(args.vendor_latency_ms)]
    if args.profile:
        extra += ["--profile", str(args.out / f"{name}-{database}.profile.txt")]
    with tempfile.TemporaryDirectory(prefix="eventtrack-bench-") as scratch:
        url = args.postgres if database == "postgresql" else f"sqlite:///{scratch}/bench.sqlite3"
        started = time.perf_counter()
        try:
            result = run_child(
                module, extra, base_environ(url), args.out / f"{name}-{database}.json"
            )
        except (RuntimeError, OSError) as error:
            return {"error": str(error)}
        result["wall_seconds"] = time.perf_counter() - started
        return result


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    report = run(args)
    (args.out / "results.json").write_text(json.dumps(report, indent=2, default=str))
    (args.out / "results.md").write_text(markdown(report))
    print(targets_table(report))
    print()
    print(summary_table(report))
    print(f"\nFull report: {args.out / 'results.md'} and {args.out / 'results.json'}")
    return 1 if any("error" in result for result in report["results"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())

"""The benchmark suite still runs: its quick mode, end to end.

The benchmarks themselves (``python -m tests.benchmarks``) are not part of the
test run; this keeps them from rotting: the runner, a child process per
benchmark, the servers they start (gunicorn, the vendor stand-in), the report
files and the printed tables.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.benchmarks.common import ROOT, VENDORS, StandInProcess, base_environ
from tests.benchmarks.handwritten import vendor_requests


def run_quick(out: Path, *args: str) -> tuple[dict[str, Any], str]:
    """``python -m tests.benchmarks --quick ARGS`` without PostgreSQL: the report and stdout."""
    command = [sys.executable, "-m", "tests.benchmarks", "--quick", *args]
    command += ["--postgres", "", "--out", str(out)]
    completed = subprocess.run(  # noqa: S603 (our own interpreter and module)
        command, env=base_environ(), cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    report: dict[str, Any] = json.loads((out / "results.json").read_text())
    assert report["quick"] is True
    assert (out / "results.md").read_text().startswith("# django-eventtrack benchmarks")
    return report, completed.stdout


def test_quick_benchmarks_run_and_write_the_report(tmp_path: Path) -> None:
    report, printed = run_quick(tmp_path, "--only", "request_path", "outbox_growth")
    assert report["environment"]["cpu_count"] >= 1
    results = report["results"]
    assert set(results) == {
        "request_path (sqlite)",
        "request_path (postgresql)",
        "outbox_growth (sqlite)",
        "outbox_growth (postgresql)",
    }
    assert "skipped" in results["request_path (postgresql)"]
    modes = results["request_path (sqlite)"]["modes"]
    assert set(modes) == {"in one transaction", "each call committing"}
    assert all(
        v["n"] == 100 and v["p50"] > 0 for v in modes["in one transaction"]["variants"].values()
    )
    assert all(
        v["n"] == 20 and v["p50"] > 0 for v in modes["each call committing"]["variants"].values()
    )
    assert results["outbox_growth (sqlite)"]["ratio_large_vs_small_p50"] > 0
    assert "| request_path (sqlite): track() (4 vendors, user id + session) vs plain ORM" in printed
    assert "| request_path (sqlite) | track() vs segment analytics.track()" in printed


@pytest.mark.slow
def test_quick_web_server_and_drain_benchmarks_run(tmp_path: Path) -> None:
    """gunicorn serves every page variant and the deliveries arrive; each drain delivers
    every event once, at each latency; the target table names each figure."""
    report, printed = run_quick(
        tmp_path, "--only", "web_server", "drain", "--vendor-latency-ms", "0"
    )
    web = report["results"]["web_server (sqlite)"]
    assert "skipped" in report["results"]["web_server (postgresql)"]
    for name, variant in web["variants"].items():
        assert set(variant["statuses"]) == {"200"}, name
        assert variant["requests_per_second"] > 0, name
    for name in ("tracked, thread delivery", "tracked, write-only + worker process"):
        (run,) = web["variants"][name]["rounds"]
        assert run["lag"]["drained"], name
        assert run["lag"]["commit_to_received_ms"]["n"] == run["lag"]["events"] * len(VENDORS)
    drain = report["results"]["drain (sqlite)"]
    assert set(drain["latencies"]) == {"0 ms", "100 ms"}
    assert drain["all_delivered_once"]
    assert "| measured | now | target | met? |" in printed
    assert "| web_server (sqlite): gunicorn, 2 sync workers, 8 clients" in printed
    assert "| drain (sqlite): drain, vendors answering at once: 4 vendors vs 1 vendor" in printed


def test_the_vendor_standin_answers_each_vendor_after_its_latency() -> None:
    """Any vendor's endpoint gets a 2xx only after the latency; each event is marked on
    arrival (a PrimeData batch per event); requests in flight overlap."""
    with StandInProcess() as standin:
        standin.set_latency(0.2)
        posts = vendor_requests(standin.url, 7)
        with ThreadPoolExecutor(len(posts)) as pool:
            sent_at, started = time.time(), time.perf_counter()
            answers = list(
                pool.map(lambda p: requests.post(p[0], json=p[2], headers=p[1], timeout=5), posts)
            )
            elapsed = time.perf_counter() - started
        assert [answer.status_code for answer in answers] == [200] * len(VENDORS)
        assert 0.2 <= elapsed < 0.2 * len(VENDORS)
        marks = standin.marks()
        assert {vendor: [n for n, _ in marks[vendor]] for vendor in VENDORS} == {
            vendor: [7] for vendor in VENDORS
        }
        # Stamped on arrival: at least the latency before the last answer came back.
        last_arrival = sent_at + elapsed - 0.2 + 0.01
        assert all(sent_at <= at <= last_arrival for pairs in marks.values() for _, at in pairs)
        assert standin.accepted_counts() == dict.fromkeys(VENDORS, 1)
        standin.reset()
        assert standin.accepted_counts() == {}


@pytest.mark.slow
def test_quick_sender_limits_benchmark_runs(tmp_path: Path) -> None:
    """Lost answers cost duplicates, counted; the largest events' backlog costs memory,
    measured: both figures reach the target table."""
    report, printed = run_quick(tmp_path, "--only", "sender_limits")
    result = report["results"]["sender_limits (sqlite)"]
    default = result["lost_answers"]["default"]
    assert default["lost_answers"] >= 1
    assert 0 < default["duplicates_per_lost_answer"] <= 50
    assert result["lost_answers"]["500"]["duplicates_per_lost_answer"] == 500
    large = result["peak_rss"]["large"]
    assert large["delivered"] == large["events"] * len(VENDORS)
    assert large["peak_rss_mb"] > 0
    assert "duplicates per lost answer" in printed
    assert "peak RSS, MB" in printed

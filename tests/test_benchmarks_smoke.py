"""The benchmark suite still runs: its quick mode on the cheapest benchmarks, end to end.

The benchmarks themselves (``python -m tests.benchmarks``) are not part of the
test run; this keeps them from rotting: the runner, a child process per
benchmark, the report files and the printed table.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.benchmarks.common import ROOT, base_environ


def test_quick_benchmarks_run_and_write_the_report(tmp_path: Path) -> None:
    command = [
        sys.executable,
        "-m",
        "tests.benchmarks",
        "--quick",
        "--only",
        "request_path",
        "outbox_growth",
        "--postgres",
        "",
        "--out",
        str(tmp_path),
    ]
    completed = subprocess.run(  # noqa: S603 (our own interpreter and module)
        command, env=base_environ(), cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    report = json.loads((tmp_path / "results.json").read_text())
    assert report["quick"] is True
    assert report["environment"]["cpu_count"] >= 1
    results = report["results"]
    assert set(results) == {
        "request_path (sqlite)",
        "request_path (postgresql)",
        "outbox_growth (sqlite)",
        "outbox_growth (postgresql)",
    }
    assert "skipped" in results["request_path (postgresql)"]
    variants = results["request_path (sqlite)"]["variants"]
    assert all(variant["n"] == 100 and variant["p50"] > 0 for variant in variants.values())
    assert results["outbox_growth (sqlite)"]["ratio_large_vs_small_p50"] > 0
    assert "| request_path (sqlite) | track() 4 vendors vs plain ORM insert" in completed.stdout
    assert (tmp_path / "results.md").read_text().startswith("# django-eventtrack benchmarks")

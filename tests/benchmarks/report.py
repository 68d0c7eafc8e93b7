"""The Markdown report: one summary table (ours, baseline, ratio, target) plus the details."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

Row = tuple[str, str, str, str, str, str]


def _n(value: float, digits: int = 0) -> str:
    return f"{value:,.{digits}f}"


def _met(flag: bool) -> str:
    return "yes" if flag else "**no**"


def _request_path(result: Mapping[str, Any]) -> list[Row]:
    ours, orm, segment = result["variants"].values()
    return [
        (
            "track() 4 vendors vs plain ORM insert, µs p50 / p99",
            f"{_n(ours['p50'])} / {_n(ours['p99'])}",
            f"{_n(orm['p50'])} / {_n(orm['p99'])}",
            f"{result['ratio_vs_orm_insert_p50']:.2f}x",
            "< 2x",
            _met(result["target_met"]),
        ),
        (
            "track() vs segment analytics.track() (memory queue), µs p50 / p99",
            f"{_n(ours['p50'])} / {_n(ours['p99'])}",
            f"{_n(segment['p50'])} / {_n(segment['p99'])}",
            f"{result['ratio_vs_segment_p50']:.1f}x",
            "",
            "",
        ),
    ]


def _throughput(result: Mapping[str, Any]) -> list[Row]:
    ours, plain = result["worker"], result["handwritten_requests_post"]
    session, ceiling = result["handwritten_session"], result["sandbox_ceiling"]
    return [
        (
            "worker vs requests.post loop, events/s (4 vendors each)",
            _n(ours["events_per_second"]),
            _n(plain["events_per_second"]),
            f"{result['ratio_vs_requests_post']:.1f}x",
            ">= 5x",
            _met(result["ratio_vs_requests_post"] >= 5),
        ),
        (
            "worker vs requests.Session loop, events/s",
            _n(ours["events_per_second"]),
            _n(session["events_per_second"]),
            f"{result['ratio_vs_session']:.1f}x",
            "",
            "",
        ),
        (
            "worker vs sandbox ceiling, requests/s",
            _n(ours["requests_per_second"]),
            _n(ceiling["requests_per_second"]),
            f"{result['fraction_of_ceiling']:.0%}",
            ">= 60%",
            _met(result["fraction_of_ceiling"] >= 0.6),
        ),
    ]


def _latency(result: Mapping[str, Any]) -> list[Row]:
    ours, floor = result["commit_to_received"]["all vendors"], result["baseline_one_request"]
    lost = sum(check["lost"] + check["duplicated"] for check in result["exactly_once"].values())
    return [
        (
            f"commit → vendor received (thread, {result['rate_per_second']:g}/s), ms p50 / p99",
            f"{_n(ours['p50'], 1)} / {_n(ours['p99'], 1)}",
            f"{_n(floor['p50'], 2)} / {_n(floor['p99'], 2)} (one request)",
            f"{result['ratio_vs_one_request_p50']:.0f}x",
            "",
            "lost/duplicated: 0" if not lost else f"**lost/duplicated: {lost}**",
        )
    ]


def _outage(result: Mapping[str, Any]) -> list[Row]:
    rss, latency = result["rss_mb"], result["other_vendors_latency_ms"]
    before, during = latency["before"], latency["during"]
    return [
        (
            f"RSS during a {result['outage_seconds']:g}s {result['vendor_down']} outage, MB",
            f"{rss['outage_end']:.1f} (peak {rss['peak_during_outage']:.1f})",
            f"{rss['outage_start']:.1f} (before)",
            f"{rss['growth_during_outage']:+.1f} MB",
            "flat",
            "",
        ),
        (
            "other vendors' latency during vs before, ms p50 / p99",
            f"{_n(during['p50'], 1)} / {_n(during['p99'], 1)}",
            f"{_n(before['p50'], 1)} / {_n(before['p99'], 1)}",
            f"{result['other_vendors_p50_ratio_during_vs_before']:.2f}x",
            "unaffected",
            "",
        ),
        (
            "backlog drained after recovery, s; lost / duplicated",
            f"{result['drain_seconds_after_recovery']:.1f}",
            "",
            "",
            "nothing lost or duplicated",
            _met(result["backlog_drained"] and result["nothing_lost_or_duplicated"]),
        ),
    ]


def _outbox_growth(result: Mapping[str, Any]) -> list[Row]:
    small_name, large_name = result["sizes"]
    small, large = result["sizes"][small_name], result["sizes"][large_name]
    return [
        (
            f"claim 100 due deliveries, {large_name} vs {small_name}, ms p50 / p99",
            f"{_n(large['p50'], 1)} / {_n(large['p99'], 1)}",
            f"{_n(small['p50'], 1)} / {_n(small['p99'], 1)}",
            f"{result['ratio_large_vs_small_p50']:.2f}x",
            "<= 1.5x",
            _met(result["target_met"]),
        )
    ]


ROWS: dict[str, Callable[[Mapping[str, Any]], list[Row]]] = {
    "request_path": _request_path,
    "throughput": _throughput,
    "latency": _latency,
    "outage": _outage,
    "outbox_growth": _outbox_growth,
}


def summary_table(report: Mapping[str, Any]) -> str:
    lines = [
        "| Benchmark | Measure | Ours | Baseline | Ratio | Target | Met |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, result in report["results"].items():
        if "skipped" in result or "error" in result:
            problem = result.get("skipped") or "failed: see the details"
            lines.append(f"| {key} | {problem} | | | | | |")
            continue
        for row in ROWS[key.split(" ")[0]](result):
            lines.append(f"| {key} | {' | '.join(row)} |")
    return "\n".join(lines)


def markdown(report: Mapping[str, Any]) -> str:
    env = report["environment"]
    lines = [
        "# django-eventtrack benchmarks",
        "",
        f"Run {report['started']} to {report.get('finished', '?')}"
        + (" (**quick mode: smoke-test sizes, not representative**)" if report["quick"] else ""),
        "",
        f"- {env['cpu_count']} CPUs ({env['cpu']}), {env['platform']}",
        f"- Python {env['python']} ({env['implementation']}), Django {env['django']}, "
        f"requests {env['requests']}, SQLite {env['sqlite']}",
        "",
        summary_table(report),
        "",
        "## Details",
    ]
    for key, result in report["results"].items():
        lines += ["", f"### {key}", "", "```json", json.dumps(result, indent=2, default=str), "```"]
    return "\n".join(lines) + "\n"

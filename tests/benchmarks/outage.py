"""Benchmark 4: one vendor answers 503 for a while (60 s by default) while events keep coming.

A web-like process with the ``thread`` backend tracks events at a steady rate
through three phases: before, during Hackle's outage, and after it until
Hackle has every event tracked before recovery (then the arrivals stop and
everything must arrive). Reported: the process's RSS (sampled all along), the
other vendors' commit-to-received latency before vs during the outage, the
time from recovery until the backlog is drained, and, per vendor, events lost
or received twice (both must be 0). Baseline: the same process before the outage.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from tests.benchmarks import web
from tests.benchmarks.common import (
    VENDORS,
    SandboxProcess,
    child_parser,
    database_description,
    distribution,
    exactly_once,
    ratio,
    rss_bytes,
    write_result,
)

DOWN = "hackle"
OTHERS = [vendor for vendor in VENDORS if vendor != DOWN]
MB = 1024 * 1024


class RSSSampler(threading.Thread):
    """This process's RSS every ``interval`` seconds, as (monotonic time, bytes)."""

    def __init__(self, interval: float = 0.25) -> None:
        super().__init__(daemon=True, name="rss-sampler")
        self.interval = interval
        self.samples: list[tuple[float, int]] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            self.samples.append((time.monotonic(), rss_bytes()))
            self.stopping.wait(self.interval)

    def at(self, moment: float) -> int:
        return next((rss for at, rss in reversed(self.samples) if at <= moment), 0)

    def peak(self, start: float, end: float) -> int:
        return max((rss for at, rss in self.samples if start <= at <= end), default=0)


def drained(sandbox: SandboxProcess, events: int) -> bool:
    """Has the vendor that was down accepted every event ``0..events-1``?"""
    seen = {int(n) for n, _ in sandbox.marks()[DOWN]}
    return all(n in seen for n in range(events))


def main() -> None:
    parser = child_parser(__doc__ or "")
    parser.add_argument("--outage-seconds", type=float, default=60.0)
    args = parser.parse_args()
    rate = 20.0
    before_seconds, outage_seconds = (2.0, 3.0) if args.quick else (15.0, args.outage_seconds)
    drain_timeout = max(120.0, 2 * outage_seconds)
    commits: dict[int, float] = {}
    sampler = RSSSampler()
    with SandboxProcess() as sandbox:
        web.start(sandbox)
        sampler.start()
        started = time.monotonic()
        n_outage = web.steady(rate, before_seconds, 0, commits)
        outage_started = time.monotonic()
        sandbox.command("fault", vendor=DOWN, status=503, count=10**9)
        n_recovery = web.steady(rate, outage_seconds, n_outage, commits)
        sandbox.command("clear-faults")
        recovered = time.monotonic()
        # Keep the arrivals going until the backlog is gone, checking twice a second.
        checked = [recovered]

        def backlog_left() -> bool:
            if time.monotonic() - checked[0] < 0.5:
                return True
            checked[0] = time.monotonic()
            return not drained(sandbox, n_recovery)

        count = web.steady(rate, drain_timeout, n_recovery, commits, backlog_left)
        drain_seconds = time.monotonic() - recovered
        backlog_drained = drained(sandbox, n_recovery)
        sandbox.wait_for_events(dict.fromkeys(VENDORS, count), timeout=drain_timeout)
        marks = sandbox.marks()
        requests = sandbox.command("counts")["requests"]
    sampler.stopping.set()
    sampler.join()
    before = web.latency_table(marks, commits, range(n_outage))
    during = web.latency_table(marks, commits, range(n_outage, n_recovery))
    others_before = distribution(web.latencies_ms(marks, commits, range(n_outage), OTHERS))
    others_during = distribution(
        web.latencies_ms(marks, commits, range(n_outage, n_recovery), OTHERS)
    )
    rss_before = sampler.at(outage_started)
    rss_end = sampler.at(recovered)
    result: dict[str, Any] = {
        "database": database_description(),
        "backend": "thread",
        "vendor_down": DOWN,
        "fault": "HTTP 503 on every request",
        "rate_per_second": rate,
        "outage_seconds": outage_seconds,
        "events": {"before": n_outage, "during": n_recovery - n_outage, "total": count},
        "requests_to_vendor_down": requests.get(DOWN, 0),
        "rss_mb": {
            "start": sampler.at(started + 0.3) / MB,
            "outage_start": rss_before / MB,
            "outage_end": rss_end / MB,
            "peak_during_outage": sampler.peak(outage_started, recovered) / MB,
            "growth_during_outage": (rss_end - rss_before) / MB,
        },
        "other_vendors_latency_ms": {"before": others_before, "during": others_during},
        "other_vendors_p50_ratio_during_vs_before": ratio(
            others_during["p50"], others_before["p50"]
        ),
        "latency_ms_by_vendor": {"before": before, "during": during},
        "backlog_drained": backlog_drained,
        "drain_seconds_after_recovery": drain_seconds,
        "exactly_once": exactly_once(marks, count),
    }
    result["nothing_lost_or_duplicated"] = all(
        not (check["lost"] or check["duplicated"]) for check in result["exactly_once"].values()
    )
    write_result(args.result, result)


if __name__ == "__main__":
    main()

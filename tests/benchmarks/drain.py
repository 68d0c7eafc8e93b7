"""Benchmark: one drain of the outbox when vendors take a while to answer.

The vendor stand-in (``tests.benchmarks.vendor_standin``, its own process)
answers every vendor after 0, 20, 100 and 300 ms. At each latency the outbox
is filled with events (``DELIVERY="worker"``) for Hackle alone, then for all
four vendors, and a separate process drains it once (``Worker().run_once()``,
what ``eventtrack_worker --once`` runs), configured with just those vendors.
Requests per second, against the same stand-in at the same latency in the same
run: 8 threads looping ``requests.Session.post`` (what a user gets from a
thread pool around the docs' call), and the one-vendor drain for the
four-vendor one (four vendors should not slow each other down).
"""

from __future__ import annotations

import os
from typing import Any

from tests.benchmarks.common import (
    VENDORS,
    StandInProcess,
    child_parser,
    database_description,
    empty_outbox,
    ratio,
    setup_django,
    write_result,
)
from tests.benchmarks.handwritten import session_pool
from tests.benchmarks.throughput import worker_drain

#: Events per drain at each vendor latency (ms): a steady rate for seconds, yet tens of
#: seconds at most with 4 requests in flight per vendor.
EVENTS = {0: 1000, 20: 1000, 100: 1000, 300: 300}
QUICK_EVENTS = {0: 24, 100: 24}
BASELINE_THREADS = 8
#: The one-vendor drain's vendor: one event per request, as the baseline's requests.
ONE_VENDOR = "hackle"


def main() -> None:
    args = child_parser(__doc__ or "").parse_args()
    events_at = QUICK_EVENTS if args.quick else EVENTS
    baseline_seconds = 0.5 if args.quick else 5.0
    latencies: dict[str, Any] = {}
    with StandInProcess() as standin:
        os.environ.update(standin.env(), EVENTTRACK_DELIVERY="worker")
        setup_django()
        for latency_ms, events in events_at.items():
            standin.set_latency(latency_ms / 1000)
            baseline = session_pool(standin.url, BASELINE_THREADS, events, baseline_seconds)
            drains = {}
            for label, vendors in (("1 vendor", (ONE_VENDOR,)), ("4 vendors", VENDORS)):
                standin.reset()
                path = args.result.with_name(
                    f"{args.result.stem}-{latency_ms}ms-{len(vendors)}.json"
                )
                drains[label] = worker_drain(standin, events, path, vendors)
                empty_outbox()
            one, four = drains.values()
            latencies[f"{latency_ms} ms"] = {
                "latency_ms": latency_ms,
                "events": events,
                "baseline_session_pool": baseline,
                "drain": drains,
                "ratio_4_vendors_vs_baseline": ratio(
                    four["requests_per_second"], baseline["requests_per_second"]
                ),
                "ratio_1_vendor_vs_baseline": ratio(
                    one["requests_per_second"], baseline["requests_per_second"]
                ),
                "ratio_4_vendors_vs_1": ratio(
                    four["requests_per_second"], one["requests_per_second"]
                ),
            }
    write_result(
        args.result,
        {
            "database": database_description(),
            "unit": "requests per second",
            "baseline_threads": BASELINE_THREADS,
            "latencies": latencies,
            "all_delivered_once": all(
                drain["all_delivered_once"]
                for latency in latencies.values()
                for drain in latency["drain"].values()
            ),
        },
    )


if __name__ == "__main__":
    main()

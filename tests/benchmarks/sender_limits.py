"""Benchmark 8: what a lost answer costs, and what a backlog of the largest events costs.

Duplicates per lost answer: PrimeData takes up to 500 events per request, and a
request whose answer never comes (here: the second, then every fifth, answered after
the read timeout, though the sandbox has it) is sent again, each of its events then a
duplicate. A backlog of PrimeData events is drained by workers in this process until
everything is delivered, with the default ``EVENTS_PER_REQUEST`` (50, halved after a
lost answer) and with 500 (a full request each time, as before the setting existed);
reported: the duplicates the sandbox received per lost answer.

Peak memory: a worker process (``tests.benchmarks.worker_run``) drains a backlog of
events of about 64 KB each (``MAX_EVENT_BYTES``'s default: properties of just under
64 KiB as JSON) to all four vendors; its peak RSS against the same worker draining
as many small events.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from tests.benchmarks.common import (
    VENDORS,
    SandboxProcess,
    base_environ,
    child_parser,
    database_description,
    empty_outbox,
    ratio,
    run_child,
    setup_django,
    write_result,
)

VENDOR = "primedata"
#: Every ``LOST_EVERY``-th request is answered after the read timeout (processed all the same).
LOST_EVERY = 5
READ_TIMEOUT = 0.5
MB = 1024 * 1024
#: Properties of just under 64 KiB as JSON: 63 strings of 1,000 characters (within every
#: vendor's limits, Hackle's 64 properties of 1,024 characters included).
LARGE = {f"p{index:02}": "x" * 1_000 for index in range(63)}


def seed(count: int, vendors: tuple[str, ...], large: bool = False) -> None:
    from django.db import transaction

    from django_eventtrack import track

    for start in range(0, count, 100):
        with transaction.atomic():
            for n in range(start, min(start + 100, count)):
                properties = {"n": n, "order": f"O{n}", **(LARGE if large else {})}
                track("order.placed", properties, session=f"S{n}", vendors=list(vendors))


def lost_answers(sandbox: SandboxProcess, events: int, per_request: int | None) -> dict[str, Any]:
    """Drain ``events`` PrimeData events while every :data:`LOST_EVERY`-th answer comes
    after the read timeout."""
    from django_eventtrack import conf
    from django_eventtrack.delivery import flow
    from django_eventtrack.delivery.worker import Worker
    from django_eventtrack.models import Delivery
    from django_eventtrack.outbox import fanout

    empty_outbox()
    sandbox.reset()
    sandbox.command("fault", vendor=VENDOR, delay=0.001)  # the second answer is late, then
    for _ in range(events):  # every fifth (more rules than requests: they never run out)
        sandbox.command("fault", vendor=VENDOR, delay=2 * READ_TIMEOUT)
        sandbox.command("fault", vendor=VENDOR, delay=0.001, count=LOST_EVERY - 1)
    os.environ |= {
        f"EVENTTRACK_{VENDOR.upper()}_TIMEOUT": str(READ_TIMEOUT),
        f"EVENTTRACK_{VENDOR.upper()}_EVENTS_PER_REQUEST": str(per_request or 50),
        "EVENTTRACK_RETRY_BACKOFF_BASE": "0.01",
        "EVENTTRACK_RETRY_BACKOFF_MAX": "0.05",
    }
    conf.reload()
    seed(events, (VENDOR,))
    started = time.monotonic()
    while fanout.unrouted().exists() or Delivery.objects.exclude(status="delivered").exists():
        Worker([VENDOR]).run_once()
        flow.breaker.reset()  # the breaker's pauses are not what is measured
    seconds = time.monotonic() - started
    time.sleep(2 * READ_TIMEOUT)  # the last late answers, processed after the drain ended
    counts = sandbox.command("counts")
    requests = counts["requests"].get(VENDOR, 0)
    lost = (requests + LOST_EVERY - 2) // LOST_EVERY  # the 2nd, 7th, 12th...
    duplicates = counts["accepted_events"].get(VENDOR, 0) - events
    return {
        "events_per_request": per_request or 50,
        "events": events,
        "requests": requests,
        "lost_answers": lost,
        "duplicates": duplicates,
        "duplicates_per_lost_answer": ratio(duplicates, lost),
        "seconds": seconds,
    }


def peak_rss(sandbox: SandboxProcess, events: int, large: bool, result: Path) -> dict[str, Any]:
    """A worker process's peak RSS draining ``events`` events to every vendor."""
    empty_outbox()
    sandbox.reset()
    seed(events, VENDORS, large=large)
    environ = base_environ(os.environ["BENCH_DATABASE_URL"], **sandbox.env(VENDORS))
    worker = run_child("tests.benchmarks.worker_run", [], environ, result)
    return {
        "events": events,
        "event_bytes": len(json.dumps(LARGE)) if large else 40,
        "delivered": worker["delivered"],
        "peak_rss_mb": worker["peak_rss_bytes"] / MB,
        "seconds": worker["seconds"],
    }


def main() -> None:
    args = child_parser(__doc__ or "").parse_args()
    events, backlog = (1_000, 40) if args.quick else (5_000, 400)
    with SandboxProcess() as sandbox:
        os.environ.update(sandbox.env(), EVENTTRACK_DELIVERY="worker")
        setup_django()
        default = lost_answers(sandbox, events, None)
        full = lost_answers(sandbox, events, 500)
        small = peak_rss(sandbox, backlog, False, args.result.with_name("worker-small.json"))
        large = peak_rss(sandbox, backlog, True, args.result.with_name("worker-large.json"))
    write_result(
        args.result,
        {
            "database": database_description(),
            "lost_answers": {"default": default, "500": full},
            "duplicates_ratio": ratio(
                default["duplicates_per_lost_answer"], full["duplicates_per_lost_answer"]
            ),
            "peak_rss": {"small": small, "large": large},
            "peak_rss_ratio": ratio(large["peak_rss_mb"], small["peak_rss_mb"]),
            "target": "<= ~50 duplicates per lost answer; peak RSS reported",
            "target_met": default["duplicates_per_lost_answer"] <= 55,
        },
    )


if __name__ == "__main__":
    main()

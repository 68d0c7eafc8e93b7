"""Benchmark 2: delivery throughput of one worker process to the sandbox, four vendors.

Against the hand-written loop a user writes from the docs (``requests.post``
per event per vendor; also the same loop over a keep-alive ``Session``), and
against the sandbox's own ceiling (many keep-alive connections, no library
code), all measured in this run against the same sandbox process.

The outbox is filled first (``DELIVERY="worker"``), then a separate process
runs the worker's ``run_once()`` and times itself; every delivery must reach
the sandbox exactly as many times as there are events.

Then the same for signed-in visitors: each user's ``identify()`` before their four
events, two users to each browser session (the second's browser ids are replaced before
sending, and their events wait for their identify), against the anonymous drain.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tests.benchmarks.common import (
    VENDORS,
    SandboxProcess,
    base_environ,
    child_parser,
    database_description,
    ratio,
    run_child,
    setup_django,
    write_result,
)
from tests.benchmarks.handwritten import send_loop
from tests.benchmarks.loadgen import ceiling

CONNECTIONS = 32


def seed(count: int, vendors: Sequence[str] = VENDORS, *, signed_in: bool = False) -> None:
    """Track ``count`` events for ``vendors``, 500 to a transaction (``tests.processes.seed``);
    ``signed_in``: four per user, after the user's ``identify()``, two users per session."""
    from django.db import transaction

    from django_eventtrack import identify, track

    for start in range(0, count, 500):
        with transaction.atomic():
            for n in range(start, min(start + 500, count)):
                if not signed_in:
                    track(
                        "order.placed", {"n": n, "order": f"O{n}"}, session=f"S{n}", vendors=vendors
                    )
                    continue
                user, session = f"U{n // 4}", f"S{n // 8}"
                if n % 4 == 0:
                    traits = {"email": f"{user}@example.com"}
                    identify(user_id=user, traits=traits, identity={"session": session})
                properties = {"n": n, "order": f"O{n}"}
                track("order.placed", properties, session=session, user_id=user, vendors=vendors)


def worker_drain(
    server: SandboxProcess,
    events: int,
    result_path: Path,
    vendors: Sequence[str] = VENDORS,
    worker_args: Sequence[str] = (),
    *,
    signed_in: bool = False,
) -> dict[str, Any]:
    """Fill the outbox with ``events`` for ``vendors``, drain it once in a worker process
    configured with only those vendors, and check each reached ``server`` exactly once.

    This process must be set up with all four vendors at ``server`` and
    ``DELIVERY="worker"``.
    """
    from django_eventtrack.models import Delivery

    seed(events, vendors, signed_in=signed_in)
    environ = base_environ(os.environ["BENCH_DATABASE_URL"], **server.env(vendors))
    result = run_child("tests.benchmarks.worker_run", worker_args, environ, result_path)
    counts = server.accepted_counts()
    pending = Delivery.objects.exclude(status=Delivery.Status.DELIVERED).count()
    result |= {
        "events": events,
        "vendors": list(vendors),
        "deliveries": events * len(vendors),
        "events_per_second": events / result["seconds"],
        "requests_per_second": result["requests"] / result["seconds"],
        "accepted_by_server": counts,
        "not_delivered": pending,
        # Signed in, the identify calls are requests (and PrimeData events) too.
        "all_delivered_once": pending == 0
        and (signed_in or all(counts.get(vendor) == events for vendor in vendors)),
    }
    return result


def main() -> None:
    args = child_parser(__doc__ or "").parse_args()
    events, seconds = (200, 1.0) if args.quick else (4000, 5.0)
    with SandboxProcess() as sandbox:
        sandbox_ceiling = ceiling(sandbox.url, CONNECTIONS, seconds)
        sandbox.reset()
        plain = send_loop(sandbox.url, events, seconds, session=False)
        sandbox.reset()
        session = send_loop(sandbox.url, events, seconds, session=True)
        sandbox.reset()
        os.environ.update(sandbox.env(), EVENTTRACK_DELIVERY="worker")
        setup_django()
        worker_args = ["--profile", str(args.profile)] if args.profile else []
        worker_result = args.result.with_name(args.result.stem + "-worker.json")
        ours = worker_drain(sandbox, events, worker_result, worker_args=worker_args)
        sandbox.reset()
        signed_result = args.result.with_name(args.result.stem + "-signed-in.json")
        signed = worker_drain(sandbox, events, signed_result, signed_in=True)
    write_result(
        args.result,
        {
            "database": database_description(),
            "worker": ours,
            "handwritten_requests_post": plain,
            "handwritten_session": session,
            "sandbox_ceiling": sandbox_ceiling,
            "ratio_vs_requests_post": ratio(ours["events_per_second"], plain["events_per_second"]),
            "ratio_vs_session": ratio(ours["events_per_second"], session["events_per_second"]),
            "worker_signed_in": signed,
            "ratio_signed_in_vs_anonymous": ratio(
                signed["events_per_second"], ours["events_per_second"]
            ),
            "fraction_of_ceiling": ratio(
                ours["requests_per_second"], sandbox_ceiling["requests_per_second"]
            ),
            "target": ">= 5x the requests.post loop (events/s) and >= 60% of the sandbox "
            "ceiling (requests/s)",
            "target_met": ratio(ours["events_per_second"], plain["events_per_second"]) >= 5
            and ratio(ours["requests_per_second"], sandbox_ceiling["requests_per_second"]) >= 0.6,
        },
    )


if __name__ == "__main__":
    main()

"""``python -m tests.benchmarks.worker_run``: one worker process drains the outbox once.

What ``manage.py eventtrack_worker --once`` runs, timed from inside so that
interpreter and Django start-up are not counted.
"""

from __future__ import annotations

import resource
import sys
import time

import django

from tests.benchmarks.common import child_parser, profiled, write_result


def peak_rss_bytes() -> int:
    """This process's peak resident set size so far."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def main() -> None:
    args = child_parser(__doc__ or "").parse_args()
    django.setup()
    from django_eventtrack.delivery.worker import Worker

    worker = Worker()
    started = time.perf_counter()
    stats = profiled(args.profile, worker.run_once)
    elapsed = time.perf_counter() - started
    write_result(
        args.result,
        {
            "seconds": elapsed,
            "delivered": stats.delivered,
            "retried": stats.retried,
            "failed": stats.failed,
            "requests": stats.requests,
            "peak_rss_bytes": peak_rss_bytes(),
        },
    )


if __name__ == "__main__":
    main()

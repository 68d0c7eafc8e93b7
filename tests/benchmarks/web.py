"""A web-like process for the latency and outage benchmarks: events at a steady rate,
each tracked in a transaction of its own, with the ``thread`` backend sending them.

The commit time of event ``n`` is taken by an on-commit hook registered before
``track()``'s own, so it runs first, right after COMMIT; the sandbox (another
process, same clock) stamps when each vendor received it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from functools import partial
from typing import Any

from tests.benchmarks.common import VENDORS, SandboxProcess, distribution, setup_django


def start(sandbox: SandboxProcess) -> None:
    """Configure four vendors at ``sandbox`` with the ``thread`` backend, then set Django up."""
    os.environ.update(sandbox.env(), EVENTTRACK_DELIVERY="thread")
    setup_django()


def steady(
    rate: float,
    seconds: float,
    first: int,
    commits: dict[int, float],
    keep_going: Callable[[], bool] = lambda: True,
) -> int:
    """Track events ``first, first+1, ...`` at ``rate`` per second for ``seconds`` (or until
    ``keep_going()`` is false); returns the next event number."""
    from django.db import transaction

    from django_eventtrack import track

    interval = 1 / rate
    next_at = time.perf_counter()
    end = next_at + seconds
    n = first
    while next_at < end and keep_going():
        delay = next_at - time.perf_counter()
        if delay > 0:
            time.sleep(delay)  # pacing the load, not waiting for work
        with transaction.atomic():
            transaction.on_commit(partial(commits.__setitem__, n, time.time()))
            track("order.placed", {"n": n, "order": f"O{n}"}, session=f"S{n}")
        n += 1
        next_at += interval
    return n


def latencies_ms(
    marks: Mapping[str, Sequence[Sequence[float]]],
    commits: Mapping[int, float],
    events: Collection[int],
    vendors: Sequence[str] = VENDORS,
) -> list[float]:
    """Commit to first acceptance, in milliseconds, for ``events`` at ``vendors``."""
    values = []
    for vendor in vendors:
        first: dict[int, float] = {}
        for n, received_at in marks.get(vendor, ()):
            first.setdefault(int(n), received_at)
        values += [(first[n] - commits[n]) * 1000 for n in events if n in first and n in commits]
    return values


def latency_table(
    marks: Mapping[str, Sequence[Sequence[float]]], commits: Mapping[int, float], events: range
) -> dict[str, Any]:
    """Per vendor and for all four: p50/p99 commit-to-received, in milliseconds."""
    table = {
        vendor: distribution(latencies_ms(marks, commits, events, [vendor])) for vendor in VENDORS
    }
    table["all vendors"] = distribution(latencies_ms(marks, commits, events))
    return table

"""Process faults: the web process and the worker killed with SIGKILL at random points.

A web process (``tests/processes/web.py``) tracks several hundred events, one per
transaction, with the ``thread`` backend sending in the background, while an
``eventtrack_worker`` drains the same SQLite outbox. At seeded random moments one of
them is killed with SIGKILL and started again (the web process from the first event
not yet committed). Afterwards: nothing committed is lost, everything is delivered
within :data:`RECOVERY` seconds of the last kill, nothing uncommitted was sent, and the
only copies a vendor received twice belong to deliveries that were
claimed, in flight, at the moment of a kill (a request that reached the vendor just
before its sender died). ``EVENTTRACK_TEST_SEED`` replays another schedule.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from django_eventtrack.sandbox import Sandbox
from tests.delivery.test_worker import Processes, migrated_database, processes  # noqa: F401
from tests.processes.helpers import VENDORS, wait_until

ROOT = Path(__file__).resolve().parent.parent
TOTAL = 300
KILLS = 6
#: Seconds after the last kill by which everything is delivered, with the default leases.
RECOVERY = 30.0
SEED = int(os.environ.get("EVENTTRACK_TEST_SEED", "20261123"))


def start_web(group: Processes, run: int, start: int) -> subprocess.Popen[bytes]:
    log = group.logs / f"web-{run}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(  # noqa: S603 (our own interpreter and module)
            [sys.executable, "-m", "tests.processes.web", str(run), str(start), str(TOTAL)],
            env=group.env | {"EVENTTRACK_DELIVERY": "thread"},
            cwd=ROOT,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    group.started[process] = log
    return process


def next_event(group: Processes) -> int:
    """The first ``n`` not committed yet (events are committed in order)."""
    ((highest,),) = group.query(
        "SELECT MAX(CAST(json_extract(properties, '$.n') AS INTEGER)) FROM eventtrack_event"
    )
    return 0 if highest is None else highest + 1


def in_flight(group: Processes) -> set[tuple[int, str]]:
    """(n, vendor) of deliveries claimed and not finished: possibly mid-request."""
    rows = group.query(
        "SELECT json_extract(e.properties, '$.n'), d.vendor FROM eventtrack_delivery d "
        "JOIN eventtrack_event e ON e.id = d.event_id "
        "WHERE d.status = 'pending' AND d.claim_token IS NOT NULL"
    )
    return {(int(n), vendor) for n, vendor in rows}


def tag(vendor: str, payload: dict[str, Any]) -> tuple[int, int]:
    """(n, run) of one event as a vendor received it."""
    if vendor == "hellotext":
        properties = payload["metadata"]
    elif vendor == "hackle":
        properties = payload["event"]["properties"]
    else:
        properties = payload["properties"]
    return int(properties["n"]), int(properties["run"])


@pytest.mark.slow
def test_sigkill_web_and_worker_at_random_points_loses_nothing(
    processes: Processes,  # noqa: F811
    sandbox: Sandbox,
) -> None:
    rng = random.Random(SEED)
    processes.env |= {  # the leases and the vendors' timeouts are the defaults
        "EVENTTRACK_BATCH_SIZE": "8",
        "EVENTTRACK_CONCURRENCY": "4",
        "EVENTTRACK_RETRY_BACKOFF_BASE": "0.01",
        "EVENTTRACK_RETRY_BACKOFF_MAX": "0.1",
        "EVENTTRACK_SHUTDOWN_TIMEOUT": "0.5",
    }
    for vendor in VENDORS:  # 20 ms per request, so kills catch requests in flight
        sandbox.inject(vendor, delay=0.02, count=1_000_000)

    run = 0
    web = start_web(processes, run, 0)
    worker = processes.worker()
    claimed_at_kills: set[tuple[int, str]] = set()
    kills: Counter[str] = Counter()
    # Kill points are progress marks (events committed), so every kill lands mid-run
    # whatever the machine's speed; the victim and a sub-second jitter are seeded too.
    marks = sorted(rng.sample(range(20, TOTAL - 20), KILLS))
    pause = threading.Event()
    for mark in marks:

        def reached(mark: int = mark) -> bool:
            return next_event(processes) >= mark

        wait_until(reached, timeout=30, what=f"event {mark}")
        pause.wait(rng.uniform(0, 0.05))  # the seeded jitter, not a wait for work
        victim = rng.choice(["web", "worker"])
        process = web if victim == "web" else worker
        process.send_signal(signal.SIGKILL)
        process.wait(5)
        last_kill = time.monotonic()
        kills[victim] += 1
        claimed_at_kills |= in_flight(processes)
        if victim == "web":
            run += 1
            web = start_web(processes, run, next_event(processes))
        else:
            worker = processes.worker()

    assert web.wait(60) == 0, processes.output(web)
    # Claims of killed senders come back when their lease, no longer renewed, ends.
    wait_until(
        lambda: processes.statuses() == {"delivered": TOTAL * len(VENDORS)},
        timeout=60,
        what=f"all {TOTAL * len(VENDORS)} deliveries",
    )
    recovery = time.monotonic() - last_kill
    assert recovery <= RECOVERY, f"delivered {recovery:.1f}s after the last kill"
    assert processes.stop(worker) == 0, processes.output(worker)

    committed = {
        (int(n), int(r))
        for n, r in processes.query(
            "SELECT json_extract(properties, '$.n'), json_extract(properties, '$.run') "
            "FROM eventtrack_event"
        )
    }
    assert sorted(n for n, _ in committed) == list(range(TOTAL))  # each committed once
    duplicates: dict[tuple[int, str], int] = {}
    for vendor in VENDORS:
        copies = Counter(tag(vendor, payload) for payload in sandbox.events(vendor))
        assert set(copies) - committed == set(), "sent an event that was never committed"
        assert committed - set(copies) == set(), "lost a committed event"
        duplicates |= {(n, vendor): count - 1 for (n, _), count in copies.items() if count > 1}
    # A duplicate only where a request was in flight when its sender was killed, or
    # (a loaded machine) where a request outlived the read timeout and was sent again.
    retried = {
        (int(n), vendor)
        for n, vendor in processes.query(
            "SELECT json_extract(e.properties, '$.n'), d.vendor FROM eventtrack_delivery d "
            "JOIN eventtrack_event e ON e.id = d.event_id WHERE d.attempts > 1"
        )
    }
    assert set(duplicates) <= claimed_at_kills | retried
    print(
        f"SIGKILL seed={SEED}: {sum(kills.values())} kills ({dict(kills)}), {TOTAL} events, "
        f"{TOTAL * len(VENDORS)} deliveries, lost 0, duplicated {sum(duplicates.values())} "
        f"(in flight at a kill: {len(claimed_at_kills)}, retried: {len(retried)}), "
        f"{run + 1} web runs; all delivered {recovery:.1f}s after the last kill"
    )

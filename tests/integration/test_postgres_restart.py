"""PostgreSQL restarted mid-run (a crash: ``pg_ctl stop -m immediate``, then WAL recovery)
while a web-like process tracks events and two workers deliver them: everything
committed is delivered within :data:`RECOVERY` seconds of the restart, nothing is lost,
and a vendor sees an event twice only if a request for it reached the vendor before the
crash.

The server is private to the test (its own data directory and port), so it can be
restarted without disturbing the other suites' server.
"""

from __future__ import annotations

import re
import time
from collections import defaultdict
from pathlib import Path

import pytest

from django_eventtrack.sandbox import Sandbox
from tests.integration.conftest import (
    PostgresDatabase,
    PrivatePostgres,
    Processes,
    migrate,
    statuses,
)
from tests.processes.helpers import VENDORS, marker, wait_until

EVENTS = 400
PER_TRANSACTION = 10
#: Seconds after the server came back by which everything is delivered, with the default
#: leases and timeouts.
RECOVERY = 30.0


def receipts(sandbox: Sandbox, vendor: str) -> dict[int, list[float]]:
    """When the vendor accepted each event, by its ``n``."""
    seen: dict[int, list[float]] = defaultdict(list)
    for record in sandbox.requests(vendor):
        if record.accepted:
            for payload in record.events:
                seen[marker(vendor, payload)].append(record.received_at)
    return seen


@pytest.mark.integration
def test_a_database_crash_mid_run_loses_nothing(
    private_postgres: PrivatePostgres, sandbox: Sandbox, tmp_path: Path
) -> None:
    database = PostgresDatabase(private_postgres.dsn, "eventtrack_restart")
    database.create()
    migrate(database)
    processes = Processes(database, sandbox, tmp_path)
    try:
        workers = [
            processes.start(f"worker-{i}", "-m", "django", "eventtrack_worker", "-v", "1")
            for i in range(2)
        ]
        for worker in workers:
            processes.wait_output(worker, "worker started")
        started_monotonic = time.monotonic()
        web = processes.start(
            "web",
            *("-m", "tests.integration.resilient_track", str(EVENTS), str(PER_TRANSACTION)),
            EVENTTRACK_DELIVERY="worker",
        )
        # Mid-run: the web process is still tracking and the workers are sending.
        wait_until(
            lambda: len(sandbox.requests("hackle")) >= EVENTS // 4,
            timeout=60,
            what="a quarter of the events at Hackle",
        )
        crashed_at = time.time()
        started = crashed_at - (time.monotonic() - started_monotonic)
        private_postgres.crash()
        time.sleep(1.0)  # down for a second: every process sees its connection fail
        private_postgres.start()
        back_at = time.time()
        assert web.wait(120) == 0, processes.output(web)
        wait_until(
            lambda: statuses(database) == {"delivered": EVENTS * len(VENDORS)},
            timeout=60,
            what=f"all {EVENTS * len(VENDORS)} deliveries delivered after the restart",
        )
        delivered_at = time.time()
        assert delivered_at - back_at <= RECOVERY, f"{delivered_at - back_at:.1f}s after"
        for worker in workers:
            assert processes.stop(worker) == 0, processes.output(worker)
        totals = [
            int(re.findall(r"worker stopped: pid=\d+ delivered (\d+)", processes.output(worker))[0])
            for worker in workers
        ]
    finally:
        processes.kill_all()

    stored = {n for (n,) in database.query("SELECT (properties->>'n')::int FROM eventtrack_event")}
    assert stored == set(range(EVENTS))  # every event committed exactly once
    duplicated = 0
    for vendor in VENDORS:
        seen = receipts(sandbox, vendor)
        assert set(seen) == stored, f"{vendor}: lost {sorted(stored - set(seen))[:10]}"
        for n, times in seen.items():
            if len(times) > 1:
                duplicated += len(times) - 1
                # A second copy only for a request that reached the vendor before the
                # database came back (its outcome could not be written).
                assert min(times) < back_at, (vendor, n, times, back_at)
    # The workers' own totals add up to what the database shows: a round cut short by the
    # crash still counts the deliveries it recorded before it.
    assert sum(totals) == EVENTS * len(VENDORS), totals
    print(
        f"postgres crash: {EVENTS} events x {len(VENDORS)} vendors; crashed "
        f"{crashed_at - started:.1f}s into the run, down {back_at - crashed_at:.1f}s, all "
        f"delivered {delivered_at - back_at:.1f}s after it came back; lost 0, duplicated "
        f"{duplicated}; worker totals {totals}; web: "
        f"{processes.output(web).strip().splitlines()[-1]}"
    )

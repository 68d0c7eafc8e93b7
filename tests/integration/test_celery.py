"""The ``celery`` backend against real Celery workers and a real Redis broker: committed
events delivered once, rolled-back ones never, nothing lost when a worker is killed
mid-run or when the broker is down, and the start-up checks."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from django_eventtrack.delivery import backends
from django_eventtrack.errors import ConfigurationError
from django_eventtrack.sandbox import Sandbox
from tests.integration.conftest import (
    RECOVERY,
    Database,
    Processes,
    deliver_scenario,
    duplicates_of_committed,
    small_claims_and_slow_vendors,
    statuses,
    track_scenario,
)
from tests.integration.track import COMMITTED
from tests.processes.helpers import VENDORS, free_port, received, wait_until

ALL_DELIVERED = {"delivered": len(COMMITTED) * len(VENDORS)}


@pytest.fixture
def celery_settings(processes: Processes) -> Processes:
    """Processes configured for DELIVERY="celery" on the "eventtrack" queue."""
    processes.env |= {"EVENTTRACK_DELIVERY": "celery", "EVENTTRACK_CELERY_QUEUE": "eventtrack"}
    return processes


@pytest.fixture
def celery(celery_settings: Processes, redis_url: str) -> Processes:
    """The same, with a live Redis broker."""
    celery_settings.env["EVENTTRACK_TEST_REDIS_URL"] = redis_url
    return celery_settings


def start_worker(
    processes: Processes, name: str, *options: str, **env: str
) -> subprocess.Popen[bytes]:
    """``celery -A proj worker -Q eventtrack`` (two pool processes), once it is ready."""
    process = processes.start(
        name,
        *("-m", "celery", "-A", "tests.integration.proj", "worker", "--queues", "eventtrack"),
        *("--hostname", f"{name}@%h", "--concurrency", "2", "--loglevel", "INFO"),
        *("--without-gossip", "--without-mingle", "--without-heartbeat"),
        *options,
        **env,
    )
    processes.wait_output(process, " ready.", timeout=60)
    return process


def drains(output: str) -> int:
    """How many drain tasks a worker's log says it ran to the end."""
    return len(re.findall(r"Task django_eventtrack\.drain_outbox\[[^]]+\] succeeded", output))


@pytest.mark.integration
def test_committed_events_are_delivered_once_and_rolled_back_ones_never(
    celery: Processes, outbox_database: Database, sandbox: Sandbox
) -> None:
    workers = [start_worker(celery, f"worker{number}") for number in range(2)]

    tracking, elapsed = deliver_scenario(celery, outbox_database, sandbox)
    for worker in workers:
        assert celery.stop(worker) == 0, celery.output(worker)
    shares = [drains(celery.output(worker)) for worker in workers]
    # At most one task per committed transaction: those committed while a task was
    # being handed to the broker go out together in the next one.
    assert 1 <= sum(shares) <= len(COMMITTED), shares
    print(
        f"celery: {len(COMMITTED)} events x {len(VENDORS)} vendors through 2 workers "
        f"(tasks {shares}), 0 duplicates, {tracking:.1f}s tracking, {elapsed:.1f}s to deliver all"
    )


@pytest.mark.integration
def test_a_worker_killed_mid_run_loses_nothing(
    celery: Processes, outbox_database: Database, sandbox: Sandbox, tmp_path: Path
) -> None:
    small_claims_and_slow_vendors(celery, sandbox)
    doomed = start_worker(celery, "doomed")

    started = time.monotonic()
    track_scenario(celery)
    sandbox.wait_for(100, timeout=60)
    celery.kill(doomed)  # the worker and its pool, like an OOM kill of the container
    killed_at = time.monotonic()
    reached = {vendor: received(sandbox, vendor) for vendor in VENDORS}
    claimed = outbox_database.query(
        "SELECT COUNT(*) FROM eventtrack_delivery WHERE claim_token IS NOT NULL"
    )[0][0]
    delivered_at_kill = statuses(outbox_database)["delivered"]
    assert delivered_at_kill < ALL_DELIVERED["delivered"], "killed too late to prove anything"

    # A new worker runs the drains still queued; the sweep, sent every 5 s by Celery beat,
    # sends the rest: the dead worker's unacknowledged tasks (Redis returns them only after
    # its visibility timeout, an hour) and, once their lease ends, its claimed rows.
    survivor = start_worker(celery, "survivor")
    beat = celery.start(
        "beat",
        *("-m", "celery", "-A", "tests.integration.proj", "beat", "--loglevel", "INFO"),
        *("--schedule", str(tmp_path / "beat-schedule")),
        EVENTTRACK_TEST_SWEEP_SECONDS="5",
    )
    wait_until(
        lambda: statuses(outbox_database) == ALL_DELIVERED,
        timeout=60,
        what="the survivor and the sweep to deliver everything",
    )
    elapsed = time.monotonic() - started
    recovery = time.monotonic() - killed_at
    assert recovery <= RECOVERY, f"delivered {recovery:.1f}s after the kill"
    assert celery.stop(beat) == 0, celery.output(beat)
    assert celery.stop(survivor) == 0, celery.output(survivor)
    swept = [
        int(count)
        for count in re.findall(
            r"sweep_outbox\[[^]]+\] succeeded in [\d.]+s: 'delivered (\d+)",
            celery.output(survivor),
        )
    ]
    # The dead worker's drains were never acknowledged, so no other drain covers its
    # claimed rows: the sweep delivered them.
    assert sum(swept) >= claimed, swept

    duplicates = duplicates_of_committed(sandbox)
    # Only requests that reached a vendor while their row was claimed by the dead worker
    # can arrive twice: the outbox never learned they had succeeded.
    assert duplicates <= claimed
    print(
        f"celery SIGKILL: killed after {sum(map(len, reached.values()))} deliveries had reached "
        f"vendors ({delivered_at_kill} recorded delivered, {claimed} claimed rows); "
        f"{duplicates} duplicates; all {ALL_DELIVERED['delivered']} delivered {elapsed:.1f}s "
        f"after tracking began ({recovery:.1f}s after the kill), {sum(swept)} of them by "
        f"{len(swept)} sweeps"
    )


@pytest.mark.integration
def test_a_broker_that_is_down_costs_no_event_and_no_time(
    celery_settings: Processes, outbox_database: Database
) -> None:
    """Celery retries a publish to a broker that is down for about 0.7 s; the commit
    no longer waits for it (it took 0.62-0.76 s per transaction when it did)."""
    celery = celery_settings
    celery.env["EVENTTRACK_TEST_REDIS_URL"] = f"redis://127.0.0.1:{free_port()}/0"  # nobody there

    output = celery.run("-m", "tests.integration.track", "0", "10")
    per_event = float(re.findall(r"tracked in ([\d.]+)s", output)[0]) / 10

    assert per_event < 0.05, output
    # The hand-off thread tried (each failure logged, no traceback) and gave up at exit.
    assert "could not hand them to Celery (OperationalError" in output
    assert "Traceback" not in output
    assert statuses(outbox_database) == {"pending": 10 * len(VENDORS)}
    # The cron alternative to the beat sweep sends them.
    sweep = celery.run("-m", "django", "eventtrack_worker", "--once")
    assert f"delivered {10 * len(VENDORS)}, retried 0, failed 0" in sweep
    assert statuses(outbox_database) == {"delivered": 10 * len(VENDORS)}
    print(f"celery broker down: track() and commit took {per_event * 1000:.1f} ms per transaction")


@pytest.mark.integration
def test_check_warns_when_no_celery_app_is_loaded(celery_settings: Processes) -> None:
    celery = celery_settings
    # The project package creates its app when its settings load: no warning.
    quiet = celery.run("-m", "django", "check", "--tag", "eventtrack")
    assert "eventtrack.W004" not in quiet
    # Settings outside any project package with a Celery app: the tasks would go nowhere.
    loud = celery.run(
        "-m",
        "django",
        "check",
        "--tag",
        "eventtrack",
        DJANGO_SETTINGS_MODULE="tests.processes.settings",
        EVENTTRACK_TEST_DATABASE=str(Path(celery.logs) / "unused.sqlite3"),
    )
    assert "eventtrack.W004" in loud


def test_celery_missing_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "celery", None)  # what an uninstalled package looks like
    monkeypatch.delitem(sys.modules, "django_eventtrack.tasks", raising=False)
    with pytest.raises(ConfigurationError, match=r"pip install 'django-eventtrack\[celery\]'"):
        backends.load_backend("celery")

"""The outbox worker: retries, backoff, Retry-After, give-up rules, the circuit breaker and
batching in one process; then real worker processes sharing a SQLite file, killed with
SIGKILL, stopped with SIGTERM, and the command end to end."""

from __future__ import annotations

import io
import math
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import OperationalError
from django.utils import timezone
from pytest_django import Settings

from django_eventtrack.conf import get_config
from django_eventtrack.delivery import flow, held_claims, sender, worker
from django_eventtrack.delivery.sender import DrainStats
from django_eventtrack.models import Delivery, VendorPause
from django_eventtrack.outbox import fanout, leases, outcomes, pausing
from django_eventtrack.sandbox import Sandbox
from tests.processes.helpers import VENDORS, received, track_many, wait_until

ROOT = Path(__file__).resolve().parents[2]
Status = Delivery.Status


@pytest.fixture(autouse=True)
def _closed_breaker() -> Iterator[None]:
    flow.breaker.reset()
    yield
    flow.breaker.reset()


# --- one process: the worker's rounds against the sandbox ------------------------------------


@pytest.fixture
def worker_mode(settings: Settings, sandbox: Sandbox) -> Callable[..., Sandbox]:
    """Configure the vendors (all, or ``only`` some) against the sandbox, with
    DELIVERY="worker", tiny backoff and ``options``; ``vendors`` adds per-vendor settings."""

    def configure(
        vendors: dict[str, dict[str, Any]] | None = None,
        only: tuple[str, ...] = VENDORS,
        **options: Any,
    ) -> Sandbox:
        vendor_settings = {name: sandbox.vendor_settings()[name] for name in only}
        for name, extra in (vendors or {}).items():
            vendor_settings[name].update(extra)
        settings.EVENTTRACK = {
            "VENDORS": vendor_settings,
            "DELIVERY": "worker",
            "RETRY_BACKOFF_BASE": 0.01,
            **options,
        }
        return sandbox

    return configure


def drain_until_settled(runner: worker.Worker, timeout: float = 5.0) -> DrainStats:
    """``--once`` rounds until nothing is pending, waiting for each retry to come due."""
    deadline = time.monotonic() + timeout
    while True:
        runner.run_once()
        pending = Delivery.objects.filter(status=Status.PENDING, vendor__in=runner.vendors)
        if not pending.exists():
            return runner.totals
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"still pending: {list(pending)}"
        wait_until(
            lambda: any(leases.due(vendor).exists() for vendor in runner.vendors),
            timeout=remaining,
            what="a retry to come due",
        )


@pytest.mark.django_db(transaction=True)
def test_a_vendor_down_for_a_while_ends_with_everything_delivered_once(
    worker_mode: Callable[..., Sandbox],
) -> None:
    sandbox = worker_mode()
    sandbox.inject("hackle", status=503, count=3)
    track_many(6)
    runner = worker.Worker()

    first = runner.run_once()
    now = timezone.now()
    assert first.retried >= 3
    for delivery in Delivery.objects.filter(status=Status.PENDING):
        # Full jitter below RETRY_BACKOFF_BASE * 2**(attempts-1): seconds, not the default minutes.
        assert delivery.next_attempt_at <= now + timedelta(seconds=0.01 * 2**delivery.attempts)
    totals = drain_until_settled(runner)

    assert set(Delivery.objects.values_list("status", flat=True)) == {Status.DELIVERED}
    for vendor in VENDORS:
        assert received(sandbox, vendor) == dict.fromkeys(range(6), 1), vendor
    hackle = Delivery.objects.filter(vendor="hackle")
    assert len(sandbox.requests("hackle")) == 6 + 3
    assert sum(hackle.values_list("attempts", flat=True)) == 6 + 3
    assert (totals.delivered, totals.retried, totals.failed) == (6 * len(VENDORS), 3, 0)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_is_honoured(worker_mode: Callable[..., Sandbox], status: int) -> None:
    sandbox = worker_mode()
    sandbox.inject("hackle", status=status, retry_after=2)
    track_many(1, vendors=["hackle"])
    runner = worker.Worker(["hackle"])

    before = timezone.now()
    assert runner.run_once().retried == 1
    after = timezone.now()
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.last_status) == (
        Status.PENDING,
        1,
        status,
    )
    assert before + timedelta(seconds=2) <= delivery.next_attempt_at
    assert delivery.next_attempt_at <= after + timedelta(seconds=2.1)
    pause = pausing.paused_vendors()["hackle"]  # the whole vendor waits, in every process
    assert before + timedelta(seconds=2) <= pause.paused_until <= after + timedelta(seconds=2.1)

    assert runner.run_once().sent == 0  # not due yet: not retried
    assert len(sandbox.requests("hackle")) == 1

    # Two seconds later...
    Delivery.objects.update(next_attempt_at=timezone.now())
    VendorPause.objects.update(paused_until=timezone.now())
    flow.breaker.reset()
    assert runner.run_once().delivered == 1
    assert len(sandbox.requests("hackle")) == 2


@pytest.mark.django_db(transaction=True)
def test_a_wrong_credential_pauses_the_vendor_after_one_request_and_fails_nothing(
    worker_mode: Callable[..., Sandbox],
) -> None:
    sandbox = worker_mode(vendors={"hackle": {"API_KEY": "wrong-key"}})
    track_many(1, vendors=["hackle"])
    runner = worker.Worker(["hackle"])

    first = runner.run_once()
    assert (first.retried, first.failed) == (1, 0)
    second = runner.run_once()
    assert (second.sent, second.paused_vendors) == (0, {"hackle"})
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.last_status) == (Status.PENDING, 0, 401)
    assert "wrong-key" not in delivery.last_error
    assert len(sandbox.requests("hackle")) == 1


@pytest.mark.django_db(transaction=True)
def test_max_attempts_exhausted_fails_the_delivery(worker_mode: Callable[..., Sandbox]) -> None:
    sandbox = worker_mode(vendors={"hackle": {"MAX_ATTEMPTS": 3}})
    sandbox.inject("hackle", status=503, count=10)
    track_many(1, vendors=["hackle"])

    drain_until_settled(worker.Worker(["hackle"]))

    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.last_status) == (Status.FAILED, 3, 503)
    assert delivery.last_error.startswith("gave up after 3 attempts; last: HTTP 503")
    assert len(sandbox.requests("hackle")) == 3


@pytest.mark.django_db(transaction=True)
def test_max_age_exceeded_fails_the_delivery(worker_mode: Callable[..., Sandbox]) -> None:
    sandbox = worker_mode(vendors={"hackle": {"MAX_AGE": 3600}})
    sandbox.inject("hackle", status=503, delay=0.3)
    fanout.write_now([event.id for event in track_many(2, vendors=["hackle"])])
    stale, on_the_edge = Delivery.objects.order_by("created_at")
    now = timezone.now()
    Delivery.objects.filter(pk=stale.pk).update(created_at=now - timedelta(hours=2))
    # Young enough to be sent, too old to be retried once the slow 503 comes back.
    Delivery.objects.filter(pk=on_the_edge.pk).update(
        created_at=now - timedelta(seconds=3600 - 0.2)
    )
    runner = worker.Worker(["hackle"])

    stats = runner.run_once()

    stale.refresh_from_db()
    on_the_edge.refresh_from_db()
    assert (stale.status, stale.attempts) == (Status.FAILED, 0)
    assert stale.last_error.startswith("not sent: older than MAX_AGE (3600s)")
    assert (on_the_edge.status, on_the_edge.attempts) == (Status.FAILED, 1)
    assert on_the_edge.last_error.startswith("gave up: not delivered within MAX_AGE (3600s)")
    assert len(sandbox.requests("hackle")) == 1
    # The expired one was failed without a request; the 503 counts as a retryable answer.
    assert worker.stats_line(stats) == "delivered 0, retried 1, failed 1 (1 request)"


@pytest.mark.django_db(transaction=True)
def test_circuit_breaker_pauses_a_failing_vendor_only(
    worker_mode: Callable[..., Sandbox],
) -> None:
    sandbox = worker_mode(CIRCUIT_BREAKER_THRESHOLD=3, CONCURRENCY=1)
    sandbox.inject("hackle", status=503, count=100)
    track_many(10)
    runner = worker.Worker()

    stats = runner.run_once()

    assert stats.paused_vendors == {"hackle"}
    assert "; paused: hackle" in worker.stats_line(stats)
    hackle_requests = len(sandbox.requests("hackle"))
    assert hackle_requests == 3  # paused after 3 failures in a row, mid-claim
    for vendor in ("hellotext", "browsee", "primedata"):
        assert received(sandbox, vendor) == dict.fromkeys(range(10), 1), vendor
    unsent = Delivery.objects.filter(vendor="hackle", attempts=0)
    assert unsent.count() == 10 - hackle_requests
    assert not unsent.exclude(status=Status.PENDING, claim_token=None).exists()  # released

    assert runner.run_once().paused_vendors == {"hackle"}
    assert len(sandbox.requests("hackle")) == hackle_requests  # still paused: nothing sent


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("per_request", "batches"), [(None, [50] * 24), (500, [200, 500, 500])])
def test_primedata_takes_events_per_request_events_to_a_request(
    worker_mode: Callable[..., Sandbox], per_request: int | None, batches: list[int]
) -> None:
    """50 events to a request by default (``EVENTS_PER_REQUEST``), up to PrimeData's 500."""
    # Hackle stands for the one-event-per-request vendors (all three would triple the runtime).
    options = {} if per_request is None else {"primedata": {"EVENTS_PER_REQUEST": per_request}}
    sandbox = worker_mode(options, only=("hackle", "primedata"))
    track_many(1200)

    stats = worker.Worker().run_once()

    assert sorted(record.event_count for record in sandbox.requests("primedata")) == batches
    assert received(sandbox, "primedata") == dict.fromkeys(range(1200), 1)
    assert len(sandbox.requests("hackle")) == 1200
    assert received(sandbox, "hackle") == dict.fromkeys(range(1200), 1)
    assert (stats.delivered, stats.requests) == (2400, 1200 + len(batches))
    assert not Delivery.objects.exclude(status=Status.DELIVERED).exists()


@pytest.mark.django_db(transaction=True)
def test_the_worker_survives_a_database_error(
    worker_mode: Callable[..., Sandbox],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    sandbox = worker_mode(POLL_INTERVAL=0.05)
    track_many(1, vendors=["hackle"])
    real_drain = sender.drain
    calls = Counter[str]()

    def flaky_drain(*args: Any, **kwargs: Any) -> DrainStats:
        calls["drain"] += 1
        if calls["drain"] == 1:
            raise OperationalError("database is locked")
        return real_drain(*args, **kwargs)

    monkeypatch.setattr(sender, "drain", flaky_drain)
    runner = worker.Worker(["hackle"])
    thread = threading.Thread(target=runner.run)
    thread.start()
    try:
        sandbox.wait_for(1, vendor="hackle")
        wait_until(lambda: Delivery.objects.filter(status=Status.DELIVERED).exists())
    finally:
        runner.stop()
        thread.join(5)
    assert not thread.is_alive()
    assert "sender round failed (1 in a row)" in caplog.text
    assert runner.totals.delivered == 1


@pytest.mark.django_db(transaction=True)
def test_a_database_fault_mid_drain_keeps_honest_totals_and_gives_the_rest_back(
    worker_mode: Callable[..., Sandbox], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database fails when the second outcome is recorded: the drain ends, but first
    writes that answer again (it would be sent twice otherwise), and the totals count
    what the database holds; the claimed rows never sent are due again at once, not
    when the lease ends."""
    sandbox = worker_mode(CONCURRENCY=1)
    sandbox.inject("hackle", delay=0.01)
    sandbox.inject("hackle", delay=0.3, count=4)  # the first answer is recorded alone
    track_many(5, vendors=["hackle"])
    real_finish = outcomes.record_outcome
    calls: list[int] = []

    def failing_finish(claim: Any, deliveries: Any, *args: Any, **kwargs: Any) -> None:
        calls.append(len(deliveries))
        if len(calls) == 2:
            raise OperationalError("server closed the connection unexpectedly")
        real_finish(claim, deliveries, *args, **kwargs)

    monkeypatch.setattr(outcomes, "record_outcome", failing_finish)
    runner = worker.Worker(["hackle"])
    with pytest.raises(OperationalError):
        runner.run_once()

    assert calls[0] == 1  # the first answer, recorded alone; the second write failed
    sent = len(sandbox.requests("hackle"))
    assert 2 <= sent < 5
    assert calls[2] == sent - 1  # tried again: every answer but the first, none lost
    assert Delivery.objects.filter(status=Status.DELIVERED).count() == sent
    assert (runner.totals.delivered, runner.totals.requests) == (sent, sent)
    rest = Delivery.objects.exclude(status=Status.DELIVERED)
    assert rest.count() == 5 - sent
    assert not rest.filter(claim_token__isnull=False).exists()
    assert rest.filter(next_attempt_at__lte=timezone.now(), attempts=0).count() == 5 - sent


@pytest.mark.django_db(transaction=True)
def test_a_database_that_stays_down_leaves_what_was_sent_due_at_once_with_its_token(
    worker_mode: Callable[..., Sandbox], monkeypatch: pytest.MonkeyPatch
) -> None:
    """No outcome can be written, however often it is tried: the drain gives up; the rows
    whose request went out keep their claim's token (an answer may still be recorded) and
    those never sent lose it, all due at once rather than when the lease ends."""
    sandbox = worker_mode(CONCURRENCY=1, MAX_CONCURRENCY=1)
    sandbox.inject("hackle", delay=0.2)
    track_many(3, vendors=["hackle"])

    def refused(*args: Any, **kwargs: Any) -> None:
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(outcomes, "record_results", refused)
    monkeypatch.setattr(held_claims, "RETRY_WAITS", (0.01, 0.01))
    with pytest.raises(OperationalError):
        worker.Worker(["hackle"]).run_once()

    assert len(sandbox.requests("hackle")) == 1
    rows = Delivery.objects.order_by("created_at")
    assert [row.claim_token is not None for row in rows] == [True, False, False]
    assert rows.filter(status=Status.PENDING, next_attempt_at__lte=timezone.now()).count() == 3


@pytest.mark.django_db(transaction=True)
def test_once_command_with_vendor_filter(worker_mode: Callable[..., Sandbox]) -> None:
    sandbox = worker_mode()
    track_many(2)
    out = io.StringIO()
    call_command("eventtrack_worker", "--once", "--vendor", "hackle", stdout=out)
    assert out.getvalue() == "delivered 2, retried 0, failed 0 (2 requests)\n"
    assert {record.vendor for record in sandbox.requests()} == {"hackle"}
    with pytest.raises(CommandError, match="unknown vendor nope"):
        call_command("eventtrack_worker", "--once", "--vendor", "nope")


# --- real processes sharing one SQLite file ------------------------------------------------


@pytest.fixture(scope="session")
def migrated_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty, migrated SQLite file; each test gets a copy."""
    path = tmp_path_factory.mktemp("eventtrack-processes") / "template.sqlite3"
    env = {**clean_environ(), "EVENTTRACK_TEST_DATABASE": str(path)}
    command = [sys.executable, "-m", "django", "migrate", "-v0"]
    subprocess.run(  # noqa: S603 (our own interpreter and module)
        command, env=env, cwd=ROOT, check=True, timeout=60, capture_output=True
    )
    return path


def clean_environ() -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("EVENTTRACK_")}
    return environ | {
        "DJANGO_SETTINGS_MODULE": "tests.processes.settings",
        "PYTHONPATH": str(ROOT),
        "PYTHONUNBUFFERED": "1",
    }


class Processes:
    """Worker processes for one test, on one database file; all killed at the end."""

    def __init__(self, database: Path, sandbox: Sandbox, logs: Path) -> None:
        self.database = database
        self.logs = logs
        self.started: dict[subprocess.Popen[bytes], Path] = {}
        self.env = clean_environ() | {
            "EVENTTRACK_TEST_DATABASE": str(database),
            "EVENTTRACK_POLL_INTERVAL": "0.1",
            **sandbox.env(),
        }

    def only(self, vendor: str) -> None:
        """Configure just ``vendor`` (the others have no credentials)."""
        prefixes = tuple(f"EVENTTRACK_{name.upper()}_" for name in VENDORS if name != vendor)
        self.env = {k: v for k, v in self.env.items() if not k.startswith(prefixes)}

    def seed(self, count: int) -> None:
        env = self.env | {"EVENTTRACK_DELIVERY": "worker"}
        command = [sys.executable, "-m", "tests.processes.seed", str(count)]
        subprocess.run(  # noqa: S603 (our own interpreter and module)
            command, env=env, cwd=ROOT, check=True, timeout=60, capture_output=True
        )

    def worker(self, *args: str) -> subprocess.Popen[bytes]:
        """Start ``eventtrack_worker ARGS``; its stdout and stderr go to a log file."""
        log = self.logs / f"worker-{len(self.started)}.log"
        with log.open("wb") as sink:
            process = subprocess.Popen(  # noqa: S603 (our own interpreter and module)
                [sys.executable, "-m", "django", "eventtrack_worker", *args],
                env=self.env,
                cwd=ROOT,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        self.started[process] = log
        return process

    def output(self, process: subprocess.Popen[bytes]) -> str:
        return self.started[process].read_text()

    def wait_started(self, process: subprocess.Popen[bytes]) -> None:
        wait_until(
            lambda: "worker started" in self.output(process) or process.poll() is not None,
            timeout=10,
            what="the worker to start",
        )
        assert process.poll() is None, self.output(process)

    def stop(self, process: subprocess.Popen[bytes], timeout: float = 5.0) -> int:
        process.send_signal(signal.SIGTERM)
        return process.wait(timeout)

    def kill_all(self) -> None:
        for process in self.started:
            if process.poll() is None:
                process.kill()
            process.wait(5)

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.database, timeout=30) as connection:
            return connection.execute(sql, params).fetchall()

    def statuses(self) -> Counter[str]:
        rows = self.query("SELECT status, COUNT(*) FROM eventtrack_delivery GROUP BY status")
        return Counter(dict(rows))


@pytest.fixture
def processes(tmp_path: Path, migrated_database: Path, sandbox: Sandbox) -> Iterator[Processes]:
    database = tmp_path / "outbox.sqlite3"
    shutil.copyfile(migrated_database, database)
    group = Processes(database, sandbox, tmp_path)
    try:
        yield group
    finally:
        group.kill_all()


def test_once_command_end_to_end(processes: Processes) -> None:
    processes.seed(5)
    process = processes.worker("--once")
    assert process.wait(20) == 0, processes.output(process)
    # 5 events to each vendor: one request each, or one batch of 5 for a vendor that batches.
    adapters = get_config().adapters
    requests = sum(math.ceil(5 / adapters[vendor].max_batch_size) for vendor in VENDORS)
    delivered = 5 * len(VENDORS)
    summary = f"delivered {delivered}, retried 0, failed 0 ({requests} requests)"
    assert summary in processes.output(process)
    assert processes.statuses() == {"delivered": delivered}


def test_sigterm_lets_in_flight_requests_finish_and_releases_the_rest(
    processes: Processes, sandbox: Sandbox
) -> None:
    processes.only("hackle")
    processes.env["EVENTTRACK_CONCURRENCY"] = "1"
    sandbox.inject("hackle", delay=0.01)
    sandbox.inject("hackle", delay=1.0)
    processes.seed(3)
    process = processes.worker()
    processes.wait_started(process)
    sandbox.wait_for(1, vendor="hackle", timeout=10)  # the next request is on its slow way

    started = time.monotonic()
    assert processes.stop(process, timeout=5) == 0, processes.output(process)
    assert time.monotonic() - started < 3

    output = processes.output(process)
    assert "received SIGTERM: finishing in-flight requests, then stopping" in output
    assert "worker stopped" in output
    rows = processes.query(
        "SELECT status, attempts, claim_token FROM eventtrack_delivery ORDER BY status"
    )
    delivered = [row for row in rows if row[0] == "delivered"]
    # Every request that left finished and was recorded; everything else was given back.
    assert len(delivered) == len(sandbox.requests("hackle")) >= 1
    assert [row for row in rows if row[0] != "delivered"] == [("pending", 0, None)] * (
        3 - len(delivered)
    )
    assert len(delivered) < 3


@pytest.mark.slow
def test_a_killed_worker_s_claim_is_delivered_by_another_after_its_lease(
    processes: Processes, sandbox: Sandbox
) -> None:
    """The claim of a worker killed mid-batch is no longer renewed: its rows come due when
    its lease ends, within LEASE_SECONDS of the kill, and another worker sends them then
    (not before: the lease still protects them)."""
    processes.only("hackle")
    processes.env |= {
        "EVENTTRACK_LEASE_SECONDS": "3",
        "EVENTTRACK_BATCH_SIZE": "4",
        "EVENTTRACK_CONCURRENCY": "2",
    }
    sandbox.inject("hackle", delay=0.02, count=2)  # the first pair answers quickly...
    sandbox.inject("hackle", delay=0.3, count=2)  # ...the second is in flight when we kill
    processes.seed(12)
    first = processes.worker()
    sandbox.wait_for(2, vendor="hackle", timeout=10)
    first.send_signal(signal.SIGKILL)
    first.wait(5)
    killed_at = datetime.now(UTC).replace(tzinfo=None)
    claimed = processes.query(
        "SELECT id, claimed_until FROM eventtrack_delivery WHERE claim_token IS NOT NULL"
    )
    assert 1 <= len(claimed) <= 4  # the dead worker's claim, stuck until its lease ends
    lease_end = max(datetime.fromisoformat(until) for _, until in claimed)
    assert lease_end <= killed_at + timedelta(seconds=3)

    second = processes.worker()
    wait_until(
        lambda: processes.statuses() == {"delivered": 12},
        timeout=15,
        what="the expired claim to be delivered",
    )
    ids = ",".join(str(pk) for pk, _ in claimed)
    taken_over = processes.query(
        f"SELECT delivered_at FROM eventtrack_delivery WHERE id IN ({ids})"  # noqa: S608
    )
    assert all(datetime.fromisoformat(at) >= lease_end for (at,) in taken_over)
    assert processes.stop(second) == 0

    counts = received(sandbox, "hackle")
    assert set(counts) == set(range(12))
    duplicates = sum(count - 1 for count in counts.values())
    # Only requests that reached the vendor before the kill can arrive twice.
    assert duplicates <= len(claimed)
    print(f"SIGKILL mid-batch: {len(claimed)} claimed rows recovered, {duplicates} duplicates")


@pytest.mark.slow
def test_three_workers_deliver_each_event_exactly_once(
    processes: Processes, sandbox: Sandbox
) -> None:
    processes.env["EVENTTRACK_BATCH_SIZE"] = "20"
    workers = [processes.worker() for _ in range(3)]
    for process in workers:
        processes.wait_started(process)
    processes.seed(300)  # all three are polling when the events land

    deliveries = 300 * len(VENDORS)
    wait_until(
        lambda: processes.statuses() == {"delivered": deliveries},
        timeout=30,
        what=f"all {deliveries} deliveries",
    )
    for process in workers:
        assert processes.stop(process) == 0, processes.output(process)

    for vendor in VENDORS:
        assert received(sandbox, vendor) == dict.fromkeys(range(300), 1), vendor
    for vendor in VENDORS:
        if get_config().adapters[vendor].max_batch_size == 1:
            assert len(sandbox.requests(vendor)) == 300
    shares = [worker_delivered(processes.output(process)) for process in workers]
    assert sum(shares) == deliveries, shares
    print(f"three workers delivered {shares}")


def worker_delivered(output: str) -> int:
    line = next(line for line in output.splitlines() if "worker stopped" in line)
    return int(line.split("delivered ", 1)[1].split(",", 1)[0])


@pytest.mark.django_db(transaction=True)
def test_each_final_failure_is_logged_once_at_warning(
    worker_mode: Callable[..., Sandbox], caplog: pytest.LogCaptureFixture
) -> None:
    """A refusal and retries run out: one WARNING each, naming the vendor, the event and
    the reason, and never the vendor's key; retrying is INFO, not a warning."""
    sandbox = worker_mode(vendors={"hackle": {"MAX_ATTEMPTS": 2}}, only=("hackle", "browsee"))
    sandbox.inject("browsee", status=400, body={"error": "bad event"})
    sandbox.inject("hackle", status=503, count=10)
    (event,) = track_many(1, vendors=["hackle", "browsee"])
    runner = worker.Worker(["hackle", "browsee"])

    with caplog.at_level("INFO", logger="django_eventtrack"):
        drain_until_settled(runner)
        runner.run_once()

    warnings = [
        r
        for r in caplog.records
        if r.levelname == "WARNING" and "failed for good" in r.getMessage()
    ]
    by_vendor = {record.getMessage().split("vendor=")[1].split()[0]: record for record in warnings}
    assert sorted(by_vendor) == ["browsee", "hackle"]
    assert len(warnings) == 2
    for vendor, record in by_vendor.items():
        message = record.getMessage()
        assert f"event={event.id} name=order.placed" in message, message
        assert sandbox.vendor_settings()[vendor]["API_KEY"] not in message
    assert "HTTP 400" in by_vendor["browsee"].getMessage()
    assert "gave up after 2 attempts; last: HTTP 503" in by_vendor["hackle"].getMessage()

"""``eventtrack_status`` (with ``--check``), through the library and the command."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from pytest_django import DjangoAssertNumQueries

from django_eventtrack.models import Delivery, Event
from django_eventtrack.monitoring import status
from tests.example_project import environment, manage
from tests.processes.helpers import VENDORS, routed_after_the_first_query

Status = Delivery.Status
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
NO_TIME = timedelta(0)


def stored_event(
    age: timedelta = timedelta(0),
    *,
    now: datetime = NOW,
    routes: dict[str, str | None] | None = None,
) -> Event:
    """An event stored ``age`` before ``now``; with ``routes``, one no sender has routed."""
    created = now - age
    return Event.objects.create(
        name="order.placed", timestamp=created, created_at=created, routes=routes
    )


def delivery(
    event: Event,
    vendor: str,
    status: str,
    *,
    age: timedelta = timedelta(0),
    now: datetime = NOW,
    **fields: object,
) -> Delivery:
    """A delivery created and last touched ``age`` before ``now``."""
    created = now - age
    fields = {"created_at": created, "next_attempt_at": created, **fields}
    row = Delivery.objects.create(event=event, vendor=vendor, status=status, **fields)
    Delivery.objects.filter(pk=row.pk).update(updated_at=created)  # auto_now set it to today
    return row


@pytest.fixture
def mixed_outbox() -> None:
    minute = timedelta(minutes=1)
    for vendor, state, age, extra in [
        ("hackle", Status.PENDING, 10 * minute, {"next_attempt_at": NOW - minute}),
        ("hackle", Status.PENDING, 120 * minute, {"next_attempt_at": NOW + 5 * minute}),
        ("hackle", Status.FAILED, 60 * minute, {}),
        ("hackle", Status.SKIPPED, 60 * minute, {}),
        ("hackle", Status.DELIVERED, 40 * minute, {"delivered_at": NOW - 30 * minute}),
        ("hackle", Status.DELIVERED, 200 * minute, {"delivered_at": NOW - 2 * 60 * minute}),
        ("browsee", Status.DELIVERED, 20 * minute, {"delivered_at": NOW - 10 * minute}),
        ("browsee", Status.DELIVERED, 20 * minute, {"delivered_at": NOW - 10 * minute}),
        ("browsee", Status.PENDING, 5 * minute, {"next_attempt_at": NOW}),
        ("segment", Status.FAILED, 60 * minute, {}),  # a vendor no longer in the registry
    ]:
        delivery(stored_event(age), vendor, state, age=age, **extra)


@pytest.mark.django_db
@pytest.mark.usefixtures("mixed_outbox")
def test_summary_counts_a_mixed_outbox_in_two_queries(
    django_assert_num_queries: DjangoAssertNumQueries,
) -> None:
    with django_assert_num_queries(2):  # the deliveries, and the events not yet routed
        summary = status.summary(now=NOW)
    assert summary.vendors["hackle"] == status.Counts(
        pending=2,
        due=1,
        failed=1,
        skipped=1,
        delivered_last_hour=1,
        oldest_pending_seconds=7200.0,
    )
    assert summary.vendors["browsee"] == status.Counts(
        pending=1, due=1, delivered_last_hour=2, oldest_pending_seconds=300.0
    )
    assert summary.vendors["hellotext"] == summary.vendors["primedata"] == status.Counts()
    assert summary.vendors["segment"] == status.Counts(failed=1)
    assert summary.totals == status.Counts(
        pending=3,
        due=2,
        failed=2,
        skipped=1,
        delivered_last_hour=3,
        oldest_pending_seconds=7200.0,
    )


@pytest.mark.django_db
@pytest.mark.usefixtures("mixed_outbox")
def test_events_no_sender_has_routed_yet_count_as_pending_and_due_for_their_vendors() -> None:
    minute = timedelta(minutes=1)
    stored_event(3 * minute, routes={"hackle": None, "browsee": None})
    stored_event(180 * minute, routes={"browsee": None})
    stored_event(180 * minute)  # no vendor took it: nothing to send
    summary = status.summary(now=NOW)
    assert summary.vendors["hackle"] == status.Counts(
        pending=3,
        due=2,
        failed=1,
        skipped=1,
        delivered_last_hour=1,
        oldest_pending_seconds=7200.0,  # its oldest pending row is older
    )
    assert summary.vendors["browsee"] == status.Counts(
        pending=3, due=3, delivered_last_hour=2, oldest_pending_seconds=10800.0
    )
    assert summary.vendors["primedata"] == status.Counts()
    assert (summary.totals.pending, summary.totals.due) == (6, 5)


@pytest.mark.django_db
def test_an_event_routed_while_the_summary_reads_is_never_missed() -> None:
    """A sender writes the event's deliveries between the summary's two queries: the
    event is counted (twice, for that moment), not lost between them."""
    event = stored_event(routes={"hackle": None})
    with routed_after_the_first_query([event.pk]) as routed:
        summary = status.summary(now=NOW)
    assert routed == [1]
    assert summary.vendors["hackle"].pending >= 1


@pytest.mark.django_db
@pytest.mark.usefixtures("mixed_outbox")
def test_status_command_json_is_machine_readable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(timezone, "now", lambda: NOW)
    out = StringIO()
    call_command("eventtrack_status", "--json", stdout=out)
    report = json.loads(out.getvalue())
    assert report["at"] == "2026-11-23T12:00:00+00:00"
    assert list(report["vendors"]) == [*VENDORS, "segment"]
    assert report["vendors"]["hackle"]["due"] == 1
    assert report["vendors"]["hellotext"]["oldest_pending_seconds"] is None
    assert report["totals"] == {
        "pending": 3,
        "due": 2,
        "failed": 2,
        "skipped": 1,
        "delivered_last_hour": 3,
        "oldest_pending_seconds": 7200.0,
    }


@pytest.mark.django_db
@pytest.mark.usefixtures("mixed_outbox")
def test_status_command_prints_a_table(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(timezone, "now", lambda: NOW)
    out = StringIO()
    call_command("eventtrack_status", stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[0].split() == [
        "vendor",
        "pending",
        "due",
        "now",
        "failed",
        "skipped",
        "delivered",
        "1h",
        "oldest",
        "pending",
        "(s)",
    ]
    rows = {line.split()[0]: line.split()[1:] for line in lines[1:]}
    assert rows["hackle"] == ["2", "1", "1", "1", "1", "7200"]
    assert rows["hellotext"] == ["0", "0", "0", "0", "0", "-"]
    assert rows["total"] == ["3", "2", "2", "1", "3", "7200"]


# -- what finished recently, and the health check ----------------------------------------------


def finished_delivery(
    vendor: str, state: str, *, finished_ago: timedelta, took: timedelta, attempts: int = 1
) -> Delivery:
    """A delivery tracked ``took`` before it became final, ``finished_ago`` before NOW."""
    done = NOW - finished_ago
    row = delivery(
        stored_event(finished_ago + took),
        vendor,
        state,
        age=finished_ago + took,
        attempts=attempts,
        delivered_at=done if state == Status.DELIVERED else None,
    )
    Delivery.objects.filter(pk=row.pk).update(updated_at=done)
    return row


@pytest.mark.django_db
def test_finished_counts_each_window_with_latency_buckets_in_one_query(
    django_assert_num_queries: DjangoAssertNumQueries,
) -> None:
    minute, second = timedelta(minutes=1), timedelta(seconds=1)
    finished_delivery("hackle", Status.DELIVERED, finished_ago=minute, took=0.2 * second)
    finished_delivery("hackle", Status.DELIVERED, finished_ago=minute, took=3 * second, attempts=2)
    finished_delivery("hackle", Status.DELIVERED, finished_ago=2 * 60 * minute, took=40 * second)
    finished_delivery("hackle", Status.FAILED, finished_ago=5 * minute, took=minute, attempts=10)
    finished_delivery("hackle", Status.SKIPPED, finished_ago=3 * 60 * minute, took=second)
    finished_delivery("browsee", Status.DELIVERED, finished_ago=9 * 24 * 60 * minute, took=second)
    delivery(stored_event(), "hackle", Status.PENDING)  # not final: not counted anywhere
    windows = {"hour": timedelta(hours=1), "day": timedelta(days=1)}
    with django_assert_num_queries(1):
        stats = status.finished(windows, now=NOW)
    assert set(stats) == {"hackle"}  # browsee's only delivery is older than a day
    hour, day = stats["hackle"]["hour"], stats["hackle"]["day"]
    assert (hour.delivered, hour.failed, hour.skipped, hour.retried) == (2, 1, 0, 2)
    assert (day.delivered, day.failed, day.skipped, day.retried) == (3, 1, 1, 2)
    assert hour.retry_rate == pytest.approx(2 / 3)
    assert day.retry_rate == pytest.approx(2 / 4)
    bounds = dict(zip(status.LATENCY_BUCKETS, day.latency_counts, strict=True))
    assert (bounds[0.1], bounds[0.25], bounds[2.5], bounds[5], bounds[30], bounds[60]) == (
        0,
        1,
        1,
        2,
        2,
        3,
    )
    assert day.latency_sum == pytest.approx(43.2)
    assert (hour.latency_quantile(0.5), hour.latency_quantile(0.95)) == (0.25, 5.0)
    assert day.latency_quantile(0.95) == 60.0
    assert status.Finished().latency_quantile(0.5) is None
    assert status.Finished().retry_rate is None


@pytest.mark.django_db
def test_a_delivery_slower_than_every_bucket_has_an_unbounded_quantile() -> None:
    finished_delivery("hackle", Status.DELIVERED, finished_ago=timedelta(0), took=timedelta(days=2))
    (stats,) = status.finished({"week": timedelta(days=7)}, now=NOW)["hackle"].values()
    assert stats.latency_counts[-1] == 0
    assert stats.latency_quantile(0.5) == float("inf")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (45, "45s"), (65, "1m 5s"), (3600, "1h"), (3900, "1h 5m"), (200_000, "2d 7h")],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert status.format_duration(seconds) == text


@pytest.mark.django_db
def test_health_reports_recent_failures_and_old_pending_rows_by_vendor() -> None:
    minute = timedelta(minutes=1)
    window, threshold = timedelta(hours=1), timedelta(minutes=15)
    delivery(stored_event(), "hackle", Status.PENDING, age=10 * minute)
    finished_delivery("browsee", Status.FAILED, finished_ago=2 * 60 * minute, took=minute)
    check = status.health(failed_within=window, max_pending_age=threshold, now=NOW)
    assert check.healthy
    assert check.problems == ()

    for _ in range(2):
        finished_delivery("browsee", Status.FAILED, finished_ago=30 * minute, took=minute)
    delivery(stored_event(), "primedata", Status.PENDING, age=20 * minute)
    check = status.health(failed_within=window, max_pending_age=threshold, now=NOW)
    assert not check.healthy
    assert check.problems == (
        "browsee: 2 deliveries failed in the last 1h",
        "primedata: the oldest pending delivery is 20m old (more than 15m)",
    )


def run_check(*args: str) -> tuple[int, str, str]:
    out, err = StringIO(), StringIO()
    try:
        call_command("eventtrack_status", "--check", *args, stdout=out, stderr=err)
    except SystemExit as exit_:
        return int(str(exit_.code)), out.getvalue(), err.getvalue()
    return 0, out.getvalue(), err.getvalue()


@pytest.mark.django_db
def test_check_exits_zero_when_healthy_and_one_once_a_delivery_failed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(timezone, "now", lambda: NOW)
    delivery(stored_event(), "hackle", Status.PENDING, age=timedelta(minutes=5))
    code, out, err = run_check()
    assert (code, err) == (0, "")
    assert out.strip() == (
        "OK: no delivery failed in the last 1h and none has been pending longer than 15m"
    )

    finished_delivery("hackle", Status.FAILED, finished_ago=timedelta(minutes=50), took=NO_TIME)
    code, out, err = run_check()
    assert (code, out) == (1, "")
    assert err.strip() == "UNHEALTHY: hackle: 1 delivery failed in the last 1h"

    code, _, _ = run_check("--failed-within", "30m")  # the failure is older than that
    assert code == 0
    code, _, err = run_check("--failed-within", "30m", "--max-pending-age", "120")
    assert code == 1
    assert err.strip() == (
        "UNHEALTHY: hackle: the oldest pending delivery is 5m old (more than 2m)"
    )
    code, out, _ = run_check("--json")
    assert code == 1
    assert json.loads(out) == {
        "healthy": False,
        "problems": ["hackle: 1 delivery failed in the last 1h"],
    }


@pytest.mark.parametrize("value", ["0", "soon", "-5m", "1w", ""])
def test_check_refuses_a_bad_duration(value: str) -> None:
    with pytest.raises(CommandError, match=r"--max-pending-age: expected a duration more than"):
        call_command("eventtrack_status", "--check", f"--max-pending-age={value}")


@pytest.mark.slow
def test_check_exit_status_through_manage_py(tmp_path: Path) -> None:
    """What cron and a Kubernetes probe see: the process's exit status and its output."""
    env = environment(tmp_path / "shop.sqlite3")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return manage(*args, env=env, timeout=60)

    assert run("migrate", "-v0").returncode == 0
    healthy = run("eventtrack_status", "--check")
    assert (healthy.returncode, healthy.stdout.startswith("OK: ")) == (0, True)
    script = (
        "from django_eventtrack.models import Delivery, Event; from django.utils import timezone;"
        "e = Event.objects.create(name='order.placed', timestamp=timezone.now());"
        "Delivery.objects.create(event=e, vendor='hackle', status='failed', last_error='HTTP 401')"
    )
    assert run("shell", "-c", script).returncode == 0
    unhealthy = run("eventtrack_status", "--check")
    assert unhealthy.returncode == 1
    assert "UNHEALTHY: hackle: 1 delivery failed in the last 1h" in unhealthy.stderr
    assert run("eventtrack_status", "--check", "--failed-within", "never").returncode == 2

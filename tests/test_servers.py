"""Real web servers on loopback: atrack() in an async view under uvicorn (ASGI), and
gunicorn workers stopped with SIGTERM while they are busy sending.

Both run ``tests/views.py`` (``tests/processes/web_settings.py``) with the default
``thread`` delivery against the vendor sandbox, on a SQLite file of their own.
"""

from __future__ import annotations

import itertools
import json
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import urllib.request
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from django_eventtrack.sandbox import Sandbox
from tests.delivery.test_worker import clean_environ
from tests.processes.helpers import (
    VENDORS,
    accepts_connections,
    free_port,
    received,
    wait_until,
)

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = "tests.processes.web_settings"


@pytest.fixture(scope="session")
def migrated_web_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("web") / "template.sqlite3"
    env = clean_environ() | {
        "DJANGO_SETTINGS_MODULE": SETTINGS,
        "EVENTTRACK_TEST_DATABASE": str(path),
    }
    subprocess.run(
        [sys.executable, "-m", "django", "migrate", "-v0"],
        env=env,
        cwd=ROOT,
        check=True,
        timeout=60,
        capture_output=True,
    )
    return path


class Server:
    """One server process on a free loopback port, its output in a log file."""

    def __init__(self, database: Path, sandbox: Sandbox, log: Path) -> None:
        self.database = database
        self.log = log
        self.port = free_port()
        self.env = (
            clean_environ()
            | sandbox.env()
            | {
                "DJANGO_SETTINGS_MODULE": SETTINGS,
                "EVENTTRACK_TEST_DATABASE": str(database),
            }
        )
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, *command: str) -> None:
        with self.log.open("wb") as sink:
            self.process = subprocess.Popen(  # noqa: S603 - our own interpreter
                [sys.executable, "-m", *command],
                env=self.env,
                cwd=ROOT,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        wait_until(lambda: accepts_connections(self.port), timeout=30, what=f"{command[0]}")

    def get(self, path: str) -> Any:
        url = f"http://127.0.0.1:{self.port}{path}"
        with urllib.request.urlopen(url, timeout=10) as response:
            return json.loads(response.read())

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM, as a deploy or a supervisor stops a server; its exit status."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def output(self) -> str:
        return self.log.read_text()

    def query(self, sql: str, *params: Any) -> list[Any]:
        with sqlite3.connect(self.database, timeout=30) as connection:
            return connection.execute(sql, params).fetchall()

    def statuses(self, event_id: str | None = None) -> list[str]:
        """Each delivery's status, then one per vendor of the events whose deliveries no
        sender has written yet (pending, or skipped with a reason in the routes)."""
        if event_id is None:
            rows = self.query("SELECT status FROM eventtrack_delivery ORDER BY id")
            routes = self.query("SELECT routes FROM eventtrack_event WHERE routes IS NOT NULL")
        else:
            key = event_id.replace("-", "")
            rows = self.query(
                "SELECT status FROM eventtrack_delivery WHERE event_id = ? ORDER BY id", key
            )
            routes = self.query(
                "SELECT routes FROM eventtrack_event WHERE id = ? AND routes IS NOT NULL", key
            )
        unrouted = [
            "skipped" if reason else "pending"
            for (text,) in routes
            for reason in json.loads(text).values()
        ]
        return [status for (status,) in rows] + unrouted


@pytest.fixture
def server(tmp_path: Path, migrated_web_database: Path, sandbox: Sandbox) -> Iterator[Server]:
    database = tmp_path / "web.sqlite3"
    shutil.copyfile(migrated_web_database, database)
    running = Server(database, sandbox, tmp_path / "server.log")
    try:
        yield running
    finally:
        if running.process is not None and running.process.poll() is None:
            running.process.kill()
            running.process.wait(5)


def test_atrack_in_an_async_view_under_uvicorn(server: Server, sandbox: Sandbox) -> None:
    server.start(
        "uvicorn",
        "--factory",
        "django.core.asgi:get_asgi_application",
        "--host",
        "127.0.0.1",
        "--port",
        str(server.port),
        "--log-level",
        "warning",
    )
    answer = server.get("/async/tracked/?hello_session=S1")
    assert answer["identity"]["session"] == "S1"  # the middleware's visitor, in atrack()
    assert answer["identity"]["anonymous_id"]
    wait_until(
        lambda: server.statuses(answer["event"]) == ["delivered"] * len(VENDORS),
        what="the event to reach every vendor",
    )
    assert [event["session"] for event in sandbox.events("hellotext")] == ["S1"]
    server.stop()  # uvicorn ends itself with the SIGTERM it caught: no exit status to check
    assert "Traceback" not in server.output(), server.output()


def track_until_busy(server: Server, sandbox: Sandbox) -> list[int]:
    """gunicorn's two sync workers serve four clients, each request tracking an event
    marked with its own ``n``, until a hundred are tracked, the senders are busy and
    the vendors at least 80 events behind; the markers tracked."""
    server.start(
        "gunicorn",
        "--bind",
        f"127.0.0.1:{server.port}",
        "--workers",
        "2",
        "--graceful-timeout",
        "30",
        "django.core.wsgi:get_wsgi_application()",
    )
    stop_load = threading.Event()
    markers = itertools.count()
    tracked: list[int] = []

    def client() -> None:
        while not stop_load.is_set():
            n = next(markers)
            server.get(f"/tracked/?hello_session=S1&n={n}")
            tracked.append(n)

    clients = [threading.Thread(target=client) for _ in range(4)]
    for thread in clients:
        thread.start()
    try:
        wait_until(lambda: len(tracked) >= 100, timeout=20, what="a hundred tracked events")
        wait_until(lambda: len(sandbox.requests()) >= 8, what="the senders to be busy")
        wait_until(
            lambda: len(tracked) - min(len(sandbox.events(vendor)) for vendor in VENDORS) >= 80,
            timeout=30,
            what="the senders to be 80 events behind",
        )
    finally:
        stop_load.set()
        for thread in clients:
            thread.join(10)
    return tracked


def left_claimed(server: Server) -> list[tuple[datetime, bool]]:
    """(due at, claim token kept) of each pending delivery that is not due now or still
    carries a claim's token: a row some sender may still be sending or recording."""
    now = datetime.now(UTC)
    rows = server.query(
        "SELECT next_attempt_at, claim_token FROM eventtrack_delivery WHERE status = 'pending'"
    )
    found = []
    for due, token in rows:
        due_at = due if isinstance(due, datetime) else datetime.fromisoformat(due)
        due_at = due_at if due_at.tzinfo else due_at.replace(tzinfo=UTC)
        if due_at > now or token is not None:
            found.append((due_at, token is not None))
    return found


def assert_sent_once_after_a_drain(server: Server, sandbox: Sandbox, tracked: list[int]) -> None:
    """Once the vendors answer promptly, ``eventtrack_worker --once`` delivers the rest,
    and every vendor received every tracked event exactly once."""
    sandbox.clear_faults()
    worker = subprocess.run(
        [sys.executable, "-m", "django", "eventtrack_worker", "--once"],
        env=server.env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "failed 0" in worker.stdout, worker.stdout + worker.stderr
    assert set(server.statuses()) == {"delivered"}
    twice = Counter[str]()
    for vendor in VENDORS:
        copies = received(sandbox, vendor)
        assert set(copies) == set(tracked), f"{vendor}: lost {set(tracked) - set(copies)}"
        twice[vendor] = sum(count - 1 for count in copies.values())
    assert +twice == Counter(), f"sent twice: {dict(twice)}"


@pytest.mark.slow
def test_gunicorn_stopped_under_load_leaves_nothing_claimed_and_sends_nothing_twice(
    server: Server, sandbox: Sandbox
) -> None:
    """Two gunicorn workers track events from four busy clients while every vendor
    answers in 100 ms and the load outruns the senders; then the master gets SIGTERM.
    Each worker sends for SHUTDOWN_TIMEOUT, then records every answer it got (those of
    the requests in flight then included), gives back only what it never sent and exits:
    no traceback, no row left claimed, one line saying what is left; a worker run
    afterwards sends it, and no vendor got an event twice."""
    server.env |= {
        "EVENTTRACK_SHUTDOWN_TIMEOUT": "1",
        "EVENTTRACK_CONCURRENCY": "2",
        "EVENTTRACK_MAX_CONCURRENCY": "2",  # a window that cannot grow past the load
    }
    for vendor in VENDORS:
        sandbox.inject(vendor, delay=0.1, count=1_000_000)
    tracked = track_until_busy(server, sandbox)

    assert server.stop() == 0
    output = server.output()
    assert "Traceback" not in output, output
    statuses = server.statuses()
    assert len(statuses) == len(VENDORS) * len(tracked)
    assert "pending" in statuses  # the load outran the senders: something was left
    assert left_claimed(server) == []
    assert "not sent within SHUTDOWN_TIMEOUT (1s)" in output
    assert "manage.py eventtrack_worker" in output
    assert_sent_once_after_a_drain(server, sandbox, tracked)

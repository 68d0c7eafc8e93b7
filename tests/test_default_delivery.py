"""The default delivery as a new user meets it: the example project, with no delivery
setting, in real processes against the vendor sandbox.

A command, ``manage.py shell -c`` and a plain ``asyncio.run(atrack(...))`` script each
reach every vendor before the process exits, with exit status 0 and no traceback;
what does not fit in ``SHUTDOWN_TIMEOUT`` is left pending (never claimed) with one log
line saying how to send it; and a freshly started server sends what another process
left pending as soon as it serves its first request, with no new event.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from django_eventtrack.sandbox import Sandbox
from tests.processes.helpers import VENDORS, accepts_connections, free_port, received, wait_until
from tests.settings import TEST_ADAPTERS

ROOT = Path(__file__).resolve().parent.parent
SHOP = ROOT / "example_project"


def shop_environ(database: Path) -> dict[str, str]:
    """The environment of a fresh shell: no EVENTTRACK_* variable, no settings module."""
    environ = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("EVENTTRACK_", "DJANGO_SETTINGS_MODULE"))
    }
    return environ | {"DATABASE_URL": f"sqlite:///{database}", "PYTHONUNBUFFERED": "1"}


@pytest.fixture(scope="session")
def migrated_shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example shop's database, migrated once; each test gets a copy."""
    database = tmp_path_factory.mktemp("shop") / "template.sqlite3"
    subprocess.run(  # noqa: S603 - our own manage.py
        [sys.executable, str(SHOP / "manage.py"), "migrate", "-v0"],
        env=shop_environ(database),
        check=True,
        timeout=60,
        capture_output=True,
    )
    return database


class Shop:
    """The example project on its own database file, configured from the sandbox's variables
    (and the test suite's vendor registry, the fifth vendor included)."""

    def __init__(self, database: Path, sandbox: Sandbox) -> None:
        self.database = database
        registry = {"EVENTTRACK_ADAPTERS": ",".join(TEST_ADAPTERS), "PYTHONPATH": str(ROOT)}
        # These tests track marked events of their own (n=...), which the shop's tracking
        # plan does not declare: they run without it (tests/plan covers the plan).
        no_plan = {"EVENTTRACK_PLAN": ""}
        self.env = shop_environ(database) | sandbox.env() | registry | no_plan

    def run(self, *command: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """``python COMMAND`` in the project's directory, as a user types it."""
        return subprocess.run(  # noqa: S603 - our own interpreter
            [sys.executable, *command],
            env=self.env,
            cwd=SHOP,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def manage(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run("manage.py", *args)

    def deliveries(self) -> list[tuple[str, str, str | None]]:
        """(vendor, status, claim token) of every delivery row."""
        return self.query("SELECT vendor, status, claim_token FROM eventtrack_delivery ORDER BY id")

    def routes(self) -> list[dict[str, str | None] | None]:
        """Each event's routes: the vendors a sender is yet to write deliveries for."""
        rows = self.query("SELECT routes FROM eventtrack_event ORDER BY created_at")
        return [None if routes is None else json.loads(routes) for (routes,) in rows]

    def due_now(self) -> int:
        """How many deliveries any sender may claim right now."""
        now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
        ((count,),) = self.query(
            "SELECT COUNT(*) FROM eventtrack_delivery "
            "WHERE status = 'pending' AND next_attempt_at <= ?",
            now,
        )
        return int(count)

    def query(self, sql: str, *params: Any) -> list[Any]:
        with sqlite3.connect(self.database, timeout=30) as connection:
            return connection.execute(sql, params).fetchall()


@pytest.fixture
def shop(tmp_path: Path, migrated_shop: Path, sandbox: Sandbox) -> Shop:
    database = tmp_path / "shop.sqlite3"
    shutil.copyfile(migrated_shop, database)
    return Shop(database, sandbox)


def assert_clean_exit(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert "Error" not in result.stderr, result.stderr


def assert_everyone_received(shop: Shop, sandbox: Sandbox, marker: str) -> None:
    """Each vendor accepted the event marked ``n=marker``, once, and the outbox knows it."""
    for vendor in VENDORS:
        assert received(sandbox, vendor) == {marker: 1}, vendor
    assert shop.deliveries() == [(vendor, "delivered", None) for vendor in VENDORS]


def test_send_event_without_flags_reaches_every_vendor_before_exit(
    shop: Shop, sandbox: Sandbox
) -> None:
    result = shop.manage(
        "send_event",
        "order.placed",
        "--session",
        "S1",
        "--property",
        "n=cmd",
        "--property",
        "order=O1",
    )
    assert_clean_exit(result)
    assert result.stdout.splitlines() == [f"{vendor}: delivered (HTTP 200)" for vendor in VENDORS]
    assert_everyone_received(shop, sandbox, "cmd")


def test_track_in_manage_py_shell_reaches_every_vendor_before_exit(
    shop: Shop, sandbox: Sandbox
) -> None:
    code = (
        "from django_eventtrack import track; "
        "track('order.placed', {'n': 'shell', 'order': 'O1'}, session='S1')"
    )
    result = shop.manage("shell", "-c", code)
    assert_clean_exit(result)
    assert_everyone_received(shop, sandbox, "shell")


def test_asyncio_run_atrack_in_a_script_reaches_every_vendor_before_exit(
    shop: Shop, sandbox: Sandbox
) -> None:
    script = (
        "import asyncio, django\n"
        "django.setup()\n"
        "from django_eventtrack import atrack\n"
        "asyncio.run(atrack('order.placed', {'n': 'async', 'order': 'O1'}, session='S1'))\n"
    )
    shop.env["DJANGO_SETTINGS_MODULE"] = "config.settings"
    result = shop.run("-c", script)
    assert_clean_exit(result)
    assert_everyone_received(shop, sandbox, "async")


def test_send_event_with_a_worker_delivery_prints_queued_and_sends_nothing(
    shop: Shop, sandbox: Sandbox
) -> None:
    shop.env["EVENTTRACK_DELIVERY"] = "worker"
    result = shop.manage("send_event", "order.placed", "--session", "S1", "--property", "order=O1")
    assert_clean_exit(result)
    assert result.stdout.strip().endswith("queued for the 'worker' delivery")
    assert sandbox.requests() == []
    # Stored with its routes; the worker writes the deliveries when it claims.
    assert shop.routes() == [dict.fromkeys(VENDORS)]
    assert shop.deliveries() == []


def test_what_does_not_fit_in_shutdown_timeout_stays_pending_unclaimed_with_one_line(
    shop: Shop, sandbox: Sandbox
) -> None:
    """Hackle answers its first request after 1.5 s; the process may send for 0.5 s. The
    request in flight gets its answer, recorded before the process exits (abandoned, it
    would be sent again though Hackle has it); the two events behind it were never
    sent, and are given back unclaimed, due at once, not when a lease ends."""
    shop.env |= {"EVENTTRACK_SHUTDOWN_TIMEOUT": "0.5", "EVENTTRACK_CONCURRENCY": "1"}
    sandbox.inject("hackle", delay=1.5)
    code = (
        "from django_eventtrack import track\n"
        "for n in range(3):\n"
        "    track('order.placed', {'n': n, 'order': f'O{n}'}, session=f'S{n}', vendors=['hackle'])"
    )
    started = time.monotonic()
    result = shop.manage("shell", "-c", code)
    elapsed = time.monotonic() - started
    assert_clean_exit(result)
    assert elapsed < 6  # the interpreter start, then the answer in flight, no more
    statuses = shop.deliveries()
    assert [(vendor, status, token) for vendor, status, token in statuses] == [
        ("hackle", "delivered", None),
        ("hackle", "pending", None),
        ("hackle", "pending", None),
    ]
    assert shop.due_now() == 2
    [line] = [line for line in result.stderr.splitlines() if line.strip()]
    assert "2 deliveries of events tracked by this process were not sent" in line
    assert "SHUTDOWN_TIMEOUT (0.5s)" in line
    assert "manage.py eventtrack_worker" in line
    assert received(sandbox, "hackle") == {0: 1}


@contextlib.contextmanager
def runserver(shop: Shop, log: Path) -> Iterator[int]:
    """``manage.py runserver`` on a free loopback port; its port, once it listens."""
    port = free_port()
    with log.open("wb") as sink:
        process = subprocess.Popen(  # noqa: S603 - our own manage.py
            [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
            env=shop.env,
            cwd=SHOP,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(lambda: accepts_connections(port), timeout=30, what="runserver to listen")
        yield port
    finally:
        process.kill()
        process.wait(5)


def test_a_fresh_server_sends_what_another_process_left_pending_on_its_first_request(
    shop: Shop, sandbox: Sandbox, tmp_path: Path
) -> None:
    shop.env["EVENTTRACK_DELIVERY"] = "worker"  # another process, writing only
    code = (
        "from django_eventtrack import track; "
        "track('order.placed', {'n': 'left', 'order': 'O1'}, session='S1')"
    )
    assert_clean_exit(shop.manage("shell", "-c", code))
    assert shop.routes() == [dict.fromkeys(VENDORS)]  # nobody has claimed it yet
    del shop.env["EVENTTRACK_DELIVERY"]  # the server uses the default

    with runserver(shop, tmp_path / "runserver.log") as port:
        assert sandbox.requests() == []  # started, but served nothing yet
        started = time.monotonic()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as response:
            assert response.status == 200
        wait_until(
            lambda: shop.deliveries() == [(vendor, "delivered", None) for vendor in VENDORS],
            timeout=10,
            what="the server to send the row left pending",
        )
        assert time.monotonic() - started < 10
    for vendor in VENDORS:
        assert received(sandbox, vendor) == {"left": 1}, vendor

"""gunicorn on PostgreSQL: two sync workers with the default ``thread`` delivery stopped
with SIGTERM under load, on a private server whose log the test reads.

The same scenario as ``tests/test_servers.py`` runs on SQLite; on PostgreSQL the rows'
locks are what a stopping process's writes can deadlock on (the release of its claims and
the outcomes of its last requests, in opposite orders)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from django_eventtrack.sandbox import Sandbox
from tests.integration.conftest import PostgresDatabase, PrivatePostgres
from tests.processes.helpers import VENDORS
from tests.test_servers import (
    ROOT,
    SETTINGS,
    Server,
    assert_sent_once_after_a_drain,
    left_claimed,
    track_until_busy,
)


class PostgresServer(Server):
    """A server process on the PostgreSQL database at ``url``."""

    def __init__(self, url: str, sandbox: Sandbox, log: Path) -> None:
        super().__init__(Path(), sandbox, log)
        del self.env["EVENTTRACK_TEST_DATABASE"]
        self.env["EVENTTRACK_TEST_DATABASE_URL"] = self.url = url

    def query(self, sql: str, *params: Any) -> list[Any]:
        import psycopg

        with psycopg.connect(self.url) as connection:
            return connection.execute(sql.replace("?", "%s"), params).fetchall()


@pytest.fixture
def server(private_postgres: PrivatePostgres, sandbox: Sandbox, tmp_path: Path) -> PostgresServer:
    database = PostgresDatabase(private_postgres.dsn, "eventtrack_gunicorn")
    database.create()
    running = PostgresServer(database.url, sandbox, tmp_path / "server.log")
    subprocess.run(
        [sys.executable, "-m", "django", "migrate", "-v0"],
        env=running.env | {"DJANGO_SETTINGS_MODULE": SETTINGS},
        cwd=ROOT,
        check=True,
        timeout=120,
        capture_output=True,
    )
    return running


@pytest.mark.integration
def test_gunicorn_stopped_under_load_on_postgres_sends_nothing_twice(
    server: PostgresServer, sandbox: Sandbox, private_postgres: PrivatePostgres
) -> None:
    """As on SQLite (``tests/test_servers.py``), and no deadlock in the server's log."""
    server.env |= {
        "EVENTTRACK_SHUTDOWN_TIMEOUT": "1",
        "EVENTTRACK_CONCURRENCY": "2",
        "EVENTTRACK_MAX_CONCURRENCY": "2",
    }
    for vendor in VENDORS:
        sandbox.inject(vendor, delay=0.1, count=1_000_000)
    try:
        tracked = track_until_busy(server, sandbox)
        assert server.stop() == 0
    finally:
        if server.process is not None and server.process.poll() is None:
            server.process.kill()
            server.process.wait(5)
    output = server.output()
    assert "Traceback" not in output, output
    assert "deadlock detected" not in private_postgres.log()
    assert "pending" in server.statuses()
    assert left_claimed(server) == []
    assert_sent_once_after_a_drain(server, sandbox, tracked)

"""Servers and processes for the integration suites.

Servers:
- Redis: ``EVENTTRACK_TEST_REDIS_URL`` if set, else a private ``redis-server`` started
  here on 127.0.0.1 (a free port, no persistence) when the binary is on PATH.
- PostgreSQL: ``EVENTTRACK_TEST_POSTGRES`` (a DSN for a superuser, e.g.
  ``postgresql://postgres@127.0.0.1:5432/postgres``; ``.ci/run`` starts one), else a
  private server started here for the session (a free port, data in a temporary
  directory, run as ``nobody`` when the tests run as root, since PostgreSQL refuses root)
  when ``initdb``, ``pg_ctl`` and ``postgres`` are on PATH. Each test gets a fresh
  database cloned from a migrated template.

Without a server (or a package of the ``integration`` extra) a test is skipped with
the reason; with ``EVENTTRACK_TEST_REQUIRE_SERVERS=1`` (set by ``.ci/run``) it fails
instead, so CI cannot pass by skipping.

The Celery and Tasks suites run on PostgreSQL when it is available (production's
setup) and on a SQLite file otherwise. Every process started here shares that
database through ``EVENTTRACK_TEST_DATABASE_URL`` and the settings in
``tests/integration/proj``; the test reads the outcome straight from the database.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import pytest

from django_eventtrack.sandbox import Sandbox
from tests.integration.track import COMMITTED
from tests.processes.helpers import VENDORS, free_port, received, wait_until

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = "tests.integration.proj.settings"
#: Packages of the ``integration`` extra every suite here needs (the settings load them all).
PACKAGES = ("celery", "redis", "django_tasks_db")


def servers_required() -> bool:
    return os.environ.get("EVENTTRACK_TEST_REQUIRE_SERVERS", "") not in ("", "0")


def unavailable(reason: str) -> None:
    """Skip the test for ``reason``, or fail it when servers are required (CI)."""
    if servers_required():
        pytest.fail(f"{reason} (EVENTTRACK_TEST_REQUIRE_SERVERS is set)", pytrace=False)
    pytest.skip(reason)


def need_packages(*modules: str) -> None:
    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    if importlib.util.find_spec("django.tasks") is None and not importlib.util.find_spec(
        "django_tasks"
    ):
        missing.append("django_tasks")
    if missing:
        unavailable(
            f"needs {', '.join(missing)}: pip install -e '.[integration]' (tox installs it)"
        )


# --- Redis ---------------------------------------------------------------------------------


def redis_answers(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname, parts.port or 6379), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Redis URL: the given one, or a private server for this session."""
    given = os.environ.get("EVENTTRACK_TEST_REDIS_URL")
    if given:
        if not redis_answers(given):
            unavailable(f"EVENTTRACK_TEST_REDIS_URL={given} does not answer PING")
        yield given
        return
    binary = shutil.which("redis-server")
    if binary is None:
        unavailable("no Redis: install redis-server or set EVENTTRACK_TEST_REDIS_URL")
        return
    port = free_port()
    directory = tmp_path_factory.mktemp("redis")
    command = [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", ""]
    command += ["--appendonly", "no", "--dir", str(directory)]
    with (directory / "redis.log").open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
    url = f"redis://127.0.0.1:{port}/0"
    try:
        wait_until(lambda: redis_answers(url), timeout=10, what="redis-server to answer")
        yield url
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture
def redis_url(redis_server: str) -> str:
    """The broker, emptied for this test (no message from an earlier test is left)."""
    need_packages(*PACKAGES)
    import redis

    client = redis.Redis.from_url(redis_server)
    try:
        client.flushdb()
    finally:
        client.close()
    return redis_server


# --- databases -----------------------------------------------------------------------------


class Database(Protocol):
    url: str

    def query(self, sql: str) -> list[tuple[Any, ...]]: ...


def statuses(database: Database) -> Counter[str]:
    """How many deliveries have each status, counting one per vendor of the events whose
    deliveries no sender has written yet (pending, or skipped with a reason in the routes)."""
    rows = database.query("SELECT status, COUNT(*) FROM eventtrack_delivery GROUP BY status")
    counts = Counter(dict(rows))
    for (routes,) in database.query("SELECT routes FROM eventtrack_event WHERE routes IS NOT NULL"):
        decoded = json.loads(routes) if isinstance(routes, str) else routes
        counts.update("skipped" if reason else "pending" for reason in decoded.values())
    return counts


class SqliteDatabase:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.url = f"sqlite:///{path}"

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        with contextlib.closing(sqlite3.connect(self.path, timeout=30)) as connection:
            return connection.execute(sql).fetchall()


class PostgresDatabase:
    def __init__(self, server: str, name: str) -> None:
        self.server = server
        self.name = name
        self.url = urlunsplit(urlsplit(server)._replace(path=f"/{name}"))

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        import psycopg

        with psycopg.connect(self.url) as connection:
            return connection.execute(sql).fetchall()

    def admin(self, sql: str) -> None:
        """Run ``sql`` outside a transaction on the server's maintenance database."""
        import psycopg

        with psycopg.connect(self.server, autocommit=True) as connection:
            connection.execute(sql)

    def create(self, template: str | None = None) -> None:
        self.admin(
            f'CREATE DATABASE "{self.name}"' + (f' TEMPLATE "{template}"' if template else "")
        )

    def drop(self) -> None:
        self.admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


def base_environ(database_url: str) -> dict[str, str]:
    """The parent's environment minus its EVENTTRACK_* settings, pointed at ``database_url``."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("EVENTTRACK_")}
    return environ | {
        "DJANGO_SETTINGS_MODULE": SETTINGS,
        "PYTHONPATH": str(ROOT),
        "PYTHONUNBUFFERED": "1",
        "EVENTTRACK_TEST_DATABASE_URL": database_url,
    }


def migrate(database: Database) -> None:
    command = [sys.executable, "-m", "django", "migrate", "-v0", "--skip-checks"]
    subprocess.run(  # noqa: S603 (our own interpreter and module)
        command, env=base_environ(database.url), cwd=ROOT, check=True, timeout=120
    )


class PrivatePostgres:
    """A PostgreSQL 15 server of our own on 127.0.0.1, run as ``nobody`` when we are root."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.dsn = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *command: str) -> None:
        prefix = ["runuser", "-u", "nobody", "--"] if os.getuid() == 0 else []
        subprocess.run([*prefix, *command], check=True, capture_output=True, timeout=120)  # noqa: S603

    def init(self) -> None:
        data = str(self.directory / "data")
        self._run("initdb", "-D", data, "-U", "postgres", "--auth=trust", "--no-sync")

    def start(self) -> None:
        options = f"-h 127.0.0.1 -p {self.port} -k {self.directory} -c fsync=off"
        options += " -c max_connections=200"
        log = str(self.directory / "server.log")
        self._run(
            "pg_ctl", "-D", str(self.directory / "data"), "-l", log, "-w", "start", "-o", options
        )

    def crash(self) -> None:
        """Stop without a checkpoint, as a crash would: the next start replays the WAL."""
        self._run("pg_ctl", "-D", str(self.directory / "data"), "-m", "immediate", "-w", "stop")

    def log(self) -> str:
        """The server's log: its errors (a deadlock detected, for one) with their statements."""
        return (self.directory / "server.log").read_text(errors="replace")


#: What a private server needs on PATH.
POSTGRES_BINARIES = ("initdb", "pg_ctl", "postgres")


def postgres_available() -> bool:
    """A server is given, or one can be started here."""
    given = bool(os.environ.get("EVENTTRACK_TEST_POSTGRES"))
    return given or all(shutil.which(name) for name in POSTGRES_BINARIES)


@contextlib.contextmanager
def running_postgres() -> Iterator[PrivatePostgres]:
    """A private server for the block, stopped and deleted after it; skips (fails when
    servers are required) without the binaries."""
    missing = [name for name in POSTGRES_BINARIES if shutil.which(name) is None]
    if missing:
        unavailable(
            f"no PostgreSQL: {', '.join(missing)} not on PATH (install PostgreSQL's server) "
            "and EVENTTRACK_TEST_POSTGRES not set"
        )
    # Not pytest's tmp_path: the server runs as nobody, who cannot enter root's 0700 dirs.
    directory = Path(tempfile.mkdtemp(prefix="eventtrack-pg-"))
    directory.chmod(0o755)
    if os.getuid() == 0:
        shutil.chown(directory, "nobody")
    server = PrivatePostgres(directory)
    try:
        server.init()
        server.start()
        yield server
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):  # already stopped
            server.crash()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A superuser DSN: ``EVENTTRACK_TEST_POSTGRES``, else a private server for the session."""
    need_packages(*PACKAGES, "psycopg")
    dsn = os.environ.get("EVENTTRACK_TEST_POSTGRES")
    if dsn:
        yield dsn
        return
    with running_postgres() as server:
        yield server.dsn


@pytest.fixture(scope="session")
def postgres_template(postgres_server: str) -> Iterator[str]:
    """A migrated database each test clones (CREATE DATABASE ... TEMPLATE is fast)."""
    template = PostgresDatabase(postgres_server, f"eventtrack_template_{os.getpid()}")
    template.drop()
    template.create()
    try:
        migrate(template)
        yield template.name
    finally:
        template.drop()


@pytest.fixture
def postgres(postgres_server: str, postgres_template: str) -> Iterator[PostgresDatabase]:
    """A fresh, migrated PostgreSQL database for this test, dropped afterwards."""
    database = PostgresDatabase(postgres_server, f"eventtrack_{uuid.uuid4().hex[:12]}")
    database.create(template=postgres_template)
    try:
        yield database
    finally:
        database.drop()


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    """A private server for this test (one it may stop, crash, and read the log of)."""
    need_packages(*PACKAGES, "psycopg")
    with running_postgres() as server:
        yield server


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    need_packages(*PACKAGES)
    template = SqliteDatabase(tmp_path_factory.mktemp("outbox") / "template.sqlite3")
    migrate(template)
    return template.path


@pytest.fixture
def outbox_database(request: pytest.FixtureRequest, tmp_path: Path) -> Database:
    """PostgreSQL when a server is given or can be started (as in production), else a
    SQLite file."""
    if postgres_available():
        database: Database = request.getfixturevalue("postgres")
        return database
    path = tmp_path / "outbox.sqlite3"
    shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
    return SqliteDatabase(path)


# --- processes -----------------------------------------------------------------------------


class Processes:
    """The processes of one test, each in its own session (so a kill takes its children),
    logging to a file; whatever is still running at the end is killed."""

    def __init__(self, database: Database, sandbox: Sandbox, logs: Path) -> None:
        self.logs = logs
        self.started: dict[subprocess.Popen[bytes], Path] = {}
        self.env = base_environ(database.url) | sandbox.env() | {"EVENTTRACK_POLL_INTERVAL": "0.1"}

    def run(self, *args: str, timeout: float = 120, **env: str) -> str:
        """Run ``python ARGS`` to completion; its output, or a failure showing it."""
        result = subprocess.run(  # noqa: S603 (our own interpreter and modules)
            [sys.executable, *args],
            env=self.env | env,
            cwd=ROOT,
            timeout=timeout,
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout + result.stderr

    def start(self, name: str, *args: str, **env: str) -> subprocess.Popen[bytes]:
        """Start ``python ARGS`` in the background."""
        log = self.logs / f"{name}.log"
        with log.open("wb") as sink:
            process = subprocess.Popen(  # noqa: S603 (our own interpreter and modules)
                [sys.executable, *args],
                env=self.env | env,
                cwd=ROOT,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.started[process] = log
        return process

    def output(self, process: subprocess.Popen[bytes]) -> str:
        return self.started[process].read_text(errors="replace")

    def wait_output(self, process: subprocess.Popen[bytes], text: str, timeout: float = 30) -> None:
        wait_until(
            lambda: text in self.output(process) or process.poll() is not None,
            timeout=timeout,
            what=f"{text!r} in the process's output",
        )
        assert process.poll() is None, self.output(process)

    def kill(self, process: subprocess.Popen[bytes]) -> None:
        """SIGKILL the process and everything it started (a machine or container dying)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)

    def stop(self, process: subprocess.Popen[bytes], timeout: float = 20) -> int:
        """SIGTERM to the process (a graceful stop; it stops its own children), then wait."""
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill(process)
            raise

    def kill_all(self) -> None:
        for process in self.started:
            if process.poll() is None:
                self.kill(process)
            # Children of a worker that exited on its own (a pool) go too.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)


@pytest.fixture
def processes(outbox_database: Database, sandbox: Sandbox, tmp_path: Path) -> Iterator[Processes]:
    group = Processes(outbox_database, sandbox, tmp_path)
    try:
        yield group
    finally:
        group.kill_all()


def deliver_scenario(
    processes: Processes, database: Database, sandbox: Sandbox
) -> tuple[float, float]:
    """Track the shared scenario and wait until it is delivered; checks that every
    committed event reached every vendor exactly once and that the rolled-back ones
    were never stored. Returns (seconds tracking, seconds until all delivered)."""
    started = time.monotonic()
    tracking = track_scenario(processes)
    expected = {"delivered": len(COMMITTED) * len(VENDORS)}
    wait_until(
        lambda: statuses(database) == expected,
        timeout=60,
        what="every delivery to be delivered",
    )
    elapsed = time.monotonic() - started
    for vendor in VENDORS:
        assert received(sandbox, vendor) == dict.fromkeys(COMMITTED, 1), vendor
    assert database.query("SELECT COUNT(*) FROM eventtrack_event") == [(len(COMMITTED),)]
    return tracking, elapsed


#: Seconds after a worker was killed by which a fresh worker (or the sweep) has delivered
#: everything, with the default leases.
RECOVERY = 30.0


def small_claims_and_slow_vendors(processes: Processes, sandbox: Sandbox) -> None:
    """Claims small and vendors slow enough that a kill lands mid-run; the leases and the
    vendors' timeouts are the defaults."""
    processes.env |= {"EVENTTRACK_BATCH_SIZE": "4", "EVENTTRACK_CONCURRENCY": "2"}
    for vendor in VENDORS:
        sandbox.inject(vendor, delay=0.05, count=10_000)


def duplicates_of_committed(sandbox: Sandbox) -> int:
    """Extra copies the vendors received; fails if a committed event is missing anywhere."""
    duplicates = 0
    for vendor in VENDORS:
        counts = received(sandbox, vendor)
        assert set(counts) == set(COMMITTED), vendor
        duplicates += sum(count - 1 for count in counts.values())
    return duplicates


def track_scenario(processes: Processes) -> float:
    """Track the shared scenario (``track.py``) through the configured backend; seconds."""
    started = time.monotonic()
    processes.run("-m", "tests.integration.track", "scenario")
    return time.monotonic() - started


@pytest.fixture
def on_postgres(
    postgres: PostgresDatabase, sandbox: Sandbox, tmp_path: Path
) -> Iterator[Processes]:
    """The processes of one test, on a fresh PostgreSQL database and the sandbox."""
    group = Processes(postgres, sandbox, tmp_path)
    try:
        yield group
    finally:
        group.kill_all()

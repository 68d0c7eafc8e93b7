"""PostgreSQL as the outbox: four ``eventtrack_worker`` processes claim with
``SELECT ... FOR UPDATE SKIP LOCKED`` and deliver 5,000 deliveries with no duplicate and
no miss, checked against what the vendor sandbox recorded."""

from __future__ import annotations

import json
import os
import time

import pytest

from django_eventtrack.sandbox import Sandbox
from tests.integration.conftest import (
    PostgresDatabase,
    Processes,
    need_packages,
    running_postgres,
    statuses,
)
from tests.processes.helpers import VENDORS, received, wait_until

EVENTS = 1250
DELIVERIES = EVENTS * len(VENDORS)


#: Run in a worker's environment (DELIVERY="worker"): track one event, print the SQL that
#: claims its Hackle delivery.
CLAIM_SQL = """
import datetime, django
django.setup()
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_eventtrack import track
from django_eventtrack.outbox import leases
track("order.placed", {"n": 0, "order": "O0"}, session="S0")
with CaptureQueriesContext(connection) as queries:
    leases.claim_due_deliveries("hackle", 10, datetime.timedelta(seconds=60))
print(connection.vendor, *(query["sql"] for query in queries), sep="\\n")
"""


#: Run with DELIVERY="worker": track the process's first event, then one in autocommit and
#: one inside a transaction, print how many statements each took, then how the rows of the
#: last two (and the deliveries a sender writes from their routes) differ from the ORM's.
TRACK_SQL = """
import django
django.setup()
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django_eventtrack import track
from tests.processes.helpers import rows_unlike_the_orms
with CaptureQueriesContext(connection) as process_first:
    track("order.placed", {"n": -1, "order": "O-1"}, session="S-1")
with CaptureQueriesContext(connection) as alone:
    first = track("order.placed", {"n": 0, "order": "O0"}, session="S0")
with transaction.atomic(), CaptureQueriesContext(connection) as inside:
    second = track("order.placed", {"n": 1, "order": "O1"}, session="S1")
print(len(process_first), len(alone), len(inside))
print(rows_unlike_the_orms(first.id), rows_unlike_the_orms(second.id))
"""


#: Run with DELIVERY="worker": two people sign in one after the other on one browser and
#: shop; one drain sends everything. Prints, per person, the PrimeData sessions their events
#: went under and the profiles their Hellotext events named, then the SQL of a claim made
#: while an identify was pending.
SHARED_BROWSER = """
import datetime, json, django
django.setup()
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_eventtrack import identify, track
from django_eventtrack.core.event import Identity
from django_eventtrack.delivery.sender import drain
from django_eventtrack.outbox import leases
browser = Identity(session="shared-hello-session", anonymous_id="a" * 32)
for user in ("ADA1", "BOB2"):
    identify(user_id=user, traits={"email": f"{user}@example.com"}, identity=browser)
    track("order.placed", {"order": f"O-{user}"}, identity=browser, user_id=user)
with CaptureQueriesContext(connection) as queries:
    leases.claim_due_deliveries("hackle", 10, datetime.timedelta(seconds=60))
long_ago = datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC)
leases.Delivery.objects.update(claim_token=None, next_attempt_at=long_ago)
drain()
print("CLAIMS", json.dumps([query["sql"] for query in queries]))
"""


#: Run with DELIVERY="worker": one thread records the outcomes of a claim's two requests,
#: the later request's row first, and stops after its first statement until a second
#: thread, giving the claim back, waits for a row lock; then both go on. Prints what
#: either thread's database refused (a deadlock, if they took the rows in opposite
#: orders), then the rows' statuses.
LOCK_ORDER_SQL = """
import datetime, threading, django
django.setup()
from django.db import DatabaseError, connection
from django_eventtrack import track
from django_eventtrack.conf import get_config
from django_eventtrack.models import Delivery
from django_eventtrack.outbox import leases, outcomes
from django_eventtrack.vendors import Outcome, OutcomeKind
for n in range(2):
    track("order.placed", {"n": n, "order": f"O{n}"}, session=f"S{n}", vendors=["hackle"])
claim = leases.claim_due_deliveries("hackle", 10, datetime.timedelta(seconds=60))
first, second = sorted(claim.deliveries, key=lambda delivery: delivery.pk)
config = get_config()
delivered = Outcome(OutcomeKind.DELIVERED, 200)
started, waiting = threading.Event(), threading.Event()
refused = []

def pause_after_the_first_statement(execute, sql, params, many, context):
    result = execute(sql, params, many, context)
    if not started.is_set():
        started.set()
        waiting.wait(10)
    return result

def record():
    results = [
        outcomes.Result(claim, [delivery], delivered, config.vendors["hackle"])
        for delivery in (second, first)
    ]
    try:
        with connection.execute_wrapper(pause_after_the_first_statement):
            outcomes.record_results(results, config.options)
    except DatabaseError as exc:
        refused.append(str(exc).splitlines()[0])
    finally:
        connection.close()

def give_back():
    started.wait(10)
    try:
        leases.release(claim, [first, second])
    except DatabaseError as exc:
        refused.append(str(exc).splitlines()[0])
    finally:
        connection.close()

threads = [threading.Thread(target=record), threading.Thread(target=give_back)]
for thread in threads:
    thread.start()
started.wait(10)
for _ in range(500):
    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM pg_locks WHERE NOT granted")
        if cursor.fetchone()[0]:
            break
    threading.Event().wait(0.01)
waiting.set()
for thread in threads:
    thread.join(20)
print(refused)
print(sorted(Delivery.objects.values_list("status", flat=True)))
"""


def worker_delivered(output: str) -> int:
    """What a worker's "worker stopped" line says it delivered."""
    line = next(line for line in output.splitlines() if "worker stopped" in line)
    return int(line.split("delivered ", 1)[1].split(",", 1)[0])


@pytest.mark.integration
def test_claims_on_postgresql_skip_locked_rows(on_postgres: Processes) -> None:
    output = on_postgres.run("-c", CLAIM_SQL, EVENTTRACK_DELIVERY="worker")
    vendor, *queries = output.splitlines()
    assert vendor == "postgresql"
    # The deliveries' rows only: their events are read (for their size, and by a claim
    # waiting for an identify) but not locked.
    locking = 'FOR UPDATE OF "eventtrack_delivery" SKIP LOCKED'
    assert any(query.endswith(locking) for query in queries), queries


@pytest.mark.integration
def test_writers_of_a_claim_s_rows_lock_them_in_one_order(on_postgres: Processes) -> None:
    """The outcomes of a claim's requests and a give-back of the same claim, at once (a
    process stopping while its sender records): they lock the rows by primary key, so
    the second waits for the first, where they deadlocked when each took its own order."""
    output = on_postgres.run("-c", LOCK_ORDER_SQL, EVENTTRACK_DELIVERY="worker")
    refused, statuses = output.splitlines()[-2:]
    assert refused == "[]"
    assert statuses == "['delivered', 'delivered']"


@pytest.mark.integration
def test_track_on_postgresql_is_one_statement_writing_what_the_orm_would(
    on_postgres: Processes,
) -> None:
    """One round trip, one row, atomic by itself (BEGIN, two INSERTs and COMMIT before).
    A process's first also looks for the privacy check's function (two statements, once:
    ``outbox.inserts``)."""
    output = on_postgres.run("-c", TRACK_SQL, EVENTTRACK_DELIVERY="worker")
    counts, differences = output.splitlines()[-2:]
    assert counts == "2 1 1"
    assert differences == "{} {}"


@pytest.mark.integration
def test_four_workers_deliver_5000_deliveries_exactly_once(
    on_postgres: Processes, postgres: PostgresDatabase, sandbox: Sandbox
) -> None:
    processes = on_postgres
    workers = [
        processes.start(f"worker-{number}", "-m", "django", "eventtrack_worker", "-v", "1")
        for number in range(4)
    ]
    for process in workers:
        processes.wait_output(process, "worker started")

    started = time.monotonic()
    # Committed 50 to a transaction while all four workers poll: they race for every batch.
    processes.run(
        *("-m", "tests.integration.track", "0", str(EVENTS), "--per-transaction", "50"),
        EVENTTRACK_DELIVERY="worker",
    )
    wait_until(
        lambda: statuses(postgres) == {"delivered": DELIVERIES},
        timeout=120,
        what=f"all {DELIVERIES} deliveries",
    )
    elapsed = time.monotonic() - started
    for process in workers:
        assert processes.stop(process) == 0, processes.output(process)

    for vendor in VENDORS:
        assert received(sandbox, vendor) == dict.fromkeys(range(EVENTS), 1), vendor
    shares = [worker_delivered(processes.output(process)) for process in workers]
    assert sum(shares) == DELIVERIES, shares
    assert sum(1 for share in shares if share) >= 2, f"no concurrency to speak of: {shares}"
    print(
        f"postgres: {EVENTS} events x {len(VENDORS)} vendors = {DELIVERIES} deliveries by 4 "
        f"workers {shares}, 0 duplicates, 0 missing, {elapsed:.1f}s from first commit"
    )


@pytest.mark.integration
def test_on_postgresql_a_users_identify_goes_first_and_a_shared_browser_is_not_shared(
    on_postgres: Processes, postgres: PostgresDatabase, sandbox: Sandbox
) -> None:
    output = on_postgres.run("-c", SHARED_BROWSER, EVENTTRACK_DELIVERY="worker")
    (line,) = [line for line in output.splitlines() if line.startswith("CLAIMS ")]
    claims = json.loads(line.removeprefix("CLAIMS "))
    # The claim skipped the events waiting for their identify, locking the deliveries only.
    (claim,) = [sql for sql in claims if "SKIP LOCKED" in sql]
    assert claim.endswith('FOR UPDATE OF "eventtrack_delivery" SKIP LOCKED')
    assert "NOT EXISTS" in claim
    assert statuses(postgres) == {"delivered": 4 * len(VENDORS)}
    sessions: dict[str, set[str]] = {"ADA1": set(), "BOB2": set()}
    for request in sandbox.requests("primedata"):
        for event in request.body["events"]:
            user = next(u for u in sessions if u in json.dumps(event))
            sessions[user].add(event["sessionId"])
    assert "shared-hello-session" in sessions["ADA1"]
    assert not sessions["ADA1"] & sessions["BOB2"]
    placed = [r.body for r in sandbox.requests("hellotext") if r.path.endswith("/events")]
    assert len({body["profile"] for body in placed}) == 2  # each order names its own profile
    assert [body.get("session") for body in placed if "O-BOB2" in json.dumps(body)] == [None]


#: Run with DELIVERY="worker": forget one user and withdraw another's marketing consent with
#: events waiting, then drain; print what became of each.
PRIVACY_SQL = """
import json, django
django.setup()
from django_eventtrack import forget, track, withdraw_consent
from django_eventtrack.delivery import sender
from django_eventtrack.models import Delivery, Event
forgotten = track("order.placed", {"n": 0, "order": "O0"}, user_id="U-f", session="S0")
withdrew = track("order.placed", {"n": 1, "order": "O1"}, user_id="U-w", session="S1")
forget(user_id="U-f")
withdraw_consent(["marketing"], user_id="U-w")
later = track("order.placed", {"n": 2, "order": "O2"}, user_id="U-f", session="S2")
sender.drain()
def outcome(event):
    rows = Delivery.objects.filter(event_id=event.id).values_list("vendor", "status", "last_error")
    return {vendor: [status, reason] for vendor, status, reason in rows}
print(json.dumps({
    "later": later is None,
    "forgotten": outcome(forgotten),
    "scrubbed": Event.objects.filter(pk=forgotten.id, properties={}, identity={}).exists(),
    "withdrew": outcome(withdrew),
}))
"""


@pytest.mark.integration
def test_forget_and_withdraw_on_postgresql(on_postgres: Processes, sandbox: Sandbox) -> None:
    """track()'s check in its INSERT, the erasure's and the withdrawal's writes on PostgreSQL."""
    output = on_postgres.run("-c", PRIVACY_SQL, EVENTTRACK_DELIVERY="worker")
    report = json.loads(output.strip().splitlines()[-1])
    assert report["later"] is True
    assert report["scrubbed"] is True
    assert {status for status, _ in report["forgotten"].values()} == {"skipped"}
    assert {reason for _, reason in report["forgotten"].values()} == {"erased"}
    assert report["withdrew"]["hackle"] == ["delivered", ""]
    assert report["withdrew"]["browsee"] == ["delivered", ""]
    assert report["withdrew"]["hellotext"] == ["skipped", "consent withdrawn for marketing"]
    assert report["withdrew"]["primedata"] == ["skipped", "consent withdrawn for marketing"]
    assert not [r for r in sandbox.requests() if "U-f" in r.raw]


#: Run with DELIVERY="worker": track one wishlist.added for PrimeData, drain, print each of
#: this process's deliveries' status and its reason.
DROPPED_TYPE = """
import sys, django
django.setup()
from django_eventtrack import track
from django_eventtrack.delivery.sender import drain
from django_eventtrack.models import Delivery
event = track("wishlist.added", {"n": int(sys.argv[1])}, session="S0", vendors=["primedata"])
drain(["primedata"])
delivery = Delivery.objects.get(event_id=event.id)
print("delivery", delivery.status, delivery.last_error, sep="|")
"""


def delivered(output: str) -> tuple[str, str]:
    """The status and reason :data:`DROPPED_TYPE` printed."""
    line = next(line for line in output.splitlines() if line.startswith("delivery|"))
    _, status, reason = line.split("|", 2)
    return status, reason


@pytest.mark.integration
def test_a_type_primedata_drops_is_skipped_by_every_process_on_postgresql(
    on_postgres: Processes, sandbox: Sandbox
) -> None:
    """One process learns PrimeData has no schema for a type; another, later, skips that
    type's events with the same reason instead of sending them to be dropped."""
    sandbox.state("primedata").any_type = False
    sandbox.state("primedata").register("order.placed")
    status, reason = delivered(
        on_postgres.run("-c", DROPPED_TYPE, "1", EVENTTRACK_DELIVERY="worker")
    )
    assert status == "failed"
    assert "no schema registered for 'wishlist.added'" in reason
    status, reason = delivered(
        on_postgres.run("-c", DROPPED_TYPE, "2", EVENTTRACK_DELIVERY="worker")
    )
    assert status == "skipped"
    assert reason.startswith("not sent: PrimeData dropped the 'wishlist.added' events")
    assert len(sandbox.requests("primedata")) == 1


@pytest.mark.integration
def test_without_a_dsn_the_suite_starts_a_server_of_its_own() -> None:
    """What plain ``tox`` meets on a machine with PostgreSQL installed and nothing running:
    the binaries on PATH are enough (as root, the server runs as nobody)."""
    need_packages("psycopg")
    import psycopg

    with running_postgres() as server:
        assert "EVENTTRACK_TEST_POSTGRES" not in server.dsn
        with psycopg.connect(server.dsn) as connection:
            (version,) = connection.execute("SHOW server_version_num").fetchone() or (0,)
        assert int(version) >= 150000
        if os.getuid() == 0:  # PostgreSQL refuses root: its files are nobody's
            assert (server.directory / "data").owner() == "nobody"

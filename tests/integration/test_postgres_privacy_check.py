"""On PostgreSQL, ``track()`` checks an event's ids against the privacy state with a
function (migration ``0011``), planned once per session, in the statement that stores
the event: what another session's ``forget()`` commits is seen at once, what it has not
committed yet is not; and a database without the function (``--nomigrations``) checks
with a subquery instead, never failing for it."""

from __future__ import annotations

import json

import pytest

from tests.integration.conftest import Processes

#: Prints one JSON line per case.
CHECKING = """
import json, threading, django
django.setup()
from django.db import connection, connections, transaction
from django.test.utils import CaptureQueriesContext
from django_eventtrack import forget, track, unforget

def elsewhere(call):
    # In a session of its own (another thread, another connection), committed on return.
    def run():
        try:
            call()
        finally:
            connections.close_all()
    thread = threading.Thread(target=run)
    thread.start()
    thread.join(30)

def stored(user, order):
    return track("order.placed", {"order": order}, user_id=user, session="S-" + user) is not None

def report(**facts):
    print(json.dumps(facts))

# 1. One statement calling the function; another session's forget() is seen at once.
stored("U0", "O0")
with CaptureQueriesContext(connection) as queries:
    first = stored("U1", "O1")
elsewhere(lambda: forget(user_id="U1"))
report(
    statements=len(queries),
    by_function="eventtrack_privacy_state(ARRAY[" in queries[0]["sql"],
    subquery="eventtrack_privacy_subject" in queries[0]["sql"],
    first=first,
    after_forget=stored("U1", "O2"),
)

# 2. A forget() not committed yet: tracked meanwhile (it may be), not after its commit.
holding, release = threading.Event(), threading.Event()
def forget_slowly():
    with transaction.atomic():
        forget(user_id="U3")
        holding.set()
        release.wait(30)
thread = threading.Thread(target=lambda: (forget_slowly(), connections.close_all()))
thread.start()
holding.wait(30)
during = stored("U3", "O6")
release.set()
thread.join(30)
report(during=during, after_commit=stored("U3", "O7"))

# 3. This transaction's own unforget(), rolled back: seen inside it, gone after.
elsewhere(lambda: forget(user_id="U2"))
try:
    with transaction.atomic():
        unforget(user_id="U2")
        inside = stored("U2", "O4")
        raise RuntimeError("the order failed")
except RuntimeError:
    pass
report(inside=inside, after_rollback=stored("U2", "O5"))
"""


@pytest.mark.integration
def test_the_privacy_check_on_postgresql(on_postgres: Processes) -> None:
    output = on_postgres.run("-c", CHECKING, EVENTTRACK_DELIVERY="worker")
    function, uncommitted, rolled_back = (
        json.loads(line) for line in output.strip().splitlines()[-3:]
    )
    assert function == {
        "statements": 1,
        "by_function": True,
        "subquery": False,
        "first": True,
        "after_forget": False,
    }
    assert uncommitted == {"during": True, "after_commit": False}
    assert rolled_back == {"inside": True, "after_rollback": False}


#: A database without the function (``--nomigrations`` runs no migration's SQL).
WITHOUT_FUNCTION = """
import json, django
django.setup()
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django_eventtrack import forget, track

with connection.cursor() as cursor:
    cursor.execute("DROP FUNCTION eventtrack_privacy_state(text[])")

def stored(user, order):
    return track("order.placed", {"order": order}, user_id=user, session="S-" + user) is not None

with transaction.atomic(), CaptureQueriesContext(connection) as queries:
    first, second = stored("U5", "O9"), stored("U5", "O10")
forget(user_id="U5")
print(json.dumps({
    "first": first, "second": second, "after_forget": stored("U5", "O11"),
    "statements": len(queries),
    "subquery": "eventtrack_privacy_subject" in queries[-1]["sql"],
}))
"""


@pytest.mark.integration
def test_track_needs_no_function_on_postgresql(on_postgres: Processes) -> None:
    output = on_postgres.run("-c", WITHOUT_FUNCTION, EVENTTRACK_DELIVERY="worker")
    assert json.loads(output.strip().splitlines()[-1]) == {
        "first": True,
        "second": True,
        "after_forget": False,
        "statements": 3,  # the function looked for once, then one INSERT each
        "subquery": True,
    }

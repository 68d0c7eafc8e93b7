"""On PostgreSQL, ``track()`` checks an id it knows to have no privacy state against the
generation alone (``outbox.known_subjects``): what another session's ``forget()``
commits, a transaction's own change rolled back, a change still uncommitted, and a
transaction that does not read committed data all keep it from storing what it must
not, and from learning what it cannot know."""

from __future__ import annotations

import json

import pytest

from tests.integration.conftest import Processes

#: Each case prints one JSON line: how ``track()`` fared, and what the process knew.
KNOWING = """
import json, threading, django
django.setup()
from django.db import connection, connections, transaction
from django.test.utils import CaptureQueriesContext
from django_eventtrack import forget, track, unforget
from django_eventtrack.core import subject_keys
from django_eventtrack.outbox import known_subjects

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

def known(user):
    clean = known_subjects._known.get("default")
    return bool(clean) and subject_keys.digest("user_id", user) in clean.clean

def report(**facts):
    print(json.dumps(facts))

# 1. Learnt from a full check, then checked against the generation alone; another
#    session's forget() advances it, and the next track() stores nothing.
stored("U1", "O1")
with CaptureQueriesContext(connection) as second:
    stored("U1", "O2")
elsewhere(lambda: forget(user_id="U1"))
report(
    statements=len(second),
    looked_up="eventtrack_privacy_subject" in second[0]["sql"],
    after_forget=stored("U1", "O3"),
)

# 2. This transaction's unforget(), rolled back, teaches nothing (the generation taken
#    in it, after its own change, neither).
elsewhere(lambda: forget(user_id="U2"))
known_subjects.reset()
try:
    with transaction.atomic():
        unforget(user_id="U2")
        inside = stored("U2", "O4")
        raise RuntimeError("the order failed")
except RuntimeError:
    pass
report(inside=inside, after_rollback=stored("U2", "O5"), known=known("U2"))

# 3. A forget() not committed yet: tracked meanwhile (it may be), not learnt from.
holding, release = threading.Event(), threading.Event()
def forget_slowly():
    with transaction.atomic():
        forget(user_id="U3")
        holding.set()
        release.wait(30)
known_subjects.reset()
thread = threading.Thread(target=lambda: (forget_slowly(), connections.close_all()))
thread.start()
holding.wait(30)
during = stored("U3", "O6")
release.set()
thread.join(30)
report(during=during, after_commit=stored("U3", "O7"))

# 4. A transaction reading a snapshot of its own (REPEATABLE READ) teaches nothing.
with transaction.atomic():
    with connection.cursor() as cursor:
        cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
    repeatable = stored("U4", "O8")
report(repeatable=repeatable, known=known("U4"))
"""


@pytest.mark.integration
def test_what_track_knows_of_privacy_state_on_postgresql(on_postgres: Processes) -> None:
    output = on_postgres.run("-c", KNOWING, EVENTTRACK_DELIVERY="worker")
    learnt, rolled_back, uncommitted, repeatable = (
        json.loads(line) for line in output.strip().splitlines()[-4:]
    )
    assert learnt == {"statements": 1, "looked_up": False, "after_forget": False}
    assert rolled_back == {"inside": True, "after_rollback": False, "known": False}
    assert uncommitted == {"during": True, "after_commit": False}
    assert repeatable == {"repeatable": True, "known": False}


#: A database without the generation's sequence and trigger (``--nomigrations`` runs no
#: migration's SQL): track() makes the full check every time, and never fails for it.
WITHOUT_GENERATION = """
import json, django
django.setup()
from django.db import connection, transaction
from django_eventtrack import forget, track
from django_eventtrack.outbox import known_subjects

with connection.cursor() as cursor:
    cursor.execute("DROP TRIGGER eventtrack_privacy_changed ON eventtrack_privacy_subject")
    cursor.execute("DROP FUNCTION eventtrack_privacy_changed()")
    cursor.execute("DROP SEQUENCE eventtrack_privacy_generation")
known_subjects.reset()

def stored(user, order):
    return track("order.placed", {"order": order}, user_id=user, session="S-" + user) is not None

with transaction.atomic():
    first, second = stored("U5", "O9"), stored("U5", "O10")
forget(user_id="U5")
print(json.dumps({
    "first": first, "second": second, "after_forget": stored("U5", "O11"),
    "known": dict(known_subjects._known),
}))
"""


@pytest.mark.integration
def test_track_needs_no_generation_on_postgresql(on_postgres: Processes) -> None:
    output = on_postgres.run("-c", WITHOUT_GENERATION, EVENTTRACK_DELIVERY="worker")
    assert json.loads(output.strip().splitlines()[-1]) == {
        "first": True,
        "second": True,
        "after_forget": False,
        "known": {},
    }

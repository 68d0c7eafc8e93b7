"""Track events from a web-like process that rides out a database restart.

``python -m tests.integration.resilient_track COUNT PER_TRANSACTION`` tracks events
``0 .. COUNT-1`` (``{"n": n}``, profile ``P<n>``), ``PER_TRANSACTION`` to a committed
transaction. A transaction the database drops (restarted server) is retried on a new
connection; each retry first looks whether its first event is already stored, so a
commit whose answer was lost is not tracked twice. Prints how many transactions
had to be retried.
"""

from __future__ import annotations

import sys
import time

import django
from django.db import DatabaseError, connections, transaction

from django_eventtrack.errors import StorageError

#: Attempts per transaction, 0.25 s apart: the database may be down for a few seconds.
ATTEMPTS = 120


def track_batch(numbers: range) -> None:
    from django_eventtrack import track
    from django_eventtrack.models import Event

    with transaction.atomic():
        if Event.objects.filter(properties__n=numbers[0]).exists():
            return  # committed before the connection broke
        for n in numbers:
            track("order.placed", {"n": n, "order": f"O{n}"}, session=f"S{n}")


def main(count: int, per_transaction: int) -> None:
    django.setup()
    retried = 0
    for start in range(0, count, per_transaction):
        numbers = range(start, min(start + per_transaction, count))
        for _ in range(ATTEMPTS):
            try:
                track_batch(numbers)
                break
            except (DatabaseError, StorageError):  # track() names the event in StorageError
                retried += 1
                connections.close_all()
                time.sleep(0.25)
        else:
            raise SystemExit(f"events {numbers[0]}..{numbers[-1]}: the database never came back")
    print(f"tracked {count} events; {retried} transaction attempts retried")


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))

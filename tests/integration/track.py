"""Track events from a separate process, as a web process would.

``python -m tests.integration.track FIRST COUNT [--per-transaction K]`` tracks events
``FIRST .. FIRST+COUNT-1``, ``K`` per committed transaction; ``python -m
tests.integration.track scenario`` tracks :data:`COMMITTED` and :data:`ROLLED_BACK`
(the engines' shared scenario). Event ``n`` carries ``{"n": n}`` and profile
``P<n>``, so the sandbox tells which events arrived. The backend is whatever
``EVENTTRACK_DELIVERY`` says. Prints how long the tracking took.
"""

from __future__ import annotations

import argparse
import time

import django
from django.db import transaction

#: Committed: 100 events in a transaction each, then 2 transactions of 10.
COMMITTED = range(120)
#: Tracked in one transaction that rolls back: never stored, never sent.
ROLLED_BACK = range(120, 130)


class Rollback(Exception):
    """Raised to roll the transaction back."""


def track_committed(numbers: range, per_transaction: int = 1) -> None:
    from django_eventtrack import track

    for start in range(0, len(numbers), per_transaction):
        with transaction.atomic():
            for n in numbers[start : start + per_transaction]:
                track("order.placed", {"n": n, "order": f"O{n}"}, session=f"S{n}")


def track_rolled_back(numbers: range) -> None:
    from django_eventtrack import track

    try:
        with transaction.atomic():
            for n in numbers:
                track("order.placed", {"n": n, "order": f"O{n}"}, session=f"S{n}")
            raise Rollback
    except Rollback:
        pass


def scenario() -> None:
    track_committed(COMMITTED[:100])
    track_committed(COMMITTED[100:], per_transaction=10)
    track_rolled_back(ROLLED_BACK)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("first", help="the first event's n, or 'scenario'")
    parser.add_argument("count", type=int, nargs="?", default=0)
    parser.add_argument("--per-transaction", type=int, default=1)
    args = parser.parse_args()
    django.setup()
    started = time.monotonic()
    if args.first == "scenario":
        scenario()
    else:
        first = int(args.first)
        track_committed(range(first, first + args.count), args.per_transaction)
    print(f"tracked in {time.monotonic() - started:.2f}s")


if __name__ == "__main__":
    main()

"""``python -m tests.processes.seed COUNT``: track COUNT events in one transaction.

Event ``n`` (0..COUNT-1) carries ``{"n": n}``, order ``O<n>`` and Hellotext session ``S<n>``, so the
tests can tell at the sandbox which event each vendor request carried.
Run with ``EVENTTRACK_DELIVERY=worker``: it only writes the outbox.
"""

from __future__ import annotations

import sys

import django
from django.db import transaction


def main(count: int) -> None:
    django.setup()
    from django_eventtrack import track

    with transaction.atomic():
        for n in range(count):
            track("order.placed", {"n": n, "order": f"O{n}"}, session=f"S{n}")


if __name__ == "__main__":
    main(int(sys.argv[1]))

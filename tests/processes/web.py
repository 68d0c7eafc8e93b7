"""``python -m tests.processes.web RUN START COUNT``: a web process tracking events.

Tracks events ``START..COUNT-1`` one per transaction, as views would, with the
``thread`` backend sending them in the background. Event ``n`` carries
``{"n": n, "run": RUN}`` (``RUN`` numbers this process's incarnation, so a copy a
vendor received can be matched to the row that was committed), order ``O<n>``
and Hellotext session ``S<n>``. The fault tests kill it with SIGKILL at random points and start it
again from the first ``n`` not yet in the database.
"""

from __future__ import annotations

import sys
import threading

import django

#: Seconds between two events: spreads a run over a few seconds, so kills land anywhere.
PACE = 0.004


def main(run: int, start: int, count: int) -> None:
    django.setup()
    from django_eventtrack import track

    pause = threading.Event()
    for n in range(start, count):
        track("order.placed", {"n": n, "run": run, "order": f"O{n}"}, session=f"S{n}")
        pause.wait(PACE)
    print("web done", flush=True)


if __name__ == "__main__":
    main(*(int(arg) for arg in sys.argv[1:4]))

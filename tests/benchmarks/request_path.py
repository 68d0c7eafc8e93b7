"""Benchmark 1: what ``track()`` costs the caller, per call.

Two ways to call it: many calls inside one transaction (a view that tracks in
its own transaction; the commit is not timed), and each call with its commit
(autocommit, as in a view without ``ATOMIC_REQUESTS``; the commit is timed).
Two visitors: a user with a Hellotext session (nothing to look up; a new session
each call), and a user id only, whose remembered Hellotext profile ``track()`` looks up.

Against (a) a plain ORM insert of one comparable row (the same event, as one
``Event`` row: what a hand-rolled "log it to a table" costs), called the same
way, and, inside a transaction, (b) segment-analytics-python's ``track()``, an
in-memory queue with no durability, its consumer thread posting to a local
sink (never the internet).

The same call with a tracking plan of 50 events in force (``EVENTTRACK["PLAN"]``,
``tests.benchmarks.plan_fixture``), against the call without one: what checking
an event against the plan costs ``track()``.

Four vendors are configured and ``DELIVERY="worker"``: the web process only
writes rows, which is exactly what the request path pays with any backend
(the ``thread`` backend adds one ``Event.set()`` after commit). The variants
run interleaved in rounds, so drift on a noisy machine hits them alike.
"""

from __future__ import annotations

import http.server
import json
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

from tests.benchmarks.common import (
    VENDORS,
    child_parser,
    database_description,
    distribution,
    profiled,
    ratio,
    setup_django,
    write_result,
)
from tests.benchmarks.plan_fixture import EVENT, plan_data

PROPERTIES = {"product": "SKU-1042", "amount": 19.99, "currency": "USD", "quantity": 2}
USER_ID = "1042"
SESSION = "hs-7f3a9c1e5b2d4e8f"
SESSION_VARIANT = "track(), user id + session (4 vendors)"
USER_ID_VARIANT = "track(), user id only: remembered-profile lookup (4 vendors)"
ORM_VARIANT = "plain ORM insert (1 row)"
SEGMENT_VARIANT = "segment analytics.track()"
PLAN_VARIANT = "track(), user id + session, with a 50-event tracking plan (4 vendors)"
UNCHECKED_VARIANT = "track(), user id + session, its privacy check left out (4 vendors)"
#: The variants measured both ways; segment's (no database) only inside a transaction.
MAIN_VARIANTS = (SESSION_VARIANT, USER_ID_VARIANT, ORM_VARIANT, PLAN_VARIANT, UNCHECKED_VARIANT)
#: Other people's privacy state while timing: 1,000 forgotten ids.
FORGOTTEN_OTHERS = 1000


class _Sink(http.server.BaseHTTPRequestHandler):
    """Accepts segment's batches with a 200, like its API would."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", "0")))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format: str, *args: Any) -> None:
        return None


@contextmanager
def segment_sink() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def configure_vendors() -> None:
    """Four vendors pointed at a closed loopback port: with the worker backend nothing is sent."""
    from django_eventtrack.sandbox import registry_specs

    credentials = {spec.name: spec.credentials for spec in registry_specs()}
    for vendor in VENDORS:
        for key, value in credentials[vendor].items():
            os.environ[f"EVENTTRACK_{vendor.upper()}_{key}"] = value
        os.environ[f"EVENTTRACK_{vendor.upper()}_API_URL"] = f"http://127.0.0.1:9/{vendor}"
    os.environ["EVENTTRACK_DELIVERY"] = "worker"


def remember_profile() -> None:
    """Hellotext knows user ``USER_ID`` (as after an ``identify()``): ``track()`` for that
    user id alone looks the profile up."""
    from django_eventtrack.models import VendorProfile

    VendorProfile.objects.get_or_create(
        vendor="hellotext", user_id=USER_ID, defaults={"profile_id": "P1042"}
    )


def variants(segment_host: str) -> dict[str, Callable[[int], object]]:
    from django.utils import timezone
    from segment.analytics.client import Client

    from django_eventtrack import track
    from django_eventtrack.models import Event

    client = Client(
        "bench-write-key", host=segment_host, send=True, max_queue_size=1_000_000, max_retries=0
    )

    def with_session(n: int) -> object:
        # A session of its own per call, as a new visitor's: the privacy check finds
        # nothing a process could have remembered from an earlier call.
        return track(EVENT, {**PROPERTIES, "n": n}, user_id=USER_ID, session=f"{SESSION}-{n}")

    def user_id_only(n: int) -> object:
        return track("product.purchased", {**PROPERTIES, "n": n}, user_id=USER_ID)

    def orm_insert(n: int) -> object:
        return Event.objects.create(
            id=uuid.uuid4(),
            name="product.purchased",
            properties={**PROPERTIES, "n": n},
            identity={"user_id": USER_ID, "session": f"{SESSION}-{n}"},
            timestamp=timezone.now(),
        )

    def segment(n: int) -> object:
        return client.track(
            user_id=USER_ID, event="product.purchased", properties={**PROPERTIES, "n": n}
        )

    return {
        SESSION_VARIANT: with_session,
        USER_ID_VARIANT: user_id_only,
        ORM_VARIANT: orm_insert,
        SEGMENT_VARIANT: segment,
        PLAN_VARIANT: with_session,  # the same call, run with the plan in force
        UNCHECKED_VARIANT: with_session,  # the same call, without the privacy check
    }


def privacy_check_left_out() -> AbstractContextManager[object]:
    """``track()`` as before its privacy check: no ids to check, so the plain INSERT."""
    from unittest import mock

    from django_eventtrack.core import subject_keys

    return mock.patch.object(subject_keys, "digests", return_value=[])


def forget_others() -> None:
    """Other people forgotten, so ``track()``'s check probes a table that is not empty
    (theirs alone: a PostgreSQL database kept from an earlier run is emptied first)."""
    from django_eventtrack.core import subject_keys
    from django_eventtrack.models import PrivacySubject

    PrivacySubject.objects.all().delete()
    PrivacySubject.objects.bulk_create(
        PrivacySubject(digest=subject_keys.digest("user_id", f"gone-{n}"), id_key="user_id")
        for n in range(FORGOTTEN_OTHERS)
    )


def write_plan(directory: str) -> str:
    """The 50-event plan as a JSON file; its path."""
    path = os.path.join(directory, "plan.json")
    with open(path, "w", encoding="utf-8") as file:
        json.dump(plan_data(), file)
    return path


@contextmanager
def plan_in_force(path: str) -> Iterator[None]:
    """``EVENTTRACK["PLAN"]`` set for the block; the configuration (the compiled plan
    included) is built before the block's calls are timed."""
    from django.test.utils import override_settings

    from django_eventtrack.conf import get_config

    with override_settings(EVENTTRACK={"PLAN": path, "PLAN_MODE": "raise"}):
        assert get_config().plan is not None
        yield
    get_config()


def measure(
    calls: dict[str, Callable[[int], object]],
    rounds: int,
    per_round: int,
    *,
    atomic: bool,
    contexts: Mapping[str, Callable[[], AbstractContextManager[object]]] | None = None,
) -> dict[str, list[float]]:
    """Microseconds per call, call by call, ``per_round`` calls per variant and round: in one
    transaction per variant and round (``atomic``), else each call committing by itself;
    a variant named in ``contexts`` runs its round inside that context."""
    from django.db import transaction

    contexts = contexts or {}
    samples: dict[str, list[float]] = {name: [] for name in calls}
    n = 0
    for round_number in range(rounds):
        order = list(calls.items())
        if round_number % 2:
            order.reverse()
        for name, call in order:
            with (
                contexts.get(name, nullcontext)(),
                transaction.atomic() if atomic else nullcontext(),
            ):
                for _ in range(per_round):
                    started = time.perf_counter_ns()
                    call(n)
                    samples[name].append((time.perf_counter_ns() - started) / 1000)
                    n += 1
    return samples


def compare(samples: dict[str, list[float]]) -> dict[str, Any]:
    """Each variant's distribution, and the ratios the targets are about (p50)."""
    results = {name: distribution(values) for name, values in samples.items()}
    session, user_id, orm, planned, unchecked = (results[name] for name in MAIN_VARIANTS)
    return {
        "calls_per_variant": len(samples[ORM_VARIANT]),
        "variants": results,
        "ratio_vs_orm_insert_p50": ratio(session["p50"], orm["p50"]),
        "ratio_vs_orm_insert_p99": ratio(session["p99"], orm["p99"]),
        "ratio_user_id_only_vs_session_p50": ratio(user_id["p50"], session["p50"]),
        "ratio_plan_vs_no_plan_p50": ratio(planned["p50"], session["p50"]),
        "ratio_privacy_check_vs_none_p50": ratio(session["p50"], unchecked["p50"]),
    }


def main() -> None:
    args = child_parser(__doc__ or "").parse_args()
    configure_vendors()
    setup_django()
    remember_profile()
    forget_others()
    in_transaction = (4, 25) if args.quick else (60, 50)
    committing = (2, 10) if args.quick else (20, 25)
    with segment_sink() as host, tempfile.TemporaryDirectory() as scratch:
        calls = variants(host)
        main_calls = {name: calls[name] for name in MAIN_VARIANTS}
        path = write_plan(scratch)
        contexts = {
            PLAN_VARIANT: lambda: plan_in_force(path),
            UNCHECKED_VARIANT: privacy_check_left_out,
        }
        # Warm up: imports, prepared statements, caches.
        measure(calls, 2, 20, atomic=True, contexts=contexts)
        samples = profiled(
            args.profile,
            lambda: measure(calls, *in_transaction, atomic=True, contexts=contexts),
        )
        committed = measure(main_calls, *committing, atomic=False, contexts=contexts)
    modes = {"in one transaction": compare(samples), "each call committing": compare(committed)}
    segment = modes["in one transaction"]["variants"][SEGMENT_VARIANT]
    session = modes["in one transaction"]["variants"][SESSION_VARIANT]
    write_result(
        args.result,
        {
            "database": database_description(),
            "unit": "microseconds per call",
            "modes": modes,
            "ratio_vs_segment_p50": ratio(session["p50"], segment["p50"]),
        },
    )


if __name__ == "__main__":
    main()

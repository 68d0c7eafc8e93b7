"""Benchmark 5: the cost of claiming due deliveries with a small vs a large outbox.

The table is filled straight with SQL (``INSERT ... SELECT`` over a generated
series, not ``track()``), four deliveries per event: mostly delivered rows, as
retention keeps them, plus the same number of due pending rows per vendor at
both sizes. Timed: ``claim_due_deliveries(vendor, 100, lease)`` (the claim and
loading what it claimed); between iterations the rows are given back, untimed.
The baseline is the small table.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from tests.benchmarks.common import (
    VENDORS,
    child_parser,
    database_description,
    distribution,
    empty_outbox,
    ratio,
    setup_django,
    write_result,
)

VENDOR = "hackle"
CLAIM_SIZE = 100


def _vendors_sql() -> str:
    return " UNION ALL ".join(f"SELECT '{vendor}' AS vendor" for vendor in VENDORS)


def fill(deliveries: int, pending_per_vendor: int) -> None:
    """Empty the outbox, then write ``deliveries`` rows (``deliveries / 4`` events)."""
    from django.db import connection, transaction
    from django.utils import timezone

    from django_eventtrack.models import Event

    empty_outbox()
    events = deliveries // len(VENDORS)
    at = timezone.now() - timedelta(days=1)
    values = {
        "name": "product.purchased",
        "properties": {"product": "SKU-1042", "amount": 19.99},
        "identity": {"profile": "P1042"},
        "timestamp": at,
        "created_at": at,
    }
    columns, select, params = [], [], []
    postgres = connection.vendor == "postgresql"
    for field in Event._meta.concrete_fields:
        columns.append(connection.ops.quote_name(str(field.column)))
        if field.primary_key:
            select.append("lpad(to_hex(i), 32, '0')::uuid" if postgres else "printf('%%032x', i)")
            continue
        select.append("%s")
        value = values[field.name] if field.name in values else field.get_default()
        params.append(field.get_db_prep_save(value, connection))
    series = (
        "generate_series(0, %s - 1) AS series(i)"
        if postgres
        else "(WITH RECURSIVE seq(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM seq "
        "WHERE i + 1 < %s) SELECT i FROM seq)"
    )
    stamp = connection.ops.adapt_datetimefield_value(at)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO eventtrack_event ({', '.join(columns)}) "  # noqa: S608 - our columns
            f"SELECT {', '.join(select)} FROM {series}",
            [*params, events],
        )
        cursor.execute(
            "INSERT INTO eventtrack_delivery (event_id, vendor, status, attempts, "  # noqa: S608
            "next_attempt_at, last_status, last_error, created_at, updated_at, delivered_at) "
            f"SELECT e.id, v.vendor, 'delivered', 1, %s, 200, '', %s, %s, %s "
            f"FROM eventtrack_event e CROSS JOIN ({_vendors_sql()}) v",
            [stamp, stamp, stamp, stamp],
        )
        for vendor in VENDORS:
            cursor.execute(
                "UPDATE eventtrack_delivery SET status = 'pending', delivered_at = NULL "
                "WHERE id IN (SELECT id FROM eventtrack_delivery WHERE vendor = %s "
                "ORDER BY id DESC LIMIT %s)",
                [vendor, pending_per_vendor],
            )
    if postgres:
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE eventtrack_event")
            cursor.execute("ANALYZE eventtrack_delivery")


def time_claims(iterations: int) -> list[float]:
    """Milliseconds per claim of ``CLAIM_SIZE`` due deliveries; rows given back between."""
    from django.utils import timezone

    from django_eventtrack.models import Delivery
    from django_eventtrack.outbox import leases

    lease = timedelta(seconds=60)
    samples = []
    for _ in range(iterations):
        started = time.perf_counter()
        claim = leases.claim_due_deliveries(VENDOR, CLAIM_SIZE, lease)
        samples.append((time.perf_counter() - started) * 1000)
        if len(claim.deliveries) != CLAIM_SIZE:
            raise AssertionError(f"claimed {len(claim.deliveries)} rows, expected {CLAIM_SIZE}")
        Delivery.objects.filter(pk__in=[d.pk for d in claim.deliveries]).update(
            claim_token=None, claimed_until=None, next_attempt_at=timezone.now()
        )
    return samples


def main() -> None:
    args = child_parser(__doc__ or "").parse_args()
    sizes = (1_000, 20_000) if args.quick else (10_000, 1_000_000)
    pending = 200 if args.quick else 1_000
    iterations = 20 if args.quick else 200
    setup_django()
    results: dict[str, Any] = {}
    for size in sizes:
        started = time.perf_counter()
        fill(size, pending)
        fill_seconds = time.perf_counter() - started
        time_claims(5)  # warm up: caches, prepared statements
        results[f"{size:,} rows"] = {
            **distribution(time_claims(iterations)),
            "fill_seconds": fill_seconds,
        }
    small, large = results.values()
    write_result(
        args.result,
        {
            "database": database_description(),
            "unit": "milliseconds per claim of 100 due deliveries",
            "pending_rows_per_vendor": pending,
            "sizes": results,
            "ratio_large_vs_small_p50": ratio(large["p50"], small["p50"]),
            "target": "claim with 1M rows within 1.5x of 10k rows (p50)",
            "target_met": ratio(large["p50"], small["p50"]) <= 1.5,
        },
    )


if __name__ == "__main__":
    main()

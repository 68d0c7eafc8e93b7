"""Writing a tracked event and its routes, in the caller's transaction."""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from django.db import connections, router
from django.db.models import Field
from django.utils import timezone

from django_eventtrack.conf import get_config
from django_eventtrack.core import event as normalised
from django_eventtrack.models import Event
from django_eventtrack.outbox import fanout
from django_eventtrack.outbox.retention import scrub
from django_eventtrack.outbox.routing import Target, plan
from django_eventtrack.plan import Violation

logger = logging.getLogger("django_eventtrack.outbox")


def record(
    event: normalised.TrackedEvent,
    vendors: Iterable[str] | None = None,
    *,
    violations: Sequence[Violation] = (),
    quarantined: bool = False,
) -> list[Target]:
    """Store ``event`` with its routes, in the caller's transaction: one row, one
    statement (atomic by itself, so no transaction of its own in autocommit).

    ``violations`` (how it breaks the tracking plan) are stored with it. A
    ``quarantined`` event is stored without routes: no vendor gets it until a
    replay finds it valid (:mod:`~django_eventtrack.outbox.quarantine`), which
    routes it to the ``vendors`` asked for here; it returns no targets.

    The routes name each targeted vendor, and why not for a vendor that cannot
    take the event (no identity it needs, filtered out by ``EVENTS`` when named
    explicitly): the first sender to look writes a delivery per vendor from them,
    a ``skipped`` one with the reason for the latter, so the admin shows why
    nothing was sent (:mod:`~django_eventtrack.outbox.fanout`). Returns the
    targets.
    """
    targets = plan(event, vendors, require_vendor=False)
    stored = Event.values_of(event) | {"created_at": timezone.now()}
    if violations:
        stored["violations"] = [violation.as_dict() for violation in violations]
    if quarantined:
        stored["quarantine"] = quarantine_of(vendors)
        _insert_row(stored)
        return []
    if not targets:
        logger.warning("event=%s name=%s: no vendor takes it; stored only", event.id, event.name)
    stored["routes"] = routes(targets)
    if all(target.skip_reason for target in targets):  # nothing will be sent: final already
        instance = Event(**stored)
        scrub(instance, get_config())
        stored = _event_values(instance)
    _insert_row(stored)
    return targets


def routes(targets: Sequence[Target]) -> dict[str, str | None] | None:
    """What an event row stores as its routes for ``targets``."""
    return fanout.routes_of([(target.vendor, target.skip_reason) for target in targets])


def quarantine_of(vendors: Iterable[str] | None) -> dict[str, list[str] | None]:
    """What a quarantined event row keeps to be routed later: the vendors asked for."""
    return {"vendors": None if vendors is None else sorted(set(vendors))}


def _insert_row(stored: Mapping[str, Any]) -> None:
    connection = connections[router.db_for_write(Event)]
    sql, params = _insert(stored, connection)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


# track() is on the caller's request path, so its INSERT is written by hand: the ORM's
# insert compiler (a model instance, per-field preparation, SQL assembly) cost more than
# the database work itself (``python -m tests.benchmarks``, request path). The columns
# and values still come from the model's fields, as the ORM's would: every concrete
# field is written, with its default when track() does not set it, adapted by the
# field for the database.


def _event_values(stored: Event) -> dict[str, Any]:
    return {field.attname: field.pre_save(stored, True) for field in Event._meta.concrete_fields}


def _insert(values: Mapping[str, Any], connection: Any) -> tuple[str, list[Any]]:
    """The INSERT of one ``Event`` row and its parameters: ``values`` by attribute name,
    every other field's default, each adapted by its field as ``Model.save()`` would."""
    sql, fields = _statement(connection.alias)
    return sql, [
        field.get_db_prep_save(
            values[field.attname] if field.attname in values else field.get_default(), connection
        )
        for field in fields
    ]


@functools.cache
def _statement(alias: str) -> tuple[str, tuple[Field[Any, Any], ...]]:
    """``INSERT INTO ... (columns) VALUES (%s, ...)`` for an event row on ``alias``, and
    the columns' fields."""
    quote = connections[alias].ops.quote_name
    fields = tuple(Event._meta.concrete_fields)
    columns = ", ".join(quote(str(field.column)) for field in fields)
    placeholders = ", ".join("%s" for _ in fields)
    table = quote(Event._meta.db_table)  # names from the model, quoted; values are parameters
    return f"INSERT INTO {table} ({columns}) VALUES ({placeholders})", fields  # noqa: S608

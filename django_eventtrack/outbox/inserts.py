"""Writing a tracked event and its deliveries, in the caller's transaction."""

from __future__ import annotations

import functools
import logging
import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import connections, router, transaction
from django.db.models import Field
from django.utils import timezone

from django_eventtrack.conf import get_config
from django_eventtrack.core import event as normalised
from django_eventtrack.models import Delivery, Event
from django_eventtrack.outbox.retention import scrub
from django_eventtrack.outbox.routing import Target, plan

logger = logging.getLogger("django_eventtrack.outbox")
Status = Delivery.Status


def record(event: normalised.TrackedEvent, vendors: Iterable[str] | None = None) -> list[Target]:
    """Store ``event`` and one delivery per targeted vendor, in the caller's transaction.

    One statement on PostgreSQL (one round trip, atomic by itself, so no
    transaction of its own in autocommit); elsewhere two INSERTs, with no
    savepoint inside an outer transaction and a transaction of their own
    outside one. A vendor that cannot take the event (no identity it needs,
    filtered out by ``EVENTS`` when named explicitly) gets a ``skipped`` row with
    the reason, so the admin shows why nothing was sent. Returns the targets,
    one per delivery row written.
    """
    targets = plan(event, vendors, require_vendor=False)
    if not targets:
        logger.warning("event=%s name=%s: no vendor takes it; stored only", event.id, event.name)
    stored = Event.values_of(event) | {"created_at": timezone.now()}
    if all(target.skip_reason for target in targets):  # nothing will be sent: final already
        instance = Event(**stored)
        scrub(instance, get_config())
        stored = _event_values(instance)
    alias = router.db_for_write(Event)
    connection = connections[alias]
    inserts = [_insert(Event, stored, [{}], connection)]
    if targets:
        shared = {"event_id": event.id, **dict.fromkeys(DELIVERY_STAMPS, stored["created_at"])}
        rows = [_delivery_values(target) for target in targets]
        inserts.append(_insert(Delivery, shared, rows, connection))
    if connection.vendor == "postgresql":
        # A data-modifying WITH runs to completion whatever the main statement reads;
        # the deliveries' foreign key is checked at commit (Django makes it deferred).
        sql = " ".join(f"WITH stored_{n} AS ({sql})" for n, (sql, _) in enumerate(inserts[:-1]))
        with _server_bound_cursor(connection) as cursor:
            cursor.execute(f"{sql} {inserts[-1][0]}", [p for _, params in inserts for p in params])
        return targets
    with connection.cursor() as cursor, transaction.atomic(using=alias, savepoint=False):
        for sql, params in inserts:
            cursor.execute(sql, params)
    return targets


def _server_bound_cursor(connection: Any) -> Any:
    """A cursor for track()'s statement that sends its parameters apart from the SQL.

    Django's psycopg 3 cursors bind on the client by default: psycopg quotes every
    parameter into the SQL text, which cost track() about a fifth of its time with
    four vendors' rows (some 45 values; profiled, request path). A psycopg
    ``Cursor`` sends them as values instead (never as a prepared statement, which a
    PgBouncer in transaction mode could not follow), wrapped as Django wraps its
    own (query logging, execute wrappers, database errors). On psycopg2 it is
    Django's own cursor.
    """
    psycopg3 = _psycopg3()
    connection.ensure_connection()
    raw = connection.connection
    if psycopg3 is None or not isinstance(raw, psycopg3.connection_class):
        return connection.cursor()
    cursor = psycopg3.cursor_class(raw)
    if connection.queries_logged:
        return connection.make_debug_cursor(cursor)
    return connection.make_cursor(cursor)


@dataclass(frozen=True)
class _Psycopg3:
    connection_class: type[Any]
    #: Binds on the server and never prepares.
    cursor_class: type[Any]


@functools.cache
def _psycopg3() -> _Psycopg3 | None:
    """psycopg 3's connection class and a server-binding ``Cursor`` that never
    prepares; None without psycopg 3."""
    try:
        import psycopg
    except ImportError:
        return None

    class UnpreparedCursor(psycopg.Cursor[Any]):
        def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
            return super().execute(query, params, prepare=False)

    return _Psycopg3(psycopg.Connection, UnpreparedCursor)


# track() is on the caller's request path, so its INSERTs are written by hand: the
# ORM's insert compiler (model instances, per-field preparation of identical values,
# SQL assembly) cost more than the database work itself, three times a plain ORM
# insert in all (``python -m tests.benchmarks``, request path). The columns and
# values still come from the model's fields, as the ORM's would: every concrete
# field is written, with its default when track() does not set it, adapted by the
# field for the database.

#: A new delivery's timestamps: the instant its event was stored.
DELIVERY_STAMPS = ("created_at", "updated_at", "next_attempt_at")


def _event_values(stored: Event) -> dict[str, Any]:
    return {field.attname: field.pre_save(stored, True) for field in Event._meta.concrete_fields}


def _delivery_values(target: Target) -> dict[str, Any]:
    """What differs between an event's deliveries, by attribute name."""
    return {
        "vendor": target.vendor,
        "status": Status.SKIPPED.value if target.skip_reason else Status.PENDING.value,
        "last_error": target.skip_reason or "",
    }


def _insert(
    model: type[Event | Delivery],
    shared: Mapping[str, Any],
    rows: Sequence[Mapping[str, Any]],
    connection: Any,
) -> tuple[str, list[Any]]:
    """The INSERT of ``rows`` and its parameters: each row has the values ``shared`` by
    all, its own (both by attribute name; each row names the same fields), and the
    default of every other concrete field but an auto-incremented key, each adapted by
    its field, as ``Model.save()`` would write them.

    What rows share is adapted once (constant defaults once per process), and a value
    equal to the one above it in its column is not adapted again: adapting the values
    for the database cost more than the rest of the statement (pyinstrument, request
    path). NULL goes in the SQL rather than as a parameter: psycopg parses a
    statement once and reuses the parse only when it has at most 50 parameters; with
    four vendors the deliveries' NULL columns (never claimed, never answered) made 61,
    and parsing each call cost more than the rows' own INSERT.
    """
    insert = _Insert.of(model, frozenset(shared), frozenset(rows[0]), connection)
    common = insert.constants | {
        index: insert.columns[index].get_db_prep_save(shared[name], connection)
        for index, name in insert.shared
    }
    params: list[Any] = []
    placeholders = []
    above: dict[int, tuple[Any, Any]] = {}  # a value equal to the row above's: adapted already
    for row in rows:
        cells = dict(common)
        for index, value_of in insert.varying:
            value = value_of(row)
            last, adapted = above.get(index, (_NOTHING, None))
            if type(value) is not type(last) or value != last:
                adapted = insert.columns[index].get_db_prep_save(value, connection)
                above[index] = (value, adapted)
            cells[index] = adapted
        values = [cells[index] for index in range(len(insert.columns))]
        params += [value for value in values if value is not None]
        placeholders.append(_placeholders(tuple(value is None for value in values)))
    return f"{insert.head} VALUES {', '.join(placeholders)}", params


@functools.cache
def _placeholders(nulls: tuple[bool, ...]) -> str:
    """A row's ``(%s, NULL, ...)``: its NULLs are in the SQL, its other values parameters."""
    return f"({', '.join('NULL' if null else '%s' for null in nulls)})"


@dataclass(frozen=True)
class _Insert:
    """How :func:`_insert` writes rows naming the same values, worked out once per
    model, value names and database: the columns (every concrete field but an
    auto-incremented key and those whose default is the database's own, ``db_default``
    and no ``default``, which the ORM leaves to the database too), by index those
    taking a ``shared`` value, those whose value varies by row (their own, or a
    default made for each, such as a callable's or ``auto_now``'s), and the constant
    defaults, adapted."""

    head: str
    columns: tuple[Field[Any, Any], ...]
    shared: tuple[tuple[int, str], ...]
    varying: tuple[tuple[int, Callable[[Mapping[str, Any]], Any]], ...]
    constants: dict[int, Any]

    @classmethod
    def of(
        cls,
        model: type[Event | Delivery],
        shared: frozenset[str],
        own: frozenset[str],
        connection: Any,
    ) -> _Insert:
        key = (model, shared, own, connection.alias)
        found = _inserts.get(key)
        if found is None:
            found = _inserts[key] = cls._work_out(model, shared, own, connection)
        return found

    @classmethod
    def _work_out(
        cls,
        model: type[Event | Delivery],
        shared: frozenset[str],
        own: frozenset[str],
        connection: Any,
    ) -> _Insert:
        columns = tuple(
            field
            for field in model._meta.concrete_fields
            if field is not model._meta.auto_field
            and (field.attname in shared | own or field.has_default() or not field.has_db_default())
        )
        quote = connection.ops.quote_name
        head = (
            f"INSERT INTO {quote(model._meta.db_table)} "
            f"({', '.join(quote(field.column) for field in columns)})"
        )
        varying = []
        constants = {}
        for index, field in enumerate(columns):
            if field.attname in shared:
                continue
            value = _row_value(field, own)
            if value is None:
                constants[index] = field.get_db_prep_save(field.get_default(), connection)
            else:
                varying.append((index, value))
        return cls(
            head,
            columns,
            tuple((i, field.attname) for i, field in enumerate(columns) if field.attname in shared),
            tuple(varying),
            constants,
        )


_inserts: dict[tuple[Any, ...], _Insert] = {}


_NOTHING = object()


def _row_value(
    field: Field[Any, Any], own: frozenset[str]
) -> Callable[[Mapping[str, Any]], Any] | None:
    """How a row gets ``field``'s value when it varies by row; None for a constant default."""
    if field.attname in own:
        return operator.itemgetter(field.attname)
    if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
        return lambda row: timezone.now()
    if field.has_default() and callable(field.default):
        return lambda row: field.get_default()
    return None

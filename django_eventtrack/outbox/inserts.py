"""Writing a tracked event and its routes, in the caller's transaction."""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from django.db import connections, router
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import CharField, DateTimeField, Field, JSONField, UUIDField
from django.utils import timezone

from django_eventtrack.conf import get_config
from django_eventtrack.core import event as normalised
from django_eventtrack.core import subject_keys
from django_eventtrack.models import Event, PrivacySubject
from django_eventtrack.outbox import fanout, subjects
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
    connection: BaseDatabaseWrapper | None = None,
) -> Recorded | None:
    """Store ``event`` with its routes, in the caller's transaction: one row, one
    statement (atomic by itself, so no transaction of its own in autocommit).

    ``violations`` (how it breaks the tracking plan) are stored with it. A
    ``quarantined`` event is stored without routes: no vendor gets it until a
    replay finds it valid (:mod:`~django_eventtrack.outbox.quarantine`), which
    routes it to the ``vendors`` asked for here; it has no targets.

    The routes name each targeted vendor, and why not for a vendor that cannot
    take the event (no identity it needs, filtered out by ``EVENTS`` when named
    explicitly, a purpose the visitor did not grant): the first sender to look
    writes a delivery per vendor from them, a ``skipped`` one with the reason for
    the latter, so the admin shows why nothing was sent
    (:mod:`~django_eventtrack.outbox.fanout`).

    The same statement checks that none of the event's ids has a privacy state
    (:mod:`~django_eventtrack.outbox.subjects`): for nearly every event it finds
    none and the row is written. Otherwise nothing is written by it, and the
    state decides: an id that asked to be forgotten stores nothing (returns
    None); withdrawn purposes are taken out of the event's consent and the event
    stored with it. Returns the event as stored and its targets. ``connection``:
    the one the router picks for events, when the caller has it already.
    """
    connection = connection or connections[router.db_for_write(Event)]
    digests = subject_keys.digests(event.identity.ids.items())
    targets = _store(event, vendors, digests, violations, quarantined, connection)
    if targets is not None:
        return Recorded(event, targets)
    asked = subjects.state(digests)
    if asked.forgotten:
        logger.info("event=%s name=%s: not stored: its subject was forgotten", event.id, event.name)
        return None
    event = without(event, asked.withdrawn)
    return Recorded(event, _store(event, vendors, (), violations, quarantined, connection) or [])


@dataclass(frozen=True)
class Recorded:
    """What :func:`record` stored: the event (its consent as decided) and its targets."""

    event: normalised.TrackedEvent
    targets: list[Target]


def without(event: normalised.TrackedEvent, withdrawn: frozenset[str]) -> normalised.TrackedEvent:
    """``event`` with consent for the ``withdrawn`` purposes taken back."""
    if not withdrawn:
        return event
    identity = event.identity
    granted = identity.consent
    if granted is None:
        granted = get_config().purposes
    return event.about(identity.with_consent(granted - withdrawn))


def _store(
    event: normalised.TrackedEvent,
    vendors: Iterable[str] | None,
    digests: Sequence[str],
    violations: Sequence[Violation],
    quarantined: bool,
    connection: BaseDatabaseWrapper,
) -> list[Target] | None:
    """Write ``event``'s row unless one of ``digests`` has a privacy state (then None)."""
    now = timezone.now()  # when it is stored: lateness is judged then too
    targets = plan(event, vendors, require_vendor=False, now=now)
    stored = Event.values_of(event)
    stored["created_at"] = now
    if violations:
        stored["violations"] = [violation.as_dict() for violation in violations]
    if quarantined:
        stored["quarantine"] = quarantine_of(vendors)
        return [] if _insert_row(stored, digests, connection) else None
    if not targets:
        logger.warning("event=%s name=%s: no vendor takes it; stored only", event.id, event.name)
    stored["routes"] = routes(targets)
    if all(target.skip_reason for target in targets):  # nothing will be sent: final already
        instance = Event(**stored)
        scrub(instance, get_config())
        stored = _event_values(instance)
    return targets if _insert_row(stored, digests, connection) else None


def routes(targets: Sequence[Target]) -> dict[str, str | None] | None:
    """What an event row stores as its routes for ``targets``."""
    return fanout.routes_of([(target.vendor, target.skip_reason) for target in targets])


def quarantine_of(vendors: Iterable[str] | None) -> dict[str, list[str] | None]:
    """What a quarantined event row keeps to be routed later: the vendors asked for."""
    return {"vendors": None if vendors is None else sorted(set(vendors))}


def _insert_row(
    stored: Mapping[str, Any], digests: Sequence[str], connection: BaseDatabaseWrapper
) -> bool:
    """Insert the row; False when one of ``digests`` has a privacy state (none written)."""
    by_function = bool(digests) and _has_check_function(connection)
    sql = _statement(connection.alias, len(digests), by_function=by_function)
    with connection.cursor() as cursor:
        cursor.execute(sql, [*_params(stored, connection), *digests])
        return bool(cursor.rowcount)


#: On PostgreSQL, the privacy check as a PL/pgSQL function (migration ``0011``): its query is
#: planned once per session, where the same check as a subquery is planned with every
#: INSERT (about 30 µs of a 300 µs ``track()``). ``STABLE``, so it reads the statement's
#: snapshot, as the subquery does.
CHECK_FUNCTION = "eventtrack_privacy_state"
#: Whether each database has it, looked up once per process and database: one without (a
#: test database made with ``--nomigrations``, which runs no migration's SQL, or code
#: deployed before ``migrate``) makes the check as a subquery, never failing for it.
_check_function: dict[tuple[str, str], bool] = {}


def _has_check_function(connection: BaseDatabaseWrapper) -> bool:
    if connection.vendor != "postgresql":
        return False
    key = (connection.alias, str(connection.settings_dict.get("NAME")))
    found = _check_function.get(key)
    if found is None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT to_regprocedure(%s) IS NOT NULL", [f"{CHECK_FUNCTION}(text[])"])
            found = _check_function[key] = bool(cursor.fetchone()[0])
    return found


# track() is on the caller's request path, so its INSERT is written by hand: the ORM's
# insert compiler (a model instance, per-field preparation, SQL assembly) cost more than
# the database work itself (``python -m tests.benchmarks``, request path). The columns
# and values still come from the model's fields, as the ORM's would: every concrete
# field is written, with its default when track() does not set it, adapted for the
# database as the field adapts it (:class:`Column`).


def _event_values(stored: Event) -> dict[str, Any]:
    return {field.attname: field.pre_save(stored, True) for field in Event._meta.concrete_fields}


def _params(values: Mapping[str, Any], connection: BaseDatabaseWrapper) -> list[Any]:
    """The parameters of one ``Event`` row: ``values`` by attribute name, every other
    field's default, each adapted by its field as ``Model.save()`` would."""
    params = []
    for attname, field, adapt, constant in _columns():
        if attname in values:
            params.append(adapt(values[attname], connection))
        elif constant is not None:
            params.append(constant[0])
        else:
            params.append(adapt(field.get_default(), connection))
    return params


class Column(NamedTuple):
    """One ``Event`` field as track() writes it: its value (or its default), adapted for
    the database by the steps of its ``get_db_prep_save`` that change the values
    track() builds, and no others. ``get_prep_value`` leaves an aware datetime, a str,
    a UUID or a JSON dict as it is, so those go straight to the backend's adaptation;
    any other value takes the field's whole path."""

    attname: str
    field: Field[Any, Any]
    adapt: Adapt
    #: The default's adapted value, when it is a constant (None: ask the field each time).
    constant: tuple[Any] | None


@functools.cache
def _columns() -> tuple[Column, ...]:
    return tuple(
        Column(field.attname, field, _adapter(field), _constant_default(field))
        for field in Event._meta.concrete_fields
    )


#: What each kind of column takes from track() (a value ``get_prep_value`` leaves as it is)
#: straight to the backend's adaptation; any other value takes the field's whole path.
Adapt = Callable[[Any, Any], Any]


def _adapter(field: Field[Any, Any]) -> Adapt:
    """How ``field`` adapts a value for a connection, as its ``get_db_prep_save`` would."""
    made = _kind(field)
    return field.get_db_prep_save if made is None else made(field)


def _kind(field: Field[Any, Any]) -> Callable[[Field[Any, Any]], Adapt] | None:
    """The adapter maker of ``field``'s kind in :data:`ADAPTERS`; None for another kind."""
    return next((made for kind, made in ADAPTERS if isinstance(field, kind)), None)


def _json(field: Field[Any, Any]) -> Adapt:
    whole, encoder = field.get_db_prep_save, getattr(field, "encoder", None)

    def adapt(value: Any, connection: Any) -> Any:
        if isinstance(value, dict | list):
            return connection.ops.adapt_json_value(value, encoder)
        return None if value is None else whole(value, connection)

    return adapt


def _datetime(field: Field[Any, Any]) -> Adapt:
    whole = field.get_db_prep_save

    def adapt(value: Any, connection: Any) -> Any:
        if value is None or (isinstance(value, datetime) and value.utcoffset() is not None):
            return connection.ops.adapt_datetimefield_value(value)
        return whole(value, connection)  # a naive one may be made aware (USE_TZ)

    return adapt


def _text(field: Field[Any, Any]) -> Adapt:
    whole = field.get_db_prep_save
    return lambda value, connection: value if type(value) is str else whole(value, connection)


def _uuid(field: Field[Any, Any]) -> Adapt:
    whole, prepared = field.get_db_prep_save, field.get_db_prep_value

    def adapt(value: Any, connection: Any) -> Any:
        if isinstance(value, uuid.UUID):
            return prepared(value, connection, prepared=True)
        return whole(value, connection)

    return adapt


ADAPTERS: tuple[tuple[type[Field[Any, Any]], Callable[[Field[Any, Any]], Adapt]], ...] = (
    (JSONField, _json),
    (DateTimeField, _datetime),
    (CharField, _text),
    (UUIDField, _uuid),
)


def _constant_default(field: Field[Any, Any]) -> tuple[Any] | None:
    """``(None,)`` for a column of those kinds whose default is NULL (each stores None as
    NULL); None when the default must be asked for and adapted (a callable, a value)."""
    if field.has_default() or not field.null or _kind(field) is None:
        return None
    return (None,)


@functools.cache
def _statement(alias: str, digests: int = 0, *, by_function: bool = False) -> str:
    """The INSERT of an event row on ``alias``, its columns the model's concrete fields:
    ``INSERT ... VALUES (%s, ...)``; with ``digests`` ids to check, ``INSERT ... SELECT
    %s, ... WHERE NOT EXISTS (a privacy state under one of them)``, the check costing no
    round trip of its own, or ``WHERE NOT`` :data:`CHECK_FUNCTION` ``(ids)`` with
    ``by_function`` (PostgreSQL)."""
    quote = connections[alias].ops.quote_name
    fields = tuple(column.field for column in _columns())
    columns = ", ".join(quote(str(field.column)) for field in fields)
    placeholders = ", ".join("%s" for _ in fields)
    table = quote(Event._meta.db_table)  # names from the model, quoted; values are parameters
    insert = f"INSERT INTO {table} ({columns})"
    if not digests:
        return f"{insert} VALUES ({placeholders})"
    given = ", ".join("%s" for _ in range(digests))
    if by_function:
        return f"{insert} SELECT {placeholders} WHERE NOT {CHECK_FUNCTION}(ARRAY[{given}]::text[])"
    subjects_table = quote(PrivacySubject._meta.db_table)
    digest = quote(str(PrivacySubject._meta.get_field("digest").column))
    check = f"SELECT 1 FROM {subjects_table} WHERE {digest} IN ({given})"  # noqa: S608
    return f"{insert} SELECT {placeholders} WHERE NOT EXISTS ({check})"

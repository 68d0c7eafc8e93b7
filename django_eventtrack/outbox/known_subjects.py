"""Ids this process knows to have no privacy state, so that track() need not look again.

``track()`` stores nothing for a forgotten person, checked in the statement that
stores the event (:mod:`~django_eventtrack.outbox.inserts`). On PostgreSQL that check,
a subquery, is planned again with every INSERT, which cost more than the rest of the
statement (``python -m tests.benchmarks --only request_path``). So, on PostgreSQL, the
database keeps a *generation*: a sequence that every write to the privacy subjects
advances in the writing transaction (a trigger, which also holds :data:`LOCK` until
that transaction ends; migration ``0011``). Once an INSERT with the full check has
found no state under an event's ids while the generation was ``g``, later INSERTs for
the same ids only check that the generation is still ``g`` (a function call, nothing
to plan): if it moved, nothing is written, what this process knew is dropped and the
full check runs again.

That keeps the guarantee that once ``forget()`` has committed, no process stores
anything more about that person: its write advanced the generation before the commit.
What is learnt under ``g`` must not miss a change made under ``g`` or before, so
``g`` is taken only when no such change is still uncommitted (:data:`LOCK` is free,
and this transaction changed nothing), and learnt only from an INSERT of a ``READ
COMMITTED`` transaction that began after ``g`` was taken and saw it unchanged.
Elsewhere (SQLite) every INSERT makes the full check, which costs little there.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Collection
from dataclasses import dataclass, field

from django.db.backends.base.base import BaseDatabaseWrapper

#: The sequence every write to the privacy subjects advances (PostgreSQL).
GENERATION = "eventtrack_privacy_generation"
#: The advisory lock a transaction writing privacy subjects holds until it ends
#: (``b"eventtra"`` as a number).
LOCK = 7311142570157175393
#: The setting (local to the transaction) that says it wrote privacy subjects.
CHANGED = "eventtrack.privacy_changed"
#: At most this many ids are kept per database; past it, only the latest event's.
MAX_KNOWN = 65_536

#: The generation, read in the statement that stores an event: NULL, and no error that
#: would abort the caller's transaction, where the sequence is missing (a test database
#: made with ``--nomigrations``, which runs no migration's SQL, or code deployed before
#: ``migrate``): every INSERT then makes the full check.
CURRENT = f"pg_sequence_last_value(to_regclass('{GENERATION}'))"
#: What an INSERT that makes the full check returns, to learn from it.
LEARNING = (
    f"RETURNING {CURRENT}, current_setting('transaction_isolation'), "
    f"current_setting('{CHANGED}', true)"
)


@dataclass(frozen=True)
class Known:
    """Ids (their digests) with no privacy state while the generation is ``generation``.

    ``clean`` grows in place, under the module's lock: a copy per new id would cost more
    than the lookup it saves (about 0.6 ms at 30,000 ids)."""

    generation: int
    clean: set[str] = field(default_factory=set)


_known: dict[str, Known] = {}
_lock = threading.Lock()


def applies(connection: BaseDatabaseWrapper) -> bool:
    """Whether the database keeps a generation (PostgreSQL)."""
    return connection.vendor == "postgresql"


def clean_under(connection: BaseDatabaseWrapper, digests: Collection[str]) -> int | None:
    """The generation under which every one of ``digests`` had no privacy state, if known."""
    with _lock:
        known = _known.get(connection.alias)
        if known is None or not known.clean.issuperset(digests):
            return None
        return known.generation


def outdated(connection: BaseDatabaseWrapper, generation: int) -> None:
    """The generation is no longer ``generation``: forget what was known under it."""
    with _lock:
        known = _known.get(connection.alias)
        if known is not None and known.generation == generation:
            del _known[connection.alias]


def generation(connection: BaseDatabaseWrapper) -> int | None:
    """The generation to learn under: the one known, else the database's once no change
    made under it is uncommitted; None when one is (or this transaction made one)."""
    known = _known.get(connection.alias)
    if known is not None:
        return known.generation
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {CURRENT}, current_setting(%s, true)", [CHANGED])
        current, changed = cursor.fetchone()
        if current is None or changed == "on":
            return None
        # After reading it: a writer that advanced it to `current` or below still holds
        # the lock until its transaction ends. Not waited for: tried, released at once.
        cursor.execute(
            "SELECT CASE WHEN pg_try_advisory_lock_shared(%s) "
            "THEN pg_advisory_unlock_shared(%s) ELSE false END",
            [LOCK, LOCK],
        )
        (free,) = cursor.fetchone()
    if not free:
        return None
    with _lock:
        return _known.setdefault(connection.alias, Known(current)).generation


def learn(
    connection: BaseDatabaseWrapper,
    generation: int,
    digests: Collection[str],
    returned: tuple[int, str, str | None] | None,
) -> None:
    """An INSERT that made the full check under ``generation`` stored its event: its
    ``digests`` had no privacy state, if it ``returned`` (:data:`LEARNING`) the same
    generation, from a ``READ COMMITTED`` transaction that changed none. Another
    generation returned outdates this one."""
    if returned is None:
        return
    current, isolation, changed = returned
    if current != generation:
        outdated(connection, generation)
        return
    if isolation != "read committed" or changed == "on":
        return
    with _lock:
        known = _known.get(connection.alias)
        if known is None or known.generation != generation:
            return
        if len(known.clean) + len(digests) > MAX_KNOWN:
            known.clean.clear()
        known.clean.update(digests)


def reset() -> None:
    """Forget everything known (a test that recreates its database)."""
    with _lock:
        _known.clear()


def _forget_all() -> None:
    """A forked child starts knowing nothing, with a lock no parent thread holds."""
    global _lock
    _known.clear()
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_all)

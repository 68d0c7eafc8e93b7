"""What people asked of us, per id: kept hashed, read by ``track()``, acted on at once.

A person's ids (a user id, our anonymous id, a vendor's browser id) each get a
:class:`~django_eventtrack.models.PrivacySubject` row, under the id's hashed form,
when they withdraw consent for a purpose or ask to be forgotten. ``track()``
reads them for the ids of every event it stores (:func:`state`); the
withdrawal and the erasure act on what is already waiting in the outbox
(:func:`settle_pending`) in the caller's transaction, so nothing waiting is
sent after it commits (the sender checks each delivery just before its request).
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from functools import reduce
from operator import or_

from django.db.models import Q
from django.utils import timezone

from django_eventtrack.conf import Config
from django_eventtrack.core import subject_keys
from django_eventtrack.models import Delivery, PrivacySubject
from django_eventtrack.outbox import fanout

#: A person's ids: (identity key, id) pairs, several per key allowed.
Ids = Sequence[tuple[str, str]]

#: Why a delivery was not sent: its subject asked to be forgotten.
ERASED = "erased"


def withdrawn_reason(purposes: Iterable[str]) -> str:
    """Why a delivery was not sent: consent for ``purposes`` was withdrawn."""
    return f"consent withdrawn for {', '.join(purposes)}"


@dataclass(frozen=True)
class State:
    """What the subject of an event asked: nothing, to be forgotten, or to withdraw
    consent for some purposes (any of its ids counts)."""

    forgotten: bool = False
    withdrawn: frozenset[str] = frozenset()


def state(digests: Collection[str]) -> State:
    """The state kept under any of ``digests`` (:func:`subject_keys.digests` of an
    event's ids); one indexed query."""
    rows = PrivacySubject.objects.filter(digest__in=list(digests)).values_list(
        "forgotten_at", "withdrawn"
    )
    forgotten, withdrawn = False, set[str]()
    for forgotten_at, purposes in rows:
        forgotten = forgotten or forgotten_at is not None
        withdrawn.update(purposes or ())
    return State(forgotten, frozenset(withdrawn))


def mark(
    ids: Ids,
    *,
    forgotten: bool | None = None,
    withdraw: Iterable[str] = (),
    grant: Iterable[str] = (),
) -> None:
    """Keep, under each of ``ids`` ((key, id) pairs), that its person is forgotten (or no
    longer: ``forgotten=False``) and which purposes they withdrew or granted again.
    A row left with nothing to say is deleted, so ``track()``'s check stays empty
    for everybody who asked nothing."""
    now = timezone.now()
    withdrawn, granted = set(withdraw), set(grant)
    for key, value in ids:
        digest = subject_keys.digest(key, value)
        row = PrivacySubject.objects.filter(digest=digest).first()
        row = row or PrivacySubject(digest=digest, id_key=key)
        if forgotten is not None:
            row.forgotten_at = now if forgotten else None
        row.withdrawn = sorted((set(row.withdrawn or ()) | withdrawn) - granted)
        if row.forgotten_at is None and not row.withdrawn:
            if row.pk is not None:
                row.delete()
            continue
        row.save()


def events_of(ids: Ids, *, through: str = "") -> Q:
    """The events any of ``ids`` appears in (their identity snapshots); ``through``
    prefixes the lookups (``"event__"`` for deliveries)."""
    return reduce(or_, (Q(**{f"{through}identity__{key}": value}) for key, value in ids))


def settle_pending(ids: Ids, vendors: Collection[str] | None, reason: str) -> int:
    """Skip, with ``reason``, whatever of the events any of ``ids`` appears in is still
    to be sent to ``vendors`` (None: every vendor), in the caller's transaction; how
    many deliveries.

    Events whose deliveries are not written yet get them written now, the
    affected ones skipped: a sender that read their routes before cannot write
    pending ones any more (one delivery per event and vendor). Then the pending
    deliveries are skipped, claimed ones included: a sender checks each delivery
    just before its request, so only a request already under way goes out.
    """
    unrouted = fanout.unrouted().filter(events_of(ids)).values_list("pk", flat=True)
    skipped = _fan_out_skipped(list(unrouted), vendors, reason)
    pending = Delivery.objects.filter(status=Delivery.Status.PENDING).filter(
        events_of(ids, through="event__")
    )
    if vendors is not None:
        pending = pending.filter(vendor__in=list(vendors))
    return skipped + pending.update(
        status=Delivery.Status.SKIPPED, last_error=reason, updated_at=timezone.now()
    )


def _fan_out_skipped(
    event_ids: list[uuid.UUID], vendors: Collection[str] | None, reason: str
) -> int:
    if not event_ids:
        return 0
    batch = fanout.pending(event_ids, limit=len(event_ids))
    skipped = 0
    for delivery in batch.deliveries:
        if delivery.status == Delivery.Status.PENDING and (
            vendors is None or delivery.vendor in vendors
        ):
            delivery.status, delivery.last_error = Delivery.Status.SKIPPED, reason
            skipped += 1
    batch.write()
    return skipped


def vendors_serving(purposes: Collection[str], config: Config) -> list[str]:
    """The vendors any of whose purposes is among ``purposes``."""
    return [name for name, vendor in config.vendors.items() if set(vendor.purposes) & set(purposes)]


def forgotten(ids: Ids) -> int:
    """How many of ``ids`` are marked forgotten."""
    digests = [subject_keys.digest(key, value) for key, value in ids]
    return PrivacySubject.objects.filter(digest__in=digests, forgotten_at__isnull=False).count()

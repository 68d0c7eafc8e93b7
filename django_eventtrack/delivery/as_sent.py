"""What a vendor gets of the events a drain claimed, and why it would not want one now.

Each event goes out as its person's, not its browser's: a browser id that belongs to
another user than the one the event names is replaced or left out
(:mod:`~django_eventtrack.outbox.owners`), and the vendor profile remembered for the user
is added (:mod:`~django_eventtrack.outbox.vendor_profiles`). What that changed is noted
for the delivery, and the vendor judges the event again with the ids it is sent with.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime

from django_eventtrack.core.event import TrackedEvent
from django_eventtrack.models import Delivery
from django_eventtrack.outbox import owners, vendor_profiles
from django_eventtrack.vendors import VendorAdapter
from django_eventtrack.vendors.base import Notes

#: An event as the vendors get it (another user's browser ids replaced), and what that
#: changed.
Read = tuple[TrackedEvent, tuple[str, ...]]


def events(
    adapter: VendorAdapter, deliveries: Sequence[Delivery], normalised: dict[uuid.UUID, Read]
) -> tuple[list[TrackedEvent], Notes]:
    """The deliveries' events as ``adapter`` gets them, and per event id what sending
    changed of them. ``normalised`` keeps each event read once for all the vendors of a
    claim (one query for the browser ids' owners of all)."""
    unread = {d.event_id: d.event for d in deliveries if d.event_id not in normalised}
    if unread:
        read = [event.to_normalised() for event in unread.values()]
        for before, after in zip(read, owners.as_their_own(read), strict=True):
            normalised[before.id] = (after, tuple(owners.replaced(before, after)))
    sent = [normalised[delivery.event_id][0] for delivery in deliveries]
    notes: Notes = {
        str(delivery.event_id): list(normalised[delivery.event_id][1]) for delivery in deliveries
    }
    if adapter.remembers_profiles:
        sent = vendor_profiles.with_known_profiles(adapter.name, sent)
    return sent, notes


def identify(delivery: Delivery) -> tuple[TrackedEvent, Notes]:
    """An ``identify()`` delivery's event as its vendor gets it, and what that changed."""
    read = delivery.event.to_normalised()
    (event,) = owners.as_their_own([read])
    return event, {str(event.id): owners.replaced(read, event)}


def why_not(
    adapter: VendorAdapter,
    event: TrackedEvent,
    dropped: Mapping[str, str],
    changed: Sequence[str],
    now: datetime,
) -> str | None:
    """Why the vendor does not want ``event`` now, or None: it happened too long ago (its
    ``MAX_LATENESS``), its name is one the vendor was seen to drop (``dropped``), or the
    vendor cannot take it with the ids it is sent with (``changed`` says how they differ
    from those it was tracked with: another user's browser ids left out, or the profile
    its user was to get never came)."""
    reason = adapter.lateness_refusal(event.timestamp, now) or adapter.known_drop(event, dropped)
    if reason is None and (refusal := adapter.skip_reason(event)):
        reason = "; ".join([refusal, *changed])
    return reason

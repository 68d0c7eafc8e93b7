"""Whose browser ids are whose: identity is per person, not per browser.

A browser id (our anonymous id, Hellotext's session cookie, the vendors' SDK ids:
``Config.browser_keys``) outlives a sign-out: Hellotext.js keeps its session for years,
so the next person who signs in on that browser brings the same ids. Sent with their
events, the vendors would join the two people (a session is one person at PrimeData,
a device at Hackle; Hellotext credits a session's events to the profile it belongs
to).

So the first user an event names with a browser id owns it (:class:`BrowserOwner`),
learnt when a sender writes the events' deliveries, in the order they were tracked
(:func:`learn`), and before an event is sent every browser id of it owned by another
user is replaced (:func:`as_their_own`), as its adapter's :class:`BrowserId` says: by
an id derived from it and the user where the vendor takes any token (each person of
a shared browser gets their own), else left out. Events naming no user are left as
they are: whoever it is, the browser is all we know. No vendor is named here: the
registry says which ids a browser brings and how each is replaced.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence

from django.db.models import Q

from django_eventtrack.conf import Config, get_config
from django_eventtrack.core.browser_ids import ANONYMOUS_ID
from django_eventtrack.core.event import TrackedEvent
from django_eventtrack.models import BrowserOwner

#: Namespace of the ids derived for one person from a shared browser id (fixed, random).
PER_PERSON = uuid.UUID("5f0d5c4e-2a8b-4c61-9f3e-6d1b7a9c2e40")

Pair = tuple[str, str]


def learn(identities: Iterable[Mapping[str, object]]) -> int:
    """Record the owner of each browser id these identities (stored events', oldest
    first) name with a user, unless it has one: the first user wins. In the caller's
    transaction (a sender's claim); how many ids were new."""
    keys = get_config().browser_keys
    seen: dict[Pair, str] = {}
    for identity in identities:
        user = identity.get("user_id")
        if not isinstance(user, str) or not user:
            continue
        for key in keys:
            value = identity.get(key)
            if isinstance(value, str) and value:
                seen.setdefault((key, value), user)
    if not seen:
        return 0
    known = _owners(seen)
    new = sorted(pair for pair in seen if pair not in known)  # one order: no deadlock
    BrowserOwner.objects.bulk_create(
        [BrowserOwner(key=key, value=value, user_id=seen[key, value]) for key, value in new],
        ignore_conflicts=True,  # another sender recorded it meanwhile: its owner stands
    )
    return len(new)


def as_their_own(events: Sequence[TrackedEvent]) -> list[TrackedEvent]:
    """``events`` with every browser id that belongs to another user than the one the
    event names replaced (derived or left out, as the registry says); one query for
    all, none when no event names a user with a browser id."""
    config = get_config()
    named = {
        (key, value)
        for event in events
        if event.identity.user_id
        for key in config.browser_keys
        if (value := event.identity.get(key))
    }
    if not named:
        return list(events)
    owners = _owners(named)
    return [_own(config, event, owners) for event in events]


def replaced(before: TrackedEvent, after: TrackedEvent) -> list[str]:
    """What :func:`as_their_own` changed, one short line per id, for the delivery."""
    lines = []
    for key in get_config().browser_keys:
        old, new = before.identity.get(key), after.identity.get(key)
        if old == new:
            continue
        if new is None:
            lines.append(f"{key} left out: it belongs to another user of this browser")
        else:
            lines.append(f"{key} replaced by this user's own: the browser's belongs to another")
    return lines


def forget(ids: Iterable[tuple[str, str]]) -> int:
    """Delete whose browser ids the users among ``ids`` ((identity key, id) pairs) were:
    an erasure's part here; how many rows."""
    users = [value for key, value in ids if key == "user_id"]
    return BrowserOwner.objects.filter(user_id__in=users).delete()[0] if users else 0


def per_person(key: str, value: str, user_id: str) -> str:
    """The id that stands for browser id ``value`` (under ``key``) for ``user_id``: the
    same for the same three, a UUID with no way back to any of them."""
    return str(uuid.uuid5(PER_PERSON, f"{key}\0{value}\0{user_id}"))


def _owners(pairs: Iterable[Pair]) -> dict[Pair, str]:
    """``{(key, value): user}`` for those of ``pairs`` that have an owner."""
    by_key: dict[str, set[str]] = {}
    for key, value in pairs:
        by_key.setdefault(key, set()).add(value)
    wanted = Q()
    for key, values in by_key.items():
        wanted |= Q(key=key, value__in=values)
    rows = BrowserOwner.objects.filter(wanted).values_list("key", "value", "user_id")
    return {(key, value): user for key, value, user in rows}


def _own(config: Config, event: TrackedEvent, owners: Mapping[Pair, str]) -> TrackedEvent:
    identity = event.identity
    user = identity.user_id
    if not user:
        return event
    changes: dict[str, str | None] = {}
    for key in config.browser_keys:
        value = identity.get(key)
        owner = owners.get((key, value)) if value else None
        if owner is None or owner == user or value is None:
            continue
        changes[key] = per_person(key, value, user) if _derived(config, key) else None
    if not changes:
        return event
    return event.about(identity.replace(**changes))


def _derived(config: Config, key: str) -> bool:
    """Whether a shared ``key`` is replaced by a per-person id (else left out)."""
    if key == ANONYMOUS_ID:
        return True
    return any(bid.name == key and bid.shared == "derive" for bid in config.browser_ids)

"""The vendors' own ids for our users and visitors, kept in the database.

A vendor whose adapter ``remembers_profiles`` (it hands out a profile id of its
own when a user is identified) gets it kept per user
(:class:`~django_eventtrack.models.VendorProfile`), so that later events for
that user carry it (the adapter's ``profile_key``) and later logins attach new
sessions to the same profile. Whose a browser session is (its ``session_key``)
is kept too (:class:`~django_eventtrack.models.VendorSession`), so an event
never pairs a session with a profile it does not belong to. :func:`learn` acts
on what vendors' answers teach: a profile the vendor lost is created again once.

``track()`` and the sender use this module; it knows no vendor by name.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

from django.db import IntegrityError, transaction
from django.db.models import Q

from django_eventtrack.conf import get_config
from django_eventtrack.core.event import Identity, TrackedEvent
from django_eventtrack.models import VendorProfile, VendorSession
from django_eventtrack.vendors.base import (
    Learned,
    ProfileGone,
    Send,
    SessionOwner,
    VendorAdapter,
)

logger = logging.getLogger("django_eventtrack.identify")


class DatabaseProfiles:
    """Vendor profile ids kept in :class:`VendorProfile`, first one wins."""

    #: Profiles :meth:`remembered` keeps per process before it starts afresh.
    REMEMBERED_LIMIT = 10_000

    def __init__(self) -> None:
        self._remembered: dict[tuple[str, str], str] = {}

    def remembered(self, vendor: str, user_id: str) -> str | None:
        """:meth:`get` for ``track()``'s request path: a profile found is kept in this
        process, so the user's next events cost no query (the lookup took longer than
        storing the event). Only profiles found are kept: a user with none yet is looked
        up each time, so the first event after ``identify()`` finds it. One another
        process forgot and replaced since is harmless: the sender sends every event with
        the profile remembered at that moment (:func:`with_known_profiles`)."""
        key = (vendor, user_id)
        profile = self._remembered.get(key)
        if profile is None:
            profile = self.get(vendor, user_id)
            if profile is not None:
                if len(self._remembered) >= self.REMEMBERED_LIMIT:
                    self._remembered = {}
                self._remembered[key] = profile
        return profile

    def reset(self) -> None:
        """Forget the profiles :meth:`remembered` kept (tests, or after editing
        ``VendorProfile`` rows by hand)."""
        self._remembered = {}

    def get(self, vendor: str, user_id: str) -> str | None:
        return (
            VendorProfile.objects.filter(vendor=vendor, user_id=user_id)
            .values_list("profile_id", flat=True)
            .first()
        )

    def remember(self, vendor: str, user_id: str, profile_id: str) -> str:
        try:
            with transaction.atomic():
                VendorProfile.objects.create(vendor=vendor, user_id=user_id, profile_id=profile_id)
        except IntegrityError:
            # Another sender got there first; its profile is the user's.
            kept = self.get(vendor, user_id)
            if kept is not None and kept != profile_id:
                logger.warning(
                    "vendor=%s user=%s: a second profile was created concurrently; "
                    "keeping the first one",
                    vendor,
                    user_id,
                )
            return kept or profile_id
        return profile_id

    def known(self, vendor: str, user_ids: Iterable[str]) -> dict[str, str]:
        """``{user_id: profile_id}`` for those of ``user_ids`` with a profile."""
        return dict(
            VendorProfile.objects.filter(vendor=vendor, user_id__in=set(user_ids)).values_list(
                "user_id", "profile_id"
            )
        )

    def forget(self, vendor: str, profile_id: str) -> None:
        VendorProfile.objects.filter(vendor=vendor, profile_id=profile_id).delete()
        self._remembered = {
            key: kept
            for key, kept in self._remembered.items()
            if (vendor, profile_id) != (key[0], kept)
        }

    def remember_session(self, vendor: str, session: str, profile_id: str) -> None:
        """The vendor's word on whose ``session`` is; the latest word wins."""
        VendorSession.objects.update_or_create(
            vendor=vendor, session_id=session, defaults={"profile_id": profile_id}
        )

    def session_owners(self, vendor: str, sessions: Iterable[str]) -> dict[str, str]:
        """``{session: profile_id}`` for those of ``sessions`` whose owner we know
        (``""``: a profile we cannot name)."""
        return dict(
            VendorSession.objects.filter(vendor=vendor, session_id__in=set(sessions)).values_list(
                "session_id", "profile_id"
            )
        )


profiles = DatabaseProfiles()


def with_known_profiles(vendor: str, events: Sequence[TrackedEvent]) -> list[TrackedEvent]:
    """``events`` as the vendor must get them, by what we remember (two queries at most
    for the whole batch; none for a vendor without profiles):

    * an event naming a user carries the user's remembered profile (it replaces
      an older one the event was stored with, such as a profile the vendor lost
      and we created again);
    * a session that belongs to another profile than the event's is left out:
      the vendor refuses the pair, and the profile alone says who it was.
    """
    adapter = get_config().adapters[vendor]
    profile_key, session_key = adapter.profile_key, adapter.session_key
    if not adapter.remembers_profiles or profile_key is None or session_key is None:
        return list(events)
    users = {e.identity.user_id for e in events if e.identity.user_id}
    known = profiles.known(vendor, users) if users else {}
    events = [
        _with_id(event, profile_key, known.get(str(event.identity.user_id))) for event in events
    ]
    paired = {
        session
        for e in events
        if (session := e.identity.get(session_key)) and e.identity.get(profile_key)
    }
    owners = profiles.session_owners(vendor, paired) if paired else {}
    return [_without_foreign_session(adapter, event, owners) for event in events]


def learn(adapter: VendorAdapter, learned: Iterable[Learned], send: Send) -> None:
    """Keep what a vendor's answers taught: whose a session is, and which profiles the
    vendor lost. Runs in the request thread that got the answer (which may write), one
    at a time, so a lost profile of a known user is created again once however many
    events found it lost."""
    for fact in learned:
        if isinstance(fact, SessionOwner):
            profiles.remember_session(adapter.name, fact.session, fact.profile)
        elif isinstance(fact, ProfileGone):
            _replace_lost_profile(adapter, fact, send)


def _replace_lost_profile(adapter: VendorAdapter, gone: ProfileGone, send: Send) -> None:
    kept = profiles.get(adapter.name, gone.user_id) if gone.user_id else None
    profiles.forget(adapter.name, gone.profile)
    if gone.user_id is None or kept not in (None, gone.profile):
        return  # no user to create it for, or already created again
    new_profile = adapter.create_profile(gone.user_id, send)
    if new_profile is None:
        logger.warning(
            "vendor=%s user=%s: the vendor lost the user's profile and creating it again "
            "failed; the events retry",
            adapter.name,
            gone.user_id,
        )
        return
    profiles.remember(adapter.name, gone.user_id, new_profile)
    logger.info(
        "vendor=%s user=%s: the vendor no longer had the user's profile; created it again",
        adapter.name,
        gone.user_id,
    )


def with_remembered_profile(visitor: Identity) -> Identity:
    """``visitor`` with a remembered vendor profile when it names a user but carries
    neither that vendor's profile nor its session, so a vendor that needs one can
    still take the event.

    Only then: the sender adds remembered profiles to every event it sends
    anyway (:func:`with_known_profiles`), so the common path pays no query here.
    """
    if not visitor.user_id:
        return visitor
    config = get_config()
    for name, adapter in config.adapters.items():
        profile_key, session_key = adapter.profile_key, adapter.session_key
        if not (adapter.remembers_profiles and config.vendors[name].active and profile_key):
            continue
        if visitor.get(profile_key) or (session_key and visitor.get(session_key)):
            continue
        profile = profiles.remembered(name, visitor.user_id)
        if profile:
            return visitor.replace(**{profile_key: profile})
    return visitor


def _with_id(event: TrackedEvent, key: str, value: str | None) -> TrackedEvent:
    """``event`` carrying ``value`` under ``key`` (unchanged when ``value`` is None)."""
    if value is None or event.identity.get(key) == value:
        return event
    return event.about(event.identity.replace(**{key: value}))


def _without_foreign_session(
    adapter: type[VendorAdapter], event: TrackedEvent, owners: dict[str, str]
) -> TrackedEvent:
    profile_key, session_key = str(adapter.profile_key), str(adapter.session_key)
    session, profile = event.identity.get(session_key), event.identity.get(profile_key)
    if session is None or session not in owners or owners[session] == profile:
        return event
    logger.info(
        "event=%s vendor=%s: sent without its session, which belongs to another profile",
        event.id,
        adapter.name,
    )
    return event.about(event.identity.replace(**{session_key: None}))


#: A person's ids: (identity key, id) pairs, several per key allowed.
Ids = Sequence[tuple[str, str]]


def ids_of_person(ids: Ids) -> list[tuple[str, str]]:
    """The vendors' ids we remember for the person with ``ids``: the profiles of their
    user ids (or named among ``ids``) and the browser sessions those profiles own, as
    (identity key, id) pairs."""
    found: list[tuple[str, str]] = []
    for adapter in get_config().adapters.values():
        profile_key, session_key = adapter.profile_key, adapter.session_key
        if not adapter.remembers_profiles or profile_key is None:
            continue
        users = [value for key, value in ids if key == "user_id"]
        named = {value for key, value in ids if key == profile_key}
        owned = VendorProfile.objects.filter(vendor=adapter.name, user_id__in=users)
        profile_ids = named | set(owned.values_list("profile_id", flat=True))
        found += [(profile_key, profile) for profile in sorted(profile_ids - named)]
        if session_key is not None and profile_ids:
            sessions = VendorSession.objects.filter(
                vendor=adapter.name, profile_id__in=profile_ids
            ).values_list("session_id", flat=True)
            given = {value for key, value in ids if key == session_key}
            found += [(session_key, session) for session in sorted(set(sessions) - given)]
    return found


def delete_person(ids: Ids) -> int:
    """Delete what we remember of the person with ``ids`` (all of them: see
    :func:`ids_of_person`): their vendor profiles and the sessions' owners; how many
    rows. This process forgets them too (another process's memory of a profile is
    harmless: nothing is tracked for a forgotten person)."""
    deleted = 0
    for adapter in get_config().adapters.values():
        profile_key, session_key = adapter.profile_key, adapter.session_key
        if not adapter.remembers_profiles or profile_key is None:
            continue
        users = [value for key, value in ids if key == "user_id"]
        profile_ids = [value for key, value in ids if key == profile_key]
        sessions = [value for key, value in ids if key == session_key]
        deleted += (
            VendorProfile.objects.filter(vendor=adapter.name)
            .filter(Q(user_id__in=users) | Q(profile_id__in=profile_ids))
            .delete()[0]
        )
        deleted += (
            VendorSession.objects.filter(vendor=adapter.name)
            .filter(Q(profile_id__in=profile_ids) | Q(session_id__in=sessions))
            .delete()[0]
        )
    profiles.reset()
    return deleted

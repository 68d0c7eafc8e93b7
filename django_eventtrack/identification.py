"""``identify()``: tie a visitor to a known user, for every vendor.

An identify call is stored and delivered like any tracked event (an ``Event``
row of kind ``identify`` whose properties are the user's traits, one
``Delivery`` per vendor, written in the caller's transaction and sent after
commit), so it has the same guarantees: nothing for a rolled-back login,
retries, no lost calls. What each vendor receives is its own identify call
(see each vendor module).

Hellotext hands out a profile id of its own; :class:`DatabaseProfiles` keeps it
per user (:class:`~django_eventtrack.models.VendorProfile`) so that later
events for that user carry ``profile``, and later logins attach new sessions
to the same profile. It also keeps whose a browser session is
(:class:`~django_eventtrack.models.VendorSession`), so an event never pairs a
session with a profile it does not belong to, and it acts on what vendors'
answers teach (:func:`learn`): a profile the vendor lost is created again once.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from django.contrib.auth.signals import user_logged_in
from django.db import IntegrityError, transaction
from django.dispatch import receiver
from django.http import HttpRequest

from django_eventtrack.conf import get_config
from django_eventtrack.errors import InvalidEvent
from django_eventtrack.event import IDENTIFY, Event, Identity
from django_eventtrack.models import VendorProfile, VendorSession
from django_eventtrack.vendors import ADAPTERS, VendorAdapter
from django_eventtrack.vendors.base import Learned, ProfileGone, Send, SessionOwner

logger = logging.getLogger("django_eventtrack.identify")

#: The stored event's name; its kind, not its name, makes it an identify call.
IDENTIFY_EVENT_NAME = "identify"


def identify(
    user: Any = None,
    traits: Mapping[str, Any] | None = None,
    *,
    user_id: str | int | None = None,
    request: HttpRequest | None = None,
    identity: Identity | Mapping[str, Any] | None = None,
    timestamp: datetime | None = None,
    vendors: Iterable[str] | None = None,
) -> Event | None:
    """Tell every vendor that the current visitor is ``user``, with ``traits``.

    ``user`` is a user model instance (its ``pk`` is the user id); or pass
    ``user_id``. ``traits`` default to the user's ``IDENTIFY_TRAITS``
    attributes (email, first and last name). The visitor's browser ids come
    from ``identity``, else ``request``, else the current request, exactly as
    for :func:`~django_eventtrack.track`; the user id given here always wins.

    Returns the stored event. Errors follow ``track()``'s policy: a missing
    user id or traits that are not JSON raise :class:`InvalidEvent`, a database
    refusing the write :class:`~django_eventtrack.errors.StorageError`, unless
    ``RAISE_ON_INVALID`` / ``RAISE_ON_STORAGE_ERROR`` say to log and return
    ``None``. Never raises for a vendor problem.
    """
    # Imported here: tracking imports this module (for remembered profiles).
    from django_eventtrack.tracking import resolve_visitor, store

    def build() -> Event:
        who = _user_id(user, user_id)
        given = traits
        if given is None:
            given = user_traits(user, get_config().identify_traits) if user is not None else {}
        visitor = dataclasses.replace(resolve_visitor(identity, request), user_id=who)
        return Event.create(
            IDENTIFY_EVENT_NAME, given, identity=visitor, timestamp=timestamp, kind=IDENTIFY
        )

    return store("identify()", build, vendors)


def user_traits(user: Any, attributes: Sequence[str]) -> dict[str, Any]:
    """The ``attributes`` of ``user`` that are set (callables are called)."""
    traits = {}
    for attribute in attributes:
        value = getattr(user, attribute, None)
        if callable(value):
            value = value()
        if value not in (None, ""):
            traits[attribute] = value
    return traits


def _user_id(user: Any, user_id: str | int | None) -> str:
    if user_id is None and user is not None:
        user_id = getattr(user, "pk", None)
    if user_id is None or user_id == "":
        raise InvalidEvent(
            "identify() needs a user (a saved user instance) or user_id=", field="user_id"
        )
    # Identity validates the characters and length.
    return str(Identity(user_id=str(user_id)).user_id)


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


def with_known_profiles(vendor: str, events: Sequence[Event]) -> list[Event]:
    """``events`` as the vendor must get them, by what we remember (two queries at most
    for the whole batch):

    * an event naming a user carries the user's remembered profile (it replaces
      an older one the event was stored with, such as a profile the vendor lost
      and we created again);
    * a session that belongs to another profile than the event's is left out:
      the vendor refuses the pair, and the profile alone says who it was.
    """
    users = {e.identity.user_id for e in events if e.identity.user_id}
    known = profiles.known(vendor, users) if users else {}
    events = [_with_profile(event, known.get(str(event.identity.user_id))) for event in events]
    paired = {e.identity.session for e in events if e.identity.session and e.identity.profile}
    owners = profiles.session_owners(vendor, paired) if paired else {}
    return [_without_foreign_session(vendor, event, owners) for event in events]


def learn(adapter: VendorAdapter, learned: Iterable[Learned], send: Send) -> None:
    """Keep what a vendor's answers taught (in the sender's drain thread, which may
    write): whose a session is, and which profiles the vendor lost. A lost profile
    of a known user is created again, once however many events found it lost."""
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
    no browser id, so a vendor that needs one (Hellotext) can still take the event.

    Only then: the sender adds remembered profiles to every event it sends
    anyway (:func:`with_known_profiles`), so the common path pays no query here.
    """
    if not visitor.user_id or visitor.profile or visitor.session:
        return visitor
    config = get_config()
    for name, adapter in ADAPTERS.items():
        if adapter.remembers_profiles and config.vendors[name].active:
            profile = profiles.remembered(name, visitor.user_id)
            if profile:
                return dataclasses.replace(visitor, profile=profile)
    return visitor


def _with_profile(event: Event, profile: str | None) -> Event:
    if profile is None or event.identity.profile == profile:
        return event
    return dataclasses.replace(event, identity=dataclasses.replace(event.identity, profile=profile))


def _without_foreign_session(vendor: str, event: Event, owners: dict[str, str]) -> Event:
    session, profile = event.identity.session, event.identity.profile
    if session is None or session not in owners or owners[session] == profile:
        return event
    logger.info(
        "event=%s vendor=%s: sent without its session, which belongs to another profile",
        event.id,
        vendor,
    )
    return dataclasses.replace(event, identity=dataclasses.replace(event.identity, session=None))


@receiver(user_logged_in, dispatch_uid="django_eventtrack.identify_on_login")
def _identify_on_login(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    """``IDENTIFY_ON_LOGIN``: identify the visitor who just logged in. Never breaks a login.

    Staff and superusers are skipped unless ``IDENTIFY_STAFF``: signing in to
    the admin is not a customer's visit, and identifying it could attach a
    shopper's browser session to the staff member's profile.
    """
    config = get_config()
    if not config.identify_on_login:
        return
    if not config.identify_staff and (
        getattr(user, "is_staff", False) or getattr(user, "is_superuser", False)
    ):
        logger.debug("identify on login skipped for staff user %s (IDENTIFY_STAFF)", user.pk)
        return
    try:
        identify(user, request=request)
    except Exception:
        logger.exception("identify on login failed for user %s; the login goes on", user.pk)

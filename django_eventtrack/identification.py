"""``identify()``: tie a visitor to a known user, for every vendor.

An identify call is stored and delivered like any tracked event (an ``Event``
row of kind ``identify`` whose properties are the user's traits, one
``Delivery`` per vendor, written in the caller's transaction and sent after
commit), so it has the same guarantees: nothing for a rolled-back login,
retries, no lost calls. What each vendor receives is its own identify call
(see each vendor module).

A vendor that hands out a profile id of its own has it kept per user by
:mod:`django_eventtrack.vendor_profiles`, so that later events for that user
carry it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver
from django.http import HttpRequest

from django_eventtrack.conf import get_config
from django_eventtrack.errors import InvalidEvent
from django_eventtrack.event import IDENTIFY, Event, Identity
from django_eventtrack.tracking import asynchronous, resolve_visitor, store

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

    def build() -> Event:
        who = _user_id(user, user_id)
        given = traits
        if given is None:
            given = user_traits(user, get_config().identify_traits) if user is not None else {}
        visitor = resolve_visitor(identity, request).replace(user_id=who)
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


#: ``await aidentify(user, traits, ...)``: :func:`identify` for async code.
aidentify = asynchronous(identify)

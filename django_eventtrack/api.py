"""``track()``: record an event in the outbox, in the caller's transaction.

Nothing is sent here. The event and its routes (the vendors it goes to) are
written with the caller's data, so a rollback leaves no trace and a commit makes them durable;
only then (``transaction.on_commit``) is the delivery backend told about it.

:func:`atrack` is the async form (Django's ``a`` prefix), for async views, async
middleware and plain ``asyncio`` code (:func:`asynchronous` makes it, and
``api.aidentify``).
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, ParamSpec, TypeVar

from asgiref.sync import sync_to_async
from django.contrib.auth.signals import user_logged_in
from django.db import DatabaseError, connections, router, transaction
from django.dispatch import receiver
from django.http import HttpRequest

from django_eventtrack import signals
from django_eventtrack.conf import get_config
from django_eventtrack.core.event import IDENTIFY, NOBODY, Identity, TrackedEvent, purposes
from django_eventtrack.delivery import backends
from django_eventtrack.errors import InvalidEvent, PlanViolation, StorageError
from django_eventtrack.models import Event
from django_eventtrack.outbox import inserts, quarantine, vendor_profiles
from django_eventtrack.plan import Violation
from django_eventtrack.web.identity import current as current_identity
from django_eventtrack.web.identity import from_request, restore

logger = logging.getLogger("django_eventtrack")

P = ParamSpec("P")
R = TypeVar("R")


def track(
    name: str,
    properties: Mapping[str, Any] | None = None,
    *,
    request: HttpRequest | None = None,
    user_id: str | int | None = None,
    anonymous_id: str | None = None,
    identity: Identity | Mapping[str, Any] | None = None,
    timestamp: datetime | None = None,
    vendors: Iterable[str] | None = None,
    vendor_extra: Mapping[str, Mapping[str, Any]] | None = None,
    consent: bool | Iterable[str] | None = None,
    **vendor_ids: str | None,
) -> TrackedEvent | None:
    """Track ``name`` with ``properties`` for the given (or the request's) visitor.

    Who it is about, first match per id: the explicit id keywords (``user_id``,
    ``anonymous_id`` and the vendors' ids, named as their adapters declare:
    ``profile``, ``session``, ``device_id``...; an unknown keyword is a
    ``TypeError``); then
    ``identity`` (an :class:`Identity` or a :func:`~django_eventtrack.web.identity.snapshot`
    kept from an earlier request) if given, else ``request``'s identity if given,
    else the current request's (set by the middleware). ``identity`` replaces the
    request's identity instead of mixing with it: a staff member shipping an
    order must not lend the customer's event their own browser ids.

    ``consent`` is what the visitor granted: ``True`` (every purpose), ``False``
    (none: the visitor opted out) or the purposes granted (``["analytics"]``); a
    vendor gets the event only if every purpose it serves (its ``PURPOSES``) is
    granted. Without it the visitor's consent is the identity's (read from the
    request by the middleware, or kept in a snapshot). Purposes the person
    withdrew (:func:`~django_eventtrack.withdraw_consent`) are taken out either way,
    and nothing is stored for a person who asked to be forgotten
    (:func:`~django_eventtrack.forget`: returns None). The consent used is stored
    with the event.

    Returns the stored :class:`~django_eventtrack.core.event.TrackedEvent` (its ``id`` names
    the outbox row). Raises :class:`~django_eventtrack.errors.InvalidEvent` for a
    programming error (bad name, unserialisable properties) unless
    ``EVENTTRACK["RAISE_ON_INVALID"]`` is false, in which case it logs and
    returns ``None``. When the database refuses the write (disk full, read-only)
    it raises :class:`~django_eventtrack.errors.StorageError`, or with
    ``EVENTTRACK["RAISE_ON_STORAGE_ERROR"]`` false logs it and returns ``None``.
    It never raises for a vendor problem: vendors are only contacted after
    commit, by the delivery backend.
    """

    get_config().check_vendor_ids("track", vendor_ids)

    def build() -> TrackedEvent:
        given = {"user_id": user_id, "anonymous_id": anonymous_id, **vendor_ids}
        visitor = Identity.from_ids(given).merged(resolve_visitor(identity, request))
        visitor = with_consent(visitor, consent)
        # A user known to a vendor that keeps profiles, without its ids, gets the profile.
        visitor = vendor_profiles.with_remembered_profile(visitor)
        return TrackedEvent.create(
            name, properties, identity=visitor, timestamp=timestamp, vendor_extra=vendor_extra
        )

    return store(f"track({name!r})", build, vendors)


def with_consent(visitor: Identity, consent: bool | Iterable[str] | None) -> Identity:
    """``visitor`` with the ``consent=`` given to ``track()`` or ``identify()``, if any;
    a purpose no vendor serves is refused, as an unknown keyword would be."""
    if consent is None:
        return visitor
    granted = purposes(consent, "consent")
    known = get_config().purposes
    unknown = sorted((granted or frozenset()) - known)
    if unknown:
        raise InvalidEvent(
            f"consent names {unknown[0]!r}, which no vendor serves; the vendors' purposes are "
            f"{', '.join(sorted(known))} (each vendor's PURPOSES)",
            field="consent",
        )
    return visitor.deciding(granted)


def store(
    call: str, build: Callable[[], TrackedEvent], vendors: Iterable[str] | None
) -> TrackedEvent | None:
    """Build an event and submit it, with the settings' error policy: an
    :class:`InvalidEvent` (from ``build``, the tracking plan, or the checks against the
    settings before the write: size, ``vendor_extra``) is raised unless ``RAISE_ON_INVALID`` is
    false, a :class:`StorageError` unless ``RAISE_ON_STORAGE_ERROR`` is false; when
    false, it is logged (naming ``call``) and ``None`` returned. Shared by ``track()``
    and ``identify()``."""
    config = get_config()
    try:
        event = build()
        violations = plan_violations(event)
        stored = submit(event, vendors, violations)
    except InvalidEvent as exc:
        if config.raise_on_invalid:
            raise
        logger.error("%s refused: %s (field %s)", call, exc, exc.field)
        return None
    except StorageError as exc:
        if config.raise_on_storage_error:
            raise
        logger.error("%s not stored: %s", call, exc)
        return None
    if stored is None:  # its subject asked to be forgotten: nothing stored
        return None
    signals.event_tracked.send(TrackedEvent, event=stored, violations=tuple(violations))
    return stored


def plan_violations(event: TrackedEvent) -> list[Violation]:
    """How ``event`` breaks the tracking plan (empty without a plan, or when it follows
    it); with ``PLAN_MODE`` ``raise`` a violation raises :class:`PlanViolation` instead,
    otherwise it is logged and the event is stored with it (quarantined or sent)."""
    config = get_config()
    if config.plan is None:
        return []
    found = config.plan.violations(event.name, event.properties, identify=event.is_identify)
    if not found:
        return found
    mode = config.plan_mode()
    if mode == "raise":
        raise violation_error(event.name, found, config.plan.plan.source)
    logger.warning(
        "event=%s name=%s breaks the tracking plan (%s): %s",
        event.id,
        event.name,
        "quarantined, sent to no vendor" if mode == "quarantine" else "sent and flagged",
        "; ".join(map(str, found)),
    )
    return found


def violation_error(name: str, found: Sequence[Violation], source: str) -> PlanViolation:
    """The :class:`PlanViolation` for event ``name`` breaking the plan read from ``source``."""
    return PlanViolation(
        f"{name!r} breaks the tracking plan {source}: {'; '.join(map(str, found))}",
        event=name,
        violations=tuple(map(str, found)),
        field=found[0].field,
    )


def submit(
    event: TrackedEvent,
    vendors: Iterable[str] | None = None,
    violations: Sequence[Violation] = (),
) -> TrackedEvent | None:
    """Store an already built event and hand it to the backend once committed; the
    event as stored (its consent as decided), or None when its subject asked to be
    forgotten (nothing stored).

    ``violations`` of the tracking plan are stored with it; with ``PLAN_MODE``
    ``quarantine`` such an event is held back from every vendor. A database error
    becomes :class:`StorageError` naming the event. When ``track()`` is to log
    rather than raise it, the write gets a savepoint of its own, so a caller's
    transaction outlives the failed write.
    """
    alias = router.db_for_write(Event)
    connection = connections[alias]
    held = bool(violations) and get_config().plan_mode() == "quarantine"
    write = functools.partial(
        inserts.record,
        event,
        vendors,
        violations=violations,
        quarantined=held,
        connection=connection,
    )
    try:
        if get_config().raise_on_storage_error:
            recorded = write()
        else:
            with transaction.atomic(using=alias):
                recorded = write()
    except DatabaseError as exc:
        raise StorageError(
            f"event {event.name!r} ({event.id}) could not be stored in the outbox, so it was "
            f"not tracked: {type(exc).__name__}: {exc}"
        ) from exc
    if recorded is None:
        return None
    if not held:
        connection.on_commit(lambda: backends.notify([event.id]))
    return recorded.event


def replay_quarantined(
    event_ids: Sequence[uuid.UUID | str] | None = None,
) -> quarantine.Released:
    """Validate the quarantined events (all, or ``event_ids``) against the tracking plan
    as it is now, and route each one that passes to its vendors, once, even when two
    replays race (``manage.py eventtrack_plan --replay``, the admin's action). Raises
    :class:`~django_eventtrack.errors.ConfigurationError` when no plan is configured."""
    released = quarantine.release(event_ids)
    if released.routed:
        routed = list(released.routed)
        transaction.on_commit(lambda: backends.notify(routed), using=router.db_for_write(Event))
    return released


def resolve_visitor(
    given: Identity | Mapping[str, Any] | None, request: HttpRequest | None
) -> Identity:
    """Who an event is about: ``given``, else ``request``'s visitor, else the current
    request's."""
    if given is not None:
        return restore(given)
    if request is not None:
        return from_request(request)
    return current_identity() or NOBODY


def asynchronous(function: Callable[P, R]) -> Callable[P, Coroutine[Any, Any, R]]:
    """The async form of ``function``: the same call, with the same guarantees, run by
    ``sync_to_async`` in the thread Django gives the ORM in async code (the database
    cannot be touched from the event loop). The caller's context goes with it, so
    the current visitor set by the middleware is the event's visitor."""
    run = sync_to_async(function)

    @functools.wraps(function)
    async def call(*args: P.args, **kwargs: P.kwargs) -> R:
        return await run(*args, **kwargs)

    call.__name__ = call.__qualname__ = f"a{function.__name__}"
    call.__doc__ = f"``await`` form of :func:`{function.__module__}.{function.__name__}`."
    return call


#: ``await atrack(name, properties, ...)``: :func:`track` for async code.
atrack = asynchronous(track)


identify_logger = logging.getLogger("django_eventtrack.identify")

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
    consent: bool | Iterable[str] | None = None,
) -> TrackedEvent | None:
    """Tell every vendor that the current visitor is ``user``, with ``traits``.

    ``user`` is a user model instance (its ``pk`` is the user id); or pass
    ``user_id``. ``traits`` default to the user's ``IDENTIFY_TRAITS``
    attributes (email, first and last name). The visitor's browser ids come
    from ``identity``, else ``request``, else the current request, exactly as
    for :func:`~django_eventtrack.track`; the user id given here always wins.
    ``consent`` too is :func:`~django_eventtrack.track`'s.

    Returns the stored event. Errors follow ``track()``'s policy: a missing
    user id or traits that are not JSON raise :class:`InvalidEvent`, a database
    refusing the write :class:`~django_eventtrack.errors.StorageError`, unless
    ``RAISE_ON_INVALID`` / ``RAISE_ON_STORAGE_ERROR`` say to log and return
    ``None``. Never raises for a vendor problem.
    """

    def build() -> TrackedEvent:
        who = _user_id(user, user_id)
        given = traits
        if given is None:
            given = user_traits(user, get_config().identify_traits) if user is not None else {}
        visitor = with_consent(resolve_visitor(identity, request).replace(user_id=who), consent)
        return TrackedEvent.create(
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
        identify_logger.debug(
            "identify on login skipped for staff user %s (IDENTIFY_STAFF)", user.pk
        )
        return
    try:
        identify(user, request=request)
    except Exception:
        identify_logger.exception(
            "identify on login failed for user %s; the login goes on", user.pk
        )


#: ``await aidentify(user, traits, ...)``: :func:`identify` for async code.
aidentify = asynchronous(identify)

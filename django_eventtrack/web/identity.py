"""Who the current visitor is: capture from a request, keep for later, restore.

The middleware calls :func:`capture` on every request and makes the result the
*current identity* (a context variable) for the length of the request, so
``track()`` called from a signal handler or a service function picks it up
without being handed the request. :func:`snapshot` and :func:`restore` turn an
identity into JSON and back, to keep a visitor's identity on a model (an order
placed today, shipped next week) or to pass it to a task.

Every id read from the browser is attacker-controllable (a query string, a
cookie), so each one must be 1 to 128 characters of ``[A-Za-z0-9._:-]``;
anything else is ignored (logged at DEBUG without the value), never forwarded.
The user id only ever comes from ``request.user``, never from a cookie.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import uuid
from collections.abc import Iterator, Mapping
from contextvars import ContextVar, Token
from typing import Any
from urllib.parse import unquote

from django.http import HttpRequest

from django_eventtrack.conf import Config, IdentitySettings, get_config
from django_eventtrack.core.event import Identity
from django_eventtrack.core.settings import setting_path
from django_eventtrack.errors import InvalidEvent
from django_eventtrack.vendors.base import ANONYMOUS_ID, BrowserId
from django_eventtrack.web import consent

logger = logging.getLogger("django_eventtrack.identity")

#: Where captured browser ids are kept in the Django session.
SESSION_KEY = "_eventtrack_identity"
MAX_BROWSER_ID_LENGTH = 128
MAX_IDS_COOKIE_LENGTH = 1024
BROWSER_ID_PATTERN = re.compile(rf"[A-Za-z0-9._:\-]{{1,{MAX_BROWSER_ID_LENGTH}}}")
ANONYMOUS_ID_PATTERN = re.compile(r"[0-9a-f]{32}")
_current: ContextVar[Identity | None] = ContextVar("eventtrack_identity", default=None)


# -- settings -------------------------------------------------------------------------------


def remembered_keys(config: Config) -> tuple[str, ...]:
    """What the session keeps: our anonymous id and the ids the browser brings (the
    registry's), never the user id."""
    return (ANONYMOUS_ID, *(bid.name for bid in config.browser_ids if bid.from_browser))


def get_settings() -> IdentitySettings:
    """The identity settings (``EVENTTRACK["IDENTITY"]``), validated with the rest of
    the configuration by :func:`~django_eventtrack.conf.get_config`."""
    return get_config().identity


# -- the current identity -------------------------------------------------------------------


def current() -> Identity | None:
    """The identity of the request being handled (set by the middleware), if any."""
    return _current.get()


def set_current(identity: Identity | None) -> Token[Identity | None]:
    """Make ``identity`` current; pass the token to :func:`reset_current` in the same context."""
    return _current.set(identity)


def reset_current(token: Token[Identity | None]) -> None:
    _current.reset(token)


@contextlib.contextmanager
def use(identity: Identity | Mapping[str, Any]) -> Iterator[Identity]:
    """Make ``identity`` the current one inside the block, e.g. in a task that
    works for a visitor: ``with use(order.tracking_identity): order.ship()``
    attributes the events tracked by hooks and helpers inside to that visitor."""
    restored = restore(identity)
    token = _current.set(restored)
    try:
        yield restored
    finally:
        _current.reset(token)


def snapshot(source: HttpRequest | Identity | None = None) -> dict[str, str | bool]:
    """The identity as JSON, to store (a model's JSONField) and :func:`restore` later.

    ``source`` is a request (its captured identity), an identity, or None for
    the current one (empty outside a request).
    """
    if isinstance(source, HttpRequest):
        return from_request(source).as_dict()
    if isinstance(source, Identity):
        return source.as_dict()
    return (current() or Identity()).as_dict()


def restore(data: Identity | Mapping[str, Any] | None) -> Identity:
    """An :class:`Identity` from a :func:`snapshot` (an identity passes through).

    Raises :class:`~django_eventtrack.errors.InvalidEvent` for an unknown key or
    a malformed id.
    """
    if data is None:
        return Identity()
    if isinstance(data, Identity):
        return data
    return Identity.from_dict(data, get_config().vendor_id_names)


# -- capture --------------------------------------------------------------------------------


def from_request(request: HttpRequest) -> Identity:
    """The middleware's identity for ``request``, else what the request carries
    (read only: without the middleware no anonymous id is issued)."""
    captured = getattr(request, "eventtrack", None)
    if isinstance(captured, Identity):
        return captured
    return capture(request)


def capture(request: HttpRequest, settings: IdentitySettings | None = None) -> Identity:
    """Read the visitor's identity from ``request``, changing nothing.

    Fresh values (query string, cookies) win over those remembered in the
    session. The consent is the purposes the visitor granted
    (:mod:`~django_eventtrack.web.consent`); a visitor who granted none opted out and
    gets only the user id and ``opted_out``.
    """
    config = get_config()
    settings = settings or config.identity
    user_id = user_id_of(request, settings)
    granted = consent.granted(request, settings)
    if granted == consent.NOTHING:
        return Identity(user_id=user_id, opted_out=True)
    fresh = Identity.from_ids(
        {
            "user_id": user_id,
            "anonymous_id": anonymous_id_cookie(request, settings),
            **{bid.name: _sent(request, bid) for bid in config.browser_ids},
        }
    )
    cookie = request.COOKIES.get(settings.ids_cookie)
    from_script = Identity.from_ids(_ids_cookie(cookie, settings.ids_cookie, config.browser_ids))
    visitor = fresh.merged(from_script).merged(Identity.from_ids(remembered(request)))
    return visitor.with_consent(granted)


def user_id_of(request: HttpRequest, settings: IdentitySettings | None = None) -> str | None:
    """The logged-in user's id per ``USER_ID``; None when anonymous or not usable."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return None
    getter = (settings or get_settings()).user_id
    value = user.pk if getter is None else getter(user)
    if value is None or value == "":
        return None
    try:
        return Identity(user_id=str(value)).user_id  # str(): UUID primary keys
    except InvalidEvent:
        logger.warning(
            "the user id from %s is not a usable id (printable ASCII, no spaces, at most "
            "256 characters); events are tracked without it",
            setting_path("IDENTITY", "USER_ID"),
        )
        return None


def may_track(request: HttpRequest, settings: IdentitySettings | None = None) -> bool:
    """False when the visitor granted no purpose at all (``CONSENT``, the consent cookies,
    or with ``RESPECT_GPC`` a browser sending ``Sec-GPC: 1`` or ``DNT: 1``)."""
    return consent.granted(request, settings or get_settings()) != consent.NOTHING


def remembered(request: HttpRequest) -> dict[str, str]:
    """The browser ids kept in the Django session (each re-validated)."""
    session = getattr(request, "session", None)
    stored = session.get(SESSION_KEY) if session is not None else None
    if not isinstance(stored, Mapping):
        return {}
    keys = remembered_keys(get_config())
    values = {name: _browser_id(stored.get(name), f"session {name}") for name in keys}
    return {name: value for name, value in values.items() if value}


def remember(request: HttpRequest, identity: Identity) -> None:
    """Keep ``identity``'s browser ids in the session when they changed.

    No write (so no session save) when nothing changed, and no new session just
    for the anonymous id: its own cookie already keeps it. A visitor who opted
    out is forgotten.
    """
    session = getattr(request, "session", None)
    if session is None:
        return
    if identity.opted_out:
        if SESSION_KEY in session:
            del session[SESSION_KEY]
        return
    keys = remembered_keys(get_config())
    values = {name: value for name in keys if (value := identity.get(name))}
    if values == remembered(request):
        return
    if session.is_empty() and set(values) <= {"anonymous_id"}:
        return
    session[SESSION_KEY] = values


def new_anonymous_id() -> str:
    """A fresh first-party anonymous id: a random UUID4 as 32 hex digits."""
    return uuid.uuid4().hex


def anonymous_id_cookie(request: HttpRequest, settings: IdentitySettings) -> str | None:
    """The anonymous id cookie's value when it is one we could have issued."""
    value = request.COOKIES.get(settings.anonymous_cookie)
    if value is not None and ANONYMOUS_ID_PATTERN.fullmatch(value):
        return value
    return None


def _sent(request: HttpRequest, browser_id: BrowserId) -> str | None:
    """The id the request carries in its query parameter or, else, its cookie: a link
    that names an id (a vendor's short link) wins over what the browser kept."""
    from_query = browser_id.query and _browser_id(
        request.GET.get(browser_id.query), f"{browser_id.query} query parameter"
    )
    return from_query or (
        browser_id.cookie
        and _browser_id(request.COOKIES.get(browser_id.cookie), f"{browser_id.cookie} cookie")
    )


def _browser_id(value: object, source: str) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, str) and BROWSER_ID_PATTERN.fullmatch(value):
        return value
    logger.debug(
        "ignored the %s: not 1 to %d characters of [A-Za-z0-9._:-]", source, MAX_BROWSER_ID_LENGTH
    )
    return None


def _ids_cookie(value: str | None, name: str, browser_ids: tuple[BrowserId, ...]) -> dict[str, str]:
    """The ids ``eventtrack.js`` copied from the vendors' SDKs. Any bad value and
    the whole cookie is ignored: it is ours, so a bad one was tampered with."""
    if not value:
        return {}
    try:
        if len(value) > MAX_IDS_COOKIE_LENGTH:
            raise ValueError("too long")
        data = json.loads(unquote(value))
        if not isinstance(data, dict):
            raise ValueError("not an object")
        ids = {}
        for browser_id in browser_ids:
            key = browser_id.script_key
            item = data.get(key) if key else None
            if item is None or item == "":
                continue
            if not isinstance(item, str) or not BROWSER_ID_PATTERN.fullmatch(item):
                raise ValueError(f"bad {key}")
            ids[browser_id.name] = item
    except (ValueError, RecursionError) as exc:
        logger.debug("ignored the %s cookie: %s", name, exc)
        return {}
    return ids

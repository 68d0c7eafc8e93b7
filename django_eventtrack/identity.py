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
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from django.http import HttpRequest
from django.utils.module_loading import import_string

from django_eventtrack.conf import Config, get_config, setting_path
from django_eventtrack.errors import ConfigurationError, InvalidEvent
from django_eventtrack.event import Identity

logger = logging.getLogger("django_eventtrack.identity")

#: Hellotext.js's cookie and short-link query parameter (docs/vendors/hellotext.md).
HELLOTEXT_SESSION = "hello_session"
#: The 2020 PrimeData tracker's session cookie (docs/vendors/primedata.md).
PRIMEDATA_SESSION_COOKIE = "XSessionId"
#: Where captured browser ids are kept in the Django session.
SESSION_KEY = "_eventtrack_identity"
#: What the session keeps: our anonymous id and the vendors' browser ids, never the user id.
REMEMBERED = (
    "anonymous_id",
    "session",
    "device_id",
    "browsee_anonymous_id",
    "primedata_session_id",
)
#: Keys of the ids cookie written by ``eventtrack.js``, and the identity field each fills.
IDS_COOKIE_KEYS = {
    "hackle_device_id": "device_id",
    "browsee_anonymous_id": "browsee_anonymous_id",
    "primedata_session_id": "primedata_session_id",
}
MAX_BROWSER_ID_LENGTH = 128
MAX_IDS_COOKIE_LENGTH = 1024
BROWSER_ID_PATTERN = re.compile(rf"[A-Za-z0-9._:\-]{{1,{MAX_BROWSER_ID_LENGTH}}}")
ANONYMOUS_ID_PATTERN = re.compile(r"[0-9a-f]{32}")
COOKIE_NAME_PATTERN = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
COOKIE_DOMAIN_PATTERN = re.compile(r"\.?[A-Za-z0-9\-]+(\.[A-Za-z0-9\-]+)*")
ATTRIBUTE_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: Browsers keep a cookie at most 400 days (RFC 6265bis; Chrome and others cap Max-Age there),
#: so a longer lifetime would only promise what no browser keeps.
MAX_COOKIE_AGE = 400 * 24 * 3600

UserIdGetter = Callable[[Any], Any]
ConsentCheck = Callable[[HttpRequest], bool]

_current: ContextVar[Identity | None] = ContextVar("eventtrack_identity", default=None)


# -- settings -------------------------------------------------------------------------------


@dataclass(frozen=True)
class IdentitySettings:
    """``EVENTTRACK["IDENTITY"]``, validated."""

    anonymous_cookie: str = "eventtrack_aid"
    ids_cookie: str = "eventtrack_ids"
    cookie_max_age: int = MAX_COOKIE_AGE
    cookie_domain: str | None = None
    user_id: UserIdGetter | None = None
    consent: ConsentCheck | None = None
    respect_gpc: bool = False


SETTING_KEYS = (
    "ANONYMOUS_COOKIE",
    "IDS_COOKIE",
    "COOKIE_MAX_AGE",
    "COOKIE_DOMAIN",
    "USER_ID",
    "CONSENT",
    "RESPECT_GPC",
)

_parsed: tuple[Config, IdentitySettings] | None = None


def get_settings() -> IdentitySettings:
    """The identity settings, parsed once per resolved configuration."""
    global _parsed
    config = get_config()
    if _parsed is None or _parsed[0] is not config:
        _parsed = (config, parse_settings(config.identity))
    return _parsed[1]


def parse_settings(raw: Mapping[str, Any]) -> IdentitySettings:
    """Validate ``EVENTTRACK["IDENTITY"]``; a bad value raises ConfigurationError naming it."""
    unknown = set(raw) - set(SETTING_KEYS)
    if unknown:
        raise ConfigurationError(
            f"{setting_path('IDENTITY')} has unknown keys {sorted(unknown)}; "
            f"expected some of {list(SETTING_KEYS)}"
        )
    defaults = IdentitySettings()
    parsed = IdentitySettings(
        anonymous_cookie=_cookie_name(raw, "ANONYMOUS_COOKIE", defaults.anonymous_cookie),
        ids_cookie=_cookie_name(raw, "IDS_COOKIE", defaults.ids_cookie),
        cookie_max_age=_max_age(raw, defaults.cookie_max_age),
        cookie_domain=_cookie_domain(raw),
        user_id=_user_id(raw),
        consent=_consent(raw),
        respect_gpc=_respect_gpc(raw),
    )
    if parsed.anonymous_cookie == parsed.ids_cookie:
        raise ConfigurationError(
            f"{setting_path('IDENTITY', 'ANONYMOUS_COOKIE')} and "
            f"{setting_path('IDENTITY', 'IDS_COOKIE')} must name different cookies"
        )
    return parsed


def _where(key: str) -> str:
    return setting_path("IDENTITY", key)


def _cookie_name(raw: Mapping[str, Any], key: str, default: str) -> str:
    value = raw.get(key)
    if value is None:
        return default
    if not isinstance(value, str) or not COOKIE_NAME_PATTERN.fullmatch(value):
        raise ConfigurationError(
            f"{_where(key)} must be a cookie name of letters, digits, _ . and -, got {value!r}"
        )
    return value


def _max_age(raw: Mapping[str, Any], default: int) -> int:
    value = raw.get("COOKIE_MAX_AGE")
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(
            f"{_where('COOKIE_MAX_AGE')} must be a positive whole number of seconds, got {value!r}"
        )
    if value > MAX_COOKIE_AGE:
        raise ConfigurationError(
            f"{_where('COOKIE_MAX_AGE')} must be at most {MAX_COOKIE_AGE} seconds (400 days: "
            f"browsers keep no cookie longer), got {value!r}"
        )
    return value


def _cookie_domain(raw: Mapping[str, Any]) -> str | None:
    value = raw.get("COOKIE_DOMAIN")
    if value is None:
        return None
    if not isinstance(value, str) or not COOKIE_DOMAIN_PATTERN.fullmatch(value):
        raise ConfigurationError(
            f"{_where('COOKIE_DOMAIN')} must be None or a domain like '.example.com', got {value!r}"
        )
    return value


def _user_id(raw: Mapping[str, Any]) -> UserIdGetter | None:
    """None means ``user.pk``; a bare name an attribute; a dotted path a callable(user)."""
    value = raw.get("USER_ID")
    if value is None or value == "pk":
        return None
    if callable(value):
        return value  # type: ignore[no-any-return]
    if isinstance(value, str) and ATTRIBUTE_PATTERN.fullmatch(value):
        attribute = value
        return lambda user: getattr(user, attribute, None)
    if isinstance(value, str) and "." in value:
        return _import_callable("USER_ID", value)
    raise ConfigurationError(
        f"{_where('USER_ID')} must be 'pk', another attribute of the user (e.g. 'uuid') or "
        f"a dotted path to a function(user) returning the id, got {value!r}"
    )


def _consent(raw: Mapping[str, Any]) -> ConsentCheck | None:
    value = raw.get("CONSENT")
    if value is None:
        return None
    if callable(value):
        return value  # type: ignore[no-any-return]
    if isinstance(value, str):
        return _import_callable("CONSENT", value)
    raise ConfigurationError(
        f"{_where('CONSENT')} must be None or a dotted path to a function(request) returning "
        f"True when the visitor may be tracked, got {value!r}"
    )


def _respect_gpc(raw: Mapping[str, Any]) -> bool:
    value = raw.get("RESPECT_GPC", False)
    if not isinstance(value, bool):
        raise ConfigurationError(f"{_where('RESPECT_GPC')} must be True or False, got {value!r}")
    return value


def _import_callable(key: str, path: str) -> Callable[..., Any]:
    try:
        target = import_string(path)
    except ImportError as exc:
        raise ConfigurationError(f"{_where(key)}: cannot import {path!r} ({exc})") from None
    if not callable(target):
        raise ConfigurationError(f"{_where(key)}: {path!r} is not callable")
    return target  # type: ignore[no-any-return]


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
    return Identity.from_dict(data)


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
    session. An opted-out visitor gets only the user id and ``opted_out``.
    """
    settings = settings or get_settings()
    user_id = user_id_of(request, settings)
    if not may_track(request, settings):
        return Identity(user_id=user_id, opted_out=True)
    fresh = Identity(
        user_id=user_id,
        anonymous_id=anonymous_id_cookie(request, settings),
        session=_hellotext_session(request),
        primedata_session_id=_browser_id(
            request.COOKIES.get(PRIMEDATA_SESSION_COOKIE), f"{PRIMEDATA_SESSION_COOKIE} cookie"
        ),
    )
    from_script = _ids_cookie(request.COOKIES.get(settings.ids_cookie), settings.ids_cookie)
    return fresh.merged(Identity.from_dict(from_script)).merged(
        Identity.from_dict(remembered(request))
    )


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
            _where("USER_ID"),
        )
        return None


def may_track(request: HttpRequest, settings: IdentitySettings | None = None) -> bool:
    """False when ``CONSENT`` says no, or (with ``RESPECT_GPC``) the browser sends
    ``Sec-GPC: 1`` or ``DNT: 1``."""
    settings = settings or get_settings()
    if settings.respect_gpc and "1" in (request.headers.get("Sec-GPC"), request.headers.get("DNT")):
        return False
    return settings.consent is None or bool(settings.consent(request))


def remembered(request: HttpRequest) -> dict[str, str]:
    """The browser ids kept in the Django session (each re-validated)."""
    session = getattr(request, "session", None)
    stored = session.get(SESSION_KEY) if session is not None else None
    if not isinstance(stored, Mapping):
        return {}
    values = {name: _browser_id(stored.get(name), f"session {name}") for name in REMEMBERED}
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
    values = {name: value for name in REMEMBERED if (value := getattr(identity, name))}
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


def _hellotext_session(request: HttpRequest) -> str | None:
    """The query parameter wins over the cookie, as in Hellotext.js: a short link
    names the session the visitor came from."""
    return _browser_id(
        request.GET.get(HELLOTEXT_SESSION), f"{HELLOTEXT_SESSION} query parameter"
    ) or _browser_id(request.COOKIES.get(HELLOTEXT_SESSION), f"{HELLOTEXT_SESSION} cookie")


def _browser_id(value: object, source: str) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, str) and BROWSER_ID_PATTERN.fullmatch(value):
        return value
    logger.debug(
        "ignored the %s: not 1 to %d characters of [A-Za-z0-9._:-]", source, MAX_BROWSER_ID_LENGTH
    )
    return None


def _ids_cookie(value: str | None, name: str) -> dict[str, str]:
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
        for key, field_name in IDS_COOKIE_KEYS.items():
            item = data.get(key)
            if item is None or item == "":
                continue
            if not isinstance(item, str) or not BROWSER_ID_PATTERN.fullmatch(item):
                raise ValueError(f"bad {key}")
            ids[field_name] = item
    except (ValueError, RecursionError) as exc:
        logger.debug("ignored the %s cookie: %s", name, exc)
        return {}
    return ids

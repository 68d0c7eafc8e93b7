"""Settings, resolved in one place.

Every value is looked up in the same order: the ``EVENTTRACK`` dict in Django
settings, then an ``EVENTTRACK_*`` environment variable (read with
django-environ), then the default. Anything missing or malformed raises
:class:`~django_eventtrack.errors.ConfigurationError` naming both the setting
and the environment variable, so the fix is obvious whichever one you use.

The resolved configuration is cached and rebuilt when a test changes
settings (Django's ``setting_changed`` signal) or when :func:`reload` is called.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar
from urllib.parse import urlsplit

import environ
from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import Signal, receiver
from django.http import HttpRequest
from django.utils.module_loading import import_string

from django_eventtrack.core.names import env_name as env_name
from django_eventtrack.core.names import parse_bool as _parse_bool
from django_eventtrack.core.names import parse_names as parse_names
from django_eventtrack.core.names import setting_path as setting_path
from django_eventtrack.errors import ConfigurationError
from django_eventtrack.vendors import BUILT_IN
from django_eventtrack.vendors.base import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_READ_TIMEOUT,
    BrowserId,
    VendorAdapter,
    visitor_ids,
)
from django_eventtrack.vendors.base import VendorConfig as VendorConfig

T = TypeVar("T")

DEFAULT_DELIVERY = "thread"
#: Browsers keep a cookie at most 400 days (RFC 6265bis; Chrome and others cap Max-Age there),
#: so a longer lifetime would only promise what no browser keeps.
MAX_COOKIE_AGE = 400 * 24 * 3600
#: Django's Tasks framework's default queue (``DEFAULT_TASK_QUEUE_NAME``), which every
#: Tasks backend accepts unless its ``QUEUES`` says otherwise.
DEFAULT_TASKS_QUEUE = "default"
#: User attributes sent as traits by ``identify(user)`` and the login hook.
DEFAULT_IDENTIFY_TRAITS = ("email", "first_name", "last_name")

#: Keys a vendor's dict may hold besides its credentials.
VENDOR_OPTIONS = frozenset(
    {
        "API_URL",
        "EVENTS",
        "EVENT_NAMES",
        "TIMEOUT",
        "CONNECT_TIMEOUT",
        "MAX_ATTEMPTS",
        "MAX_AGE",
        "ENABLED",
        "IDENTIFY",
    }
)


@dataclass(frozen=True)
class DeliveryOptions:
    """How the outbox is drained; the same for every backend."""

    #: Seconds a claimed delivery stays reserved for its sender; after that a
    #: crashed sender's rows are due again.
    lease_seconds: float = 60.0
    #: Deliveries claimed per vendor per round (PrimeData sends them 500 to a request).
    batch_size: int = 100
    #: Requests in flight per vendor when a sender starts (PrimeData batches count
    #: as one); it then adapts to the vendor's answers, between...
    concurrency: int = 4
    #: ...this many, to which refusals (429, 5xx, timeouts) halve it...
    min_concurrency: int = 1
    #: ...and this many, to which fast answers raise it.
    max_concurrency: int = 32
    #: Exponential backoff: first retry after up to this many seconds, doubling...
    retry_backoff_base: float = 2.0
    #: ...up to this cap; the actual wait is drawn uniformly below it (full jitter).
    retry_backoff_max: float = 1800.0
    #: Consecutive retryable failures after which a vendor is paused...
    circuit_breaker_threshold: int = 5
    #: ...for this many seconds.
    circuit_breaker_pause: float = 30.0
    #: How long the ``thread`` backend may hold up interpreter exit, in seconds.
    shutdown_timeout: float = 5.0
    #: How often an idle worker looks for due deliveries, in seconds.
    poll_interval: float = 1.0
    #: The most of a process's time the ``thread`` backend's sender takes while the
    #: process serves requests (one in progress, or ended within ``Share.LINGER``; 1 or
    #: more: no limit); the rest of the time it sends at full speed.
    sender_share: float = 0.05
    #: ``eventtrack_purge`` removes delivered, failed and skipped rows older than this (days).
    retention_days: float = 30.0

    @property
    def concurrency_range(self) -> tuple[int, int]:
        """The fewest and the most requests in flight per vendor; ``CONCURRENCY`` lies within."""
        return (
            min(self.min_concurrency, self.concurrency),
            max(self.max_concurrency, self.concurrency),
        )


#: Top-level keys of ``EVENTTRACK``.
TOP_LEVEL_KEYS = frozenset(
    {"ADAPTERS", "VENDORS", "DELIVERY", "RAISE_ON_INVALID", "IDENTITY", "MODEL_EVENTS"}
    | {"RAISE_ON_STORAGE_ERROR", "SCRUB_DELIVERED", "REDACT_KEYS"}
    | {"IDENTIFY_ON_LOGIN", "IDENTIFY_TRAITS", "IDENTIFY_STAFF"}
    | {"BLOCK_HTTP"}
    | {"CELERY_QUEUE", "TASKS_QUEUE"}
    | {"METRICS_TOKEN"}
    | {option.name.upper() for option in fields(DeliveryOptions)}
)

_env = environ.Env()

COOKIE_NAME_PATTERN = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
COOKIE_DOMAIN_PATTERN = re.compile(r"\.?[A-Za-z0-9\-]+(\.[A-Za-z0-9\-]+)*")
ATTRIBUTE_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

UserIdGetter = Callable[[Any], Any]
ConsentCheck = Callable[[HttpRequest], bool]


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


@dataclass(frozen=True)
class Config:
    """The whole resolved ``EVENTTRACK`` configuration."""

    #: ``ADAPTERS``: the vendor registry, name -> adapter class, in settings order.
    adapters: Mapping[str, type[VendorAdapter]]
    vendors: Mapping[str, VendorConfig]
    delivery: str
    raise_on_invalid: bool
    options: DeliveryOptions = field(default_factory=DeliveryOptions)
    #: ``EVENTTRACK["IDENTITY"]``: cookies, user id and consent (:mod:`.identity` uses them).
    identity: IdentitySettings = field(default_factory=IdentitySettings)
    #: ``EVENTTRACK["MODEL_EVENTS"]``, a list of dicts; :mod:`django_eventtrack.hooks` parses
    #: each entry with this module's conventions (parsers taking where to fix the value, a
    #: ConfigurationError naming it), keeping a bad entry out instead of failing here.
    model_events: tuple[Mapping[str, Any], ...] = ()
    #: ``CELERY_QUEUE``: the queue the ``celery`` backend sends its tasks to; empty lets
    #: Celery route them (``task_routes``, else ``task_default_queue``).
    celery_queue: str = ""
    #: ``TASKS_QUEUE``: the Tasks framework queue the ``tasks`` backend enqueues on.
    tasks_queue: str = DEFAULT_TASKS_QUEUE
    #: ``IDENTIFY_ON_LOGIN``: call ``identify()`` from ``user_logged_in`` (off by default).
    identify_on_login: bool = False
    #: ``IDENTIFY_TRAITS``: the user attributes that become traits.
    identify_traits: tuple[str, ...] = DEFAULT_IDENTIFY_TRAITS
    #: ``IDENTIFY_STAFF``: let ``IDENTIFY_ON_LOGIN`` identify staff and superusers too
    #: (off by default: an admin signing in is not a customer).
    identify_staff: bool = False
    #: ``RAISE_ON_STORAGE_ERROR``: ``track()`` raises ``StorageError`` when the database
    #: refuses the write (full, read-only); false logs it and returns None.
    raise_on_storage_error: bool = True
    #: ``SCRUB_DELIVERED``: empty an event's properties once every delivery is final.
    scrub_delivered: bool = False
    #: ``REDACT_KEYS``: property keys (at any depth) masked once every delivery is final.
    redact_keys: frozenset[str] = frozenset()
    #: ``BLOCK_HTTP``: send nothing at all; every attempt is ``skipped`` (test settings).
    block_http: bool = False
    #: ``METRICS_TOKEN``: the bearer token a Prometheus scrape presents to ``metrics_view``
    #: (empty: staff only).
    metrics_token: str = field(default="", repr=False)

    @property
    def active_vendors(self) -> dict[str, VendorConfig]:
        return {name: vendor for name, vendor in self.vendors.items() if vendor.active}

    @functools.cached_property
    def browser_ids(self) -> tuple[BrowserId, ...]:
        """Every vendor's browser ids, in registry order."""
        return tuple(bid for adapter in self.adapters.values() for bid in adapter.browser_ids)

    @functools.cached_property
    def vendor_id_names(self) -> tuple[str, ...]:
        """The identity keys the vendors declare (``track()``'s id keywords)."""
        return tuple(browser_id.name for browser_id in self.browser_ids)

    def adapter(self, name: str) -> VendorAdapter:
        """Vendor ``name``'s adapter with its settings."""
        return self.adapters[name](self.vendors[name])


def lookup(
    section: Mapping[str, Any],
    key: str,
    *,
    path: tuple[str, ...],
    parse: Callable[[Any, str], T],
    default: T,
    literal: bool = False,
) -> T:
    """The one lookup: ``section[key]``, else the environment variable, else ``default``.

    ``parse(raw, where)`` converts and validates the raw value; ``where`` names
    both places to fix it, for the error message. ``literal`` reads the variable
    exactly as set (credentials): django-environ would take a value starting with
    ``$`` for the name of another variable and substitute that one's value.
    """
    where = f"{setting_path(*path, key)} (or environment variable {env_name(*path[1:], key)})"
    if key in section and section[key] is not None:
        return parse(section[key], where)
    variable = env_name(*path[1:], key)
    if variable in os.environ:
        return parse(os.environ[variable] if literal else _env.str(variable), where)
    return default


#: ``EVENTTRACK`` keys that only the settings can hold (dicts and lists), never a variable.
SETTINGS_ONLY_KEYS = frozenset({"VENDORS", "IDENTITY", "MODEL_EVENTS"})


def environment_variables(config: Config) -> frozenset[str]:
    """Every ``EVENTTRACK_*`` variable :func:`lookup` may read (check W006 compares)."""
    names = {env_name(key) for key in TOP_LEVEL_KEYS - SETTINGS_ONLY_KEYS}
    for vendor, adapter in config.adapters.items():
        own = (*adapter.credential_settings, *VENDOR_OPTIONS, *adapter.own_settings)
        names |= {env_name(vendor, key) for key in own}
    return frozenset(names)


def get_config() -> Config:
    """The resolved configuration (cached; see :func:`reload`)."""
    return _build_config()


@functools.cache
def _build_config() -> Config:
    raw = getattr(settings, "EVENTTRACK", {}) or {}
    if not isinstance(raw, Mapping):
        raise ConfigurationError(
            f"EVENTTRACK must be a dict, got {type(raw).__name__}; see the settings "
            "reference, docs/settings.md"
        )
    unknown = set(raw) - TOP_LEVEL_KEYS
    if unknown:
        raise ConfigurationError(
            f"EVENTTRACK has unknown keys {sorted(unknown)}; "
            f"expected some of {sorted(TOP_LEVEL_KEYS)}"
        )
    names = lookup(raw, "ADAPTERS", path=(), parse=_parse_adapter_names, default=tuple(BUILT_IN))
    adapters = _load_adapters(names)
    vendors_raw = raw.get("VENDORS") or {}
    if not isinstance(vendors_raw, Mapping):
        raise ConfigurationError('EVENTTRACK["VENDORS"] must be a dict of vendor name to settings')
    unknown = set(vendors_raw) - set(adapters)
    if unknown:
        raise ConfigurationError(
            f'EVENTTRACK["VENDORS"] names unknown vendors {sorted(unknown)}; '
            f"the vendors are {sorted(adapters)} (add others to {setting_path('ADAPTERS')})"
        )
    visitors = visitor_ids([bid for adapter in adapters.values() for bid in adapter.browser_ids])
    vendors = {
        name: _vendor_config(name, vendors_raw.get(name) or {}, adapter, visitors)
        for name, adapter in adapters.items()
    }
    return Config(
        adapters=adapters,
        vendors=vendors,
        delivery=lookup(raw, "DELIVERY", path=(), parse=_parse_delivery, default=DEFAULT_DELIVERY),
        raise_on_invalid=lookup(raw, "RAISE_ON_INVALID", path=(), parse=_parse_bool, default=True),
        options=_delivery_options(raw),
        identity=parse_identity(_section(raw, "IDENTITY")),
        model_events=_model_events(raw),
        celery_queue=lookup(raw, "CELERY_QUEUE", path=(), parse=_parse_queue, default=""),
        tasks_queue=lookup(
            raw, "TASKS_QUEUE", path=(), parse=_parse_queue, default=DEFAULT_TASKS_QUEUE
        ),
        identify_on_login=lookup(
            raw, "IDENTIFY_ON_LOGIN", path=(), parse=_parse_bool, default=False
        ),
        identify_traits=lookup(
            raw, "IDENTIFY_TRAITS", path=(), parse=_parse_traits, default=DEFAULT_IDENTIFY_TRAITS
        ),
        identify_staff=lookup(raw, "IDENTIFY_STAFF", path=(), parse=_parse_bool, default=False),
        raise_on_storage_error=lookup(
            raw, "RAISE_ON_STORAGE_ERROR", path=(), parse=_parse_bool, default=True
        ),
        scrub_delivered=lookup(raw, "SCRUB_DELIVERED", path=(), parse=_parse_bool, default=False),
        redact_keys=lookup(
            raw, "REDACT_KEYS", path=(), parse=_parse_keys, default=frozenset[str]()
        ),
        block_http=lookup(raw, "BLOCK_HTTP", path=(), parse=_parse_bool, default=False),
        metrics_token=lookup(
            raw, "METRICS_TOKEN", path=(), parse=_parse_bearer_token, default="", literal=True
        ),
    )


def _section(raw: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = raw.get(key) or {}
    if not isinstance(value, Mapping):
        raise ConfigurationError(f"{setting_path(key)} must be a dict")
    return value


def _model_events(raw: Mapping[str, Any]) -> tuple[Mapping[str, Any], ...]:
    value = raw.get("MODEL_EVENTS") or ()
    if not isinstance(value, list | tuple) or not all(isinstance(v, Mapping) for v in value):
        raise ConfigurationError(
            f"{setting_path('MODEL_EVENTS')} must be a list of dicts like "
            '{"model": "shop.Order", "on": "create", "event": "order.placed"}'
        )
    return tuple(value)


def _delivery_options(raw: Mapping[str, Any]) -> DeliveryOptions:
    defaults = DeliveryOptions()
    values = {}
    for option in fields(DeliveryOptions):
        default = getattr(defaults, option.name)
        parse = _parse_count if isinstance(default, int) else _parse_seconds
        values[option.name] = lookup(
            raw, option.name.upper(), path=(), parse=parse, default=default
        )
    if values["min_concurrency"] > values["max_concurrency"]:
        raise ConfigurationError(
            f"{setting_path('MIN_CONCURRENCY')} ({values['min_concurrency']}) must not exceed "
            f"{setting_path('MAX_CONCURRENCY')} ({values['max_concurrency']})"
        )
    return DeliveryOptions(**values)


def _vendor_config(
    name: str, raw: Mapping[str, Any], adapter: type[VendorAdapter], visitors: tuple[str, ...]
) -> VendorConfig:
    path = ("VENDORS", name)
    if not isinstance(raw, Mapping):
        raise ConfigurationError(f"{setting_path(*path)} must be a dict of settings")
    credential_keys = adapter.credential_settings
    own_settings = adapter.own_settings
    unknown = set(raw) - VENDOR_OPTIONS - set(credential_keys) - set(own_settings)
    if unknown:
        raise ConfigurationError(
            f"{setting_path(*path)} has unknown keys {sorted(unknown)}; expected credentials "
            f"{list(credential_keys)} and options {sorted(VENDOR_OPTIONS | set(own_settings))}"
        )
    credentials = {
        key: lookup(raw, key, path=path, parse=_parse_secret, default="", literal=True)
        for key in credential_keys
    }
    present = [key for key, value in credentials.items() if value]
    if present and len(present) != len(credential_keys):
        missing = next(key for key in credential_keys if not credentials[key])
        raise ConfigurationError(
            f"{adapter.display_name} is half configured: {', '.join(present)} is set but "
            f"{missing} is not; set {setting_path(*path, missing)} or environment variable "
            f"{env_name(name, missing)} (or remove the others to turn {adapter.display_name} off)"
        )
    enabled = lookup(raw, "ENABLED", path=path, parse=_parse_bool, default=True)
    connect_timeout = lookup(
        raw, "CONNECT_TIMEOUT", path=path, parse=_parse_timeout, default=DEFAULT_CONNECT_TIMEOUT
    )
    return VendorConfig(
        name=name,
        credentials=credentials,
        api_url=lookup(
            raw, "API_URL", path=path, parse=_parse_url, default=adapter.default_api_url
        ),
        events=lookup(raw, "EVENTS", path=path, parse=parse_names, default=None),
        event_names=lookup(
            raw, "EVENT_NAMES", path=path, parse=_parse_event_names, default=dict[str, str]()
        ),
        connect_timeout=connect_timeout,
        read_timeout=lookup(
            raw, "TIMEOUT", path=path, parse=_parse_timeout, default=DEFAULT_READ_TIMEOUT
        ),
        max_attempts=lookup(
            raw, "MAX_ATTEMPTS", path=path, parse=_parse_count, default=DEFAULT_MAX_ATTEMPTS
        ),
        max_age=lookup(
            raw, "MAX_AGE", path=path, parse=_parse_seconds, default=adapter.default_max_age
        ),
        identify=lookup(raw, "IDENTIFY", path=path, parse=_parse_bool, default=True),
        active=bool(present) and enabled,
        options={
            key: lookup(raw, key, path=path, parse=parse, default=default)
            for key, (parse, default) in own_settings.items()
        },
        visitor_ids=visitors,
    )


# -- EVENTTRACK["IDENTITY"] ------------------------------------------------------------------


IDENTITY_KEYS = (
    "ANONYMOUS_COOKIE",
    "IDS_COOKIE",
    "COOKIE_MAX_AGE",
    "COOKIE_DOMAIN",
    "USER_ID",
    "CONSENT",
    "RESPECT_GPC",
)


def parse_identity(raw: Mapping[str, Any]) -> IdentitySettings:
    """Validate ``EVENTTRACK["IDENTITY"]``; a bad value raises ConfigurationError naming it."""
    unknown = set(raw) - set(IDENTITY_KEYS)
    if unknown:
        raise ConfigurationError(
            f"{setting_path('IDENTITY')} has unknown keys {sorted(unknown)}; "
            f"expected some of {list(IDENTITY_KEYS)}"
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


def _identity_key(key: str) -> str:
    return setting_path("IDENTITY", key)


def _cookie_name(raw: Mapping[str, Any], key: str, default: str) -> str:
    value = raw.get(key)
    if value is None:
        return default
    if not isinstance(value, str) or not COOKIE_NAME_PATTERN.fullmatch(value):
        raise ConfigurationError(
            f"{_identity_key(key)} must be a cookie name of letters, digits, _ . and -, "
            f"got {value!r}"
        )
    return value


def _max_age(raw: Mapping[str, Any], default: int) -> int:
    value = raw.get("COOKIE_MAX_AGE")
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(
            f"{_identity_key('COOKIE_MAX_AGE')} must be a positive whole number of seconds, "
            f"got {value!r}"
        )
    if value > MAX_COOKIE_AGE:
        raise ConfigurationError(
            f"{_identity_key('COOKIE_MAX_AGE')} must be at most {MAX_COOKIE_AGE} seconds "
            f"(400 days: browsers keep no cookie longer), got {value!r}"
        )
    return value


def _cookie_domain(raw: Mapping[str, Any]) -> str | None:
    value = raw.get("COOKIE_DOMAIN")
    if value is None:
        return None
    if not isinstance(value, str) or not COOKIE_DOMAIN_PATTERN.fullmatch(value):
        raise ConfigurationError(
            f"{_identity_key('COOKIE_DOMAIN')} must be None or a domain like '.example.com', "
            f"got {value!r}"
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
        f"{_identity_key('USER_ID')} must be 'pk', another attribute of the user (e.g. 'uuid') or "
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
        f"{_identity_key('CONSENT')} must be None or a dotted path to a function(request) "
        f"returning True when the visitor may be tracked, got {value!r}"
    )


def _respect_gpc(raw: Mapping[str, Any]) -> bool:
    value = raw.get("RESPECT_GPC", False)
    if not isinstance(value, bool):
        raise ConfigurationError(
            f"{_identity_key('RESPECT_GPC')} must be True or False, got {value!r}"
        )
    return value


def _import_callable(key: str, path: str) -> Callable[..., Any]:
    return parse_callable(path, _identity_key(key))


def parse_callable(value: Any, where: str) -> Callable[..., Any]:
    """A callable, or the dotted path of one (imported now): ``IDENTITY``'s ``USER_ID`` and
    ``CONSENT``, a ``MODEL_EVENTS`` hook's ``properties`` and ``identity``."""
    if callable(value):
        return value  # type: ignore[no-any-return]
    if not isinstance(value, str) or not value:
        raise ConfigurationError(
            f"{where}: must be a callable or a dotted path to one; got {value!r}"
        )
    try:
        found = import_string(value)
    except Exception as exc:
        raise ConfigurationError(f"{where}: cannot import {value!r}: {exc}") from None
    if not callable(found):
        raise ConfigurationError(f"{where}: {value!r} is a {type(found).__name__}, not a callable")
    return found  # type: ignore[no-any-return]


# -- parsers: (raw value, where to fix it) -> value ---------------------------


def _parse_secret(value: Any, where: str) -> str:
    """A credential as given, surrounding whitespace aside: ``$``, ``\\``, quotes and
    inner spaces are the secret's own. Control characters (a pasted line break) would
    end an HTTP header early, so they are refused."""
    if not isinstance(value, str):
        raise ConfigurationError(f"{where} must be a string, got {type(value).__name__}")
    secret: str = value.strip()
    if not secret.isprintable():
        raise ConfigurationError(
            f"{where} contains a control character (a line break or tab?); remove it"
        )
    return secret


def _parse_bearer_token(value: Any, where: str) -> str:
    """A secret a client presents as ``Authorization: Bearer <token>``: one word."""
    token = _parse_secret(value, where)
    if any(character.isspace() for character in token):
        raise ConfigurationError(
            f"{where} contains whitespace; a bearer token is one word (letters, digits, "
            "punctuation)"
        )
    return token


def _parse_url(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ConfigurationError(f"{where} must be a URL string, got {type(value).__name__}")
    parts = urlsplit(value.strip())
    if "@" in parts.netloc:
        # Never echoed: the part before "@" would be a password.
        raise ConfigurationError(
            f"{where} must not contain credentials (user:password@); put them in the "
            "vendor's credential settings"
        )
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(
            f"{where} must be an http(s) URL with a host, like https://api.example.com; "
            f"got {value!r}"
        )
    if parts.query or parts.fragment:
        raise ConfigurationError(f"{where} must not have a query string or fragment")
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


def _parse_timeout(value: Any, where: str) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ConfigurationError(f"{where} must be a number of seconds, got {value!r}") from None
    if not 0 < seconds <= 300:
        raise ConfigurationError(f"{where} must be between 0 and 300 seconds, got {value!r}")
    return seconds


def _parse_count(value: Any, where: str) -> int:
    try:
        count = int(value)
    except (TypeError, ValueError):
        raise ConfigurationError(f"{where} must be a whole number, got {value!r}") from None
    if count < 1 or isinstance(value, bool):
        raise ConfigurationError(f"{where} must be at least 1, got {value!r}")
    return count


def _parse_seconds(value: Any, where: str) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ConfigurationError(f"{where} must be a number, got {value!r}") from None
    if not seconds > 0 or seconds == float("inf"):
        raise ConfigurationError(f"{where} must be a positive number, got {value!r}")
    return seconds


def _parse_traits(value: Any, where: str) -> tuple[str, ...]:
    names = value.split(",") if isinstance(value, str) else value
    if not isinstance(names, list | tuple) or not all(
        isinstance(name, str) and name.strip().isidentifier() for name in names
    ):
        raise ConfigurationError(
            f"{where} must be a list of user attribute names like "
            '["email", "first_name"] (or "email,first_name" in the environment)'
        )
    return tuple(name.strip() for name in names)


def _parse_keys(value: Any, where: str) -> frozenset[str]:
    keys = value.split(",") if isinstance(value, str) else value
    if not isinstance(keys, list | tuple | set | frozenset) or not all(
        isinstance(key, str) for key in keys
    ):
        raise ConfigurationError(
            f'{where} must be a list of property keys like ["email", "phone"] '
            '(or "email,phone" in the environment)'
        )
    return frozenset(key.strip() for key in keys if key.strip())


def _parse_event_names(value: Any, where: str) -> dict[str, str]:
    if isinstance(value, str):
        value = _parse_pairs(value, where)
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) and v for k, v in value.items()
    ):
        raise ConfigurationError(
            f"{where} must map our event names to the vendor's, like "
            '{"product.purchased": "purchase"} (or "product.purchased=purchase,..." in the '
            "environment)"
        )
    return dict(value)


def _parse_pairs(value: str, where: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in value.split(","))):
        ours, sep, theirs = item.partition("=")
        if not sep:
            raise ConfigurationError(f"{where}: {item!r} is not NAME=VENDOR_NAME")
        pairs[ours.strip()] = theirs.strip()
    return pairs


def _parse_adapter_names(value: Any, where: str) -> tuple[str, ...]:
    """``ADAPTERS``: built-in vendors by name, others by the dotted path of their
    :class:`~django_eventtrack.vendors.base.VendorAdapter` subclass."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(item, str) for item in items):
        raise ConfigurationError(
            f"{where} must be a list of vendor names ({', '.join(BUILT_IN)}) or dotted paths "
            "to VendorAdapter subclasses"
        )
    return tuple(filter(None, (item.strip() for item in items)))


def _load_adapters(names: tuple[str, ...]) -> dict[str, type[VendorAdapter]]:
    """The vendor registry: the adapter classes ``ADAPTERS`` names, in its order."""
    where = f"{setting_path('ADAPTERS')} (or environment variable {env_name('ADAPTERS')})"
    adapters: dict[str, type[VendorAdapter]] = {}
    for item in names:
        adapter = _import_adapter(BUILT_IN.get(item, item), where)
        if adapter.name in adapters:
            raise ConfigurationError(f"{where} names the vendor {adapter.name!r} twice")
        adapters[adapter.name] = adapter
    _check_browser_ids(adapters, where)
    return adapters


def _import_adapter(path: str, where: str) -> type[VendorAdapter]:
    try:
        adapter = import_string(path)
    except ImportError as exc:
        raise ConfigurationError(f"{where}: cannot import {path!r} ({exc})") from None
    if not (isinstance(adapter, type) and issubclass(adapter, VendorAdapter)):
        raise ConfigurationError(f"{where}: {path!r} is not a VendorAdapter subclass")
    if not re.fullmatch(r"[a-z][a-z0-9]*", getattr(adapter, "name", "")):
        raise ConfigurationError(
            f"{where}: {path!r} must set name to a lowercase word (it is the vendor's key in "
            f"{setting_path('VENDORS')} and in environment variables)"
        )
    return adapter


def _check_browser_ids(adapters: Mapping[str, type[VendorAdapter]], where: str) -> None:
    """Browser id names are identity keys: unique, and not a core key."""
    seen: dict[str, str] = dict.fromkeys(("user_id", "anonymous_id", "opted_out"), "the core")
    for name, adapter in adapters.items():
        for browser_id in adapter.browser_ids:
            if browser_id.name in seen:
                raise ConfigurationError(
                    f"{where}: {name}'s browser id {browser_id.name!r} is already "
                    f"{seen[browser_id.name]}'s"
                )
            if "</" in (browser_id.script or "") + (browser_id.script_ready or ""):
                raise ConfigurationError(f"{where}: {name}'s browser script contains '</'")
            seen[browser_id.name] = name


def _parse_delivery(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(
            f"{where} must name a delivery backend (sync, thread, worker, celery, tasks, "
            "capture) or a dotted path to one"
        )
    return value.strip()


def _parse_queue(value: Any, where: str) -> str:
    name = value.strip() if isinstance(value, str) else ""
    if not re.fullmatch(r"[A-Za-z0-9_.:-]{1,100}", name):
        raise ConfigurationError(
            f"{where} must be a queue name of letters, digits and _ . : - "
            f"(at most 100), got {value!r}"
        )
    return name


def is_loopback_url(url: str) -> bool:
    """Whether ``url`` points at this machine (plain http is fine there)."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


#: Sent when ``EVENTTRACK`` changes (Django's ``setting_changed``, in tests), after the
#: cached configuration is dropped: whatever is built from it (the model hooks' signal
#: connections) rebuilds itself. This module holds the one ``setting_changed`` receiver.
changed = Signal()


def reload() -> None:
    """Forget the cached configuration (after changing settings or the environment)."""
    _build_config.cache_clear()


@receiver(setting_changed, dispatch_uid="django_eventtrack.conf")
def _on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting == "EVENTTRACK":
        reload()
        changed.send(sender=None)

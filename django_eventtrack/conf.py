"""Settings, resolved in one place.

Every value is looked up in the same order: the ``EVENTTRACK`` dict in Django
settings, then an ``EVENTTRACK_*`` environment variable (read with
django-environ), then the default. Anything missing or malformed raises
:class:`~django_eventtrack.errors.ConfigurationError` naming both the setting
and the environment variable, so the fix is obvious whichever one you use.

Each setting is declared once, as a field of the dataclass holding its value
(:func:`~django_eventtrack.core.settings.setting`): :class:`Config` for the top level,
:class:`DeliveryOptions` (whose keys sit at the top level too), :class:`IdentitySettings`
for ``IDENTITY`` and :class:`~django_eventtrack.vendors.base.VendorConfig` for each vendor.
The known keys, the lookups and the environment variables are derived from those fields.

The resolved configuration is cached and rebuilt when a test changes
settings (Django's ``setting_changed`` signal) or when :func:`reload` is called.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, TypeVar
from urllib.parse import urlsplit

import environ
from django.conf import settings
from django.core import mail
from django.core.signals import setting_changed
from django.dispatch import Signal, receiver
from django.http import HttpRequest
from django.utils.module_loading import import_string

from django_eventtrack.core.browser_ids import ANONYMOUS_ID, BrowserId, visitor_ids
from django_eventtrack.core.settings import MAX_COOKIE_AGE as MAX_COOKIE_AGE
from django_eventtrack.core.settings import (
    Declared,
    declared,
    group,
    groups_of,
    parse_bearer_token,
    parse_bool,
    parse_cookie_domain,
    parse_cookie_name,
    parse_count,
    parse_list,
    parse_max_age,
    parse_optional_cookie,
    parse_optional_purposes,
    parse_seconds,
    parse_secret,
    parse_tcf_purposes,
    setting,
)
from django_eventtrack.core.settings import env_name as env_name
from django_eventtrack.core.settings import parse_callable as parse_callable
from django_eventtrack.core.settings import parse_event_names as parse_event_names
from django_eventtrack.core.settings import parse_names as parse_names
from django_eventtrack.core.settings import setting_path as setting_path
from django_eventtrack.errors import ConfigurationError, PlanError
from django_eventtrack.plan import CompiledPlan, TrackingPlan, compile_plan, load_plan
from django_eventtrack.vendors import BUILT_IN
from django_eventtrack.vendors.base import VendorAdapter
from django_eventtrack.vendors.base import VendorConfig as VendorConfig

T = TypeVar("T")

#: Django's Tasks framework's default queue (``DEFAULT_TASK_QUEUE_NAME``), which every
#: Tasks backend accepts unless its ``QUEUES`` says otherwise.
DEFAULT_TASKS_QUEUE = "default"
#: The largest event ``track()`` stores, in bytes of its properties and ``vendor_extra``
#: as JSON: twice the 32 KB per event Segment and RudderStack take, and more than a vendor
#: keeps (Hackle keeps strings of up to 1,024 characters; PrimeData's schema properties
#: are scalars and arrays), so an event is never cut short by it, but a document, an image
#: or a runaway list is refused where it is tracked, not in every sender's memory.
DEFAULT_MAX_EVENT_BYTES = 64 * 1024
#: The most bytes of events in one batched request: 16 events of the largest size, or
#: PrimeData's 500 of up to 2 KB each (Segment takes 500 KB a batch, RudderStack 4 MB).
DEFAULT_MAX_REQUEST_BYTES = 1024 * 1024
#: User attributes sent as traits by ``identify(user)`` and the login hook.
DEFAULT_IDENTIFY_TRAITS = ("email", "first_name", "last_name")
#: ``PLAN_MODE``: what ``track()`` does with an event that breaks the plan.
PLAN_MODES = ("raise", "quarantine", "warn")

ATTRIBUTE_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
QUEUE_PATTERN = re.compile(r"[A-Za-z0-9_.:-]{1,100}")

UserIdGetter = Callable[[Any], Any]
#: ``CONSENT``: a function(request) returning True (every purpose), False (none) or the
#: purposes granted.
ConsentCheck = Callable[[HttpRequest], Any]
#: The cookie the IAB's TCF v2 consent management platforms write.
TCF_COOKIE = "euconsent-v2"


# -- parsers of this module's settings: (raw value, where to fix it) -> value --------------------


def _parse_traits(value: Any, where: str) -> tuple[str, ...]:
    expected = (
        'a list of user attribute names like ["email", "first_name"] '
        '(or "email,first_name" in the environment)'
    )
    names = parse_list(value, where, expected, ordered=True)
    if not all(name.isidentifier() for name in names):
        raise ConfigurationError(f"{where} must be {expected}")
    return names


def _parse_keys(value: Any, where: str) -> frozenset[str]:
    expected = (
        'a list of property keys like ["email", "phone"] (or "email,phone" in the environment)'
    )
    return frozenset(parse_list(value, where, expected))


def _parse_adapter_names(value: Any, where: str) -> tuple[str, ...]:
    """``ADAPTERS``: built-in vendors by name, others by the dotted path of their
    :class:`~django_eventtrack.vendors.base.VendorAdapter` subclass."""
    expected = (
        f"a list of vendor names ({', '.join(BUILT_IN)}) or dotted paths to VendorAdapter "
        "subclasses"
    )
    return parse_list(value, where, expected, ordered=True)


def _parse_delivery(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(
            f"{where} must name a delivery backend (sync, thread, worker, celery, tasks, "
            "capture) or a dotted path to one"
        )
    return value.strip()


def _parse_queue(value: Any, where: str) -> str:
    name = value.strip() if isinstance(value, str) else ""
    if not QUEUE_PATTERN.fullmatch(name):
        raise ConfigurationError(
            f"{where} must be a queue name of letters, digits and _ . : - "
            f"(at most 100), got {value!r}"
        )
    return name


def _parse_plan_mode(value: Any, where: str) -> str:
    mode = str(value).strip().lower()
    if mode not in PLAN_MODES:
        raise ConfigurationError(f"{where} must be one of {', '.join(PLAN_MODES)}, got {value!r}")
    return mode


def _parse_user_id(value: Any, where: str) -> UserIdGetter | None:
    """``'pk'`` (None: ``user.pk``), another attribute's name, or a function(user)."""
    if value == "pk":
        return None
    if callable(value):
        return value  # type: ignore[no-any-return]
    if isinstance(value, str) and ATTRIBUTE_PATTERN.fullmatch(value):
        attribute = value
        return lambda user: getattr(user, attribute, None)
    if isinstance(value, str) and "." in value:
        return parse_callable(value, where)
    raise ConfigurationError(
        f"{where} must be 'pk', another attribute of the user (e.g. 'uuid') or "
        f"a dotted path to a function(user) returning the id, got {value!r}"
    )


def _parse_consent(value: Any, where: str) -> ConsentCheck:
    if not callable(value) and not isinstance(value, str):
        raise ConfigurationError(
            f"{where} must be None or a dotted path to a function(request) returning True "
            f"(track), False (do not) or the purposes granted, got {value!r}"
        )
    return parse_callable(value, where)


# -- the declarations ------------------------------------------------------------------------


@dataclass(frozen=True)
class DeliveryOptions:
    """How the outbox is drained; the same for every backend. Its keys are top-level ones."""

    #: Seconds a claimed delivery stays reserved for its sender unless renewed: a sender
    #: renews its claims every third of it while it works, so a dead sender's rows come
    #: due again within this long.
    lease_seconds: float = setting(parse_seconds, 15.0)
    #: Deliveries claimed per vendor per round (PrimeData sends them 500 to a request).
    batch_size: int = setting(parse_count, 100)
    #: Requests in flight per vendor when a sender starts (PrimeData batches count
    #: as one); it then adapts to the vendor's answers, between...
    concurrency: int = setting(parse_count, 4)
    #: ...this many, to which refusals (429, 5xx, timeouts) halve it...
    min_concurrency: int = setting(parse_count, 1)
    #: ...and this many, to which fast answers raise it.
    max_concurrency: int = setting(parse_count, 32)
    #: Exponential backoff: first retry after up to this many seconds, doubling...
    retry_backoff_base: float = setting(parse_seconds, 2.0)
    #: ...up to this cap; the actual wait is drawn uniformly below it (full jitter).
    retry_backoff_max: float = setting(parse_seconds, 1800.0)
    #: Consecutive retryable failures after which a vendor is paused...
    circuit_breaker_threshold: int = setting(parse_count, 5)
    #: ...for this many seconds.
    circuit_breaker_pause: float = setting(parse_seconds, 30.0)
    #: How long the ``thread`` backend may hold up interpreter exit, in seconds.
    shutdown_timeout: float = setting(parse_seconds, 5.0)
    #: How often an idle worker looks for due deliveries, in seconds.
    poll_interval: float = setting(parse_seconds, 1.0)
    #: The most of a process's time the ``thread`` backend's sender takes while the
    #: process serves requests (one in progress, or ended within ``Share.LINGER``; 1 or
    #: more: no limit); the rest of the time it sends at full speed.
    sender_share: float = setting(parse_seconds, 0.05)
    #: ``eventtrack_purge`` removes delivered, failed and skipped rows older than this (days).
    retention_days: float = setting(parse_seconds, 30.0)
    #: A batched request (PrimeData's) carries events whose sizes add up to at most this
    #: many bytes (as ``MAX_EVENT_BYTES`` counts them); a larger event goes alone.
    max_request_bytes: int = setting(parse_count, DEFAULT_MAX_REQUEST_BYTES)

    def __post_init__(self) -> None:
        if self.min_concurrency > self.max_concurrency:
            raise ConfigurationError(
                f"{setting_path('MIN_CONCURRENCY')} ({self.min_concurrency}) must not exceed "
                f"{setting_path('MAX_CONCURRENCY')} ({self.max_concurrency})"
            )

    @property
    def concurrency_range(self) -> tuple[int, int]:
        """The fewest and the most requests in flight per vendor; ``CONCURRENCY`` lies within."""
        return (
            min(self.min_concurrency, self.concurrency),
            max(self.max_concurrency, self.concurrency),
        )


@dataclass(frozen=True)
class IdentitySettings:
    """``EVENTTRACK["IDENTITY"]``, validated: settings only, no environment variables."""

    anonymous_cookie: str = setting(parse_cookie_name, "eventtrack_aid", env=False)
    ids_cookie: str = setting(parse_cookie_name, "eventtrack_ids", env=False)
    cookie_max_age: int = setting(parse_max_age, MAX_COOKIE_AGE, env=False)
    cookie_domain: str | None = setting(parse_cookie_domain, None, env=False)
    #: None means ``user.pk``.
    user_id: UserIdGetter | None = setting(_parse_user_id, None, env=False)
    consent: ConsentCheck | None = setting(_parse_consent, None, env=False)
    respect_gpc: bool = setting(parse_bool, False, env=False)
    #: The purposes a Global Privacy Control signal denies (None: every purpose).
    gpc_purposes: tuple[str, ...] | None = setting(parse_optional_purposes, None, env=False)
    #: The cookie the site's own consent banner writes: the purposes granted, comma-separated.
    consent_cookie: str | None = setting(parse_optional_cookie, None, env=False)
    #: Our purposes by the TCF v2 purposes each needs; None: the TCF cookie is not read.
    tcf_purposes: Mapping[str, tuple[int, ...]] | None = setting(
        parse_tcf_purposes, None, env=False
    )
    #: The cookie holding the TCF v2 consent string.
    tcf_cookie: str = setting(parse_cookie_name, TCF_COOKIE, env=False)

    def __post_init__(self) -> None:
        if self.anonymous_cookie == self.ids_cookie:
            raise ConfigurationError(
                f"{setting_path('IDENTITY', 'ANONYMOUS_COOKIE')} and "
                f"{setting_path('IDENTITY', 'IDS_COOKIE')} must name different cookies"
            )


def parse_identity(raw: Mapping[str, Any]) -> IdentitySettings:
    """Validate ``EVENTTRACK["IDENTITY"]``; a bad value raises ConfigurationError naming it."""
    unknown = set(raw) - set(IDENTITY_KEYS)
    if unknown:
        raise ConfigurationError(
            f"{setting_path('IDENTITY')} has unknown keys {sorted(unknown)}; "
            f"expected some of {list(IDENTITY_KEYS)}"
        )
    return resolve(IdentitySettings, raw, path=("IDENTITY",))


def _parse_identity(value: Any, where: str) -> IdentitySettings:
    if not isinstance(value or {}, Mapping):
        raise ConfigurationError(f"{where} must be a dict")
    return parse_identity(value or {})


def _parse_model_events(value: Any, where: str) -> tuple[Mapping[str, Any], ...]:
    value = value or ()
    if not isinstance(value, list | tuple) or not all(isinstance(v, Mapping) for v in value):
        raise ConfigurationError(
            f"{where} must be a list of dicts like "
            '{"model": "shop.Order", "on": "create", "event": "order.placed"}'
        )
    return tuple(value)


@dataclass(frozen=True)
class Config:
    """The whole resolved ``EVENTTRACK`` configuration.

    ``adapters`` and ``vendors`` are the registry (``ADAPTERS``, ``VENDORS``), resolved
    first by :func:`get_config` since every vendor setting depends on it, and ``plan``
    (``PLAN``) between the two, since it may fill vendor settings; every other
    field made with :func:`~django_eventtrack.core.settings.setting` is a top-level key,
    read by the one resolver. Adding a setting is adding such a field.
    """

    #: ``ADAPTERS``: the vendor registry, name -> adapter class, in settings order.
    adapters: Mapping[str, type[VendorAdapter]]
    #: ``VENDORS``: each vendor's credentials and options, resolved.
    vendors: Mapping[str, VendorConfig]
    #: ``DELIVERY``: the delivery backend, an alias or a dotted path.
    delivery: str = setting(_parse_delivery, "thread")
    #: ``RAISE_ON_INVALID``: ``track()`` raises ``InvalidEvent``; false logs and returns None.
    raise_on_invalid: bool = setting(parse_bool, True)
    options: DeliveryOptions = group(DeliveryOptions)
    #: ``MAX_EVENT_BYTES``: ``track()`` refuses an event larger than this (``TrackedEvent.size``).
    max_event_bytes: int = setting(parse_count, DEFAULT_MAX_EVENT_BYTES)
    #: ``EVENTTRACK["IDENTITY"]``: cookies, user id and consent (:mod:`.identity` uses them).
    identity: IdentitySettings = setting(_parse_identity, IdentitySettings(), env=False)
    #: ``EVENTTRACK["MODEL_EVENTS"]``, a list of dicts; :mod:`django_eventtrack.model_hooks` parses
    #: each entry with this module's conventions (parsers taking where to fix the value, a
    #: ConfigurationError naming it), keeping a bad entry out instead of failing here.
    model_events: tuple[Mapping[str, Any], ...] = setting(_parse_model_events, (), env=False)
    #: ``CELERY_QUEUE``: the queue the ``celery`` backend sends its tasks to; empty lets
    #: Celery route them (``task_routes``, else ``task_default_queue``).
    celery_queue: str = setting(_parse_queue, "")
    #: ``TASKS_QUEUE``: the Tasks framework queue the ``tasks`` backend enqueues on.
    tasks_queue: str = setting(_parse_queue, DEFAULT_TASKS_QUEUE)
    #: ``IDENTIFY_ON_LOGIN``: call ``identify()`` from ``user_logged_in`` (off by default).
    identify_on_login: bool = setting(parse_bool, False)
    #: ``IDENTIFY_TRAITS``: the user attributes that become traits.
    identify_traits: tuple[str, ...] = setting(_parse_traits, DEFAULT_IDENTIFY_TRAITS)
    #: ``IDENTIFY_STAFF``: let ``IDENTIFY_ON_LOGIN`` identify staff and superusers too
    #: (off by default: an admin signing in is not a customer).
    identify_staff: bool = setting(parse_bool, False)
    #: ``RAISE_ON_STORAGE_ERROR``: ``track()`` raises ``StorageError`` when the database
    #: refuses the write (full, read-only); false logs it and returns None.
    raise_on_storage_error: bool = setting(parse_bool, True)
    #: ``SCRUB_DELIVERED``: empty an event's properties once every delivery is final.
    scrub_delivered: bool = setting(parse_bool, False)
    #: ``REDACT_KEYS``: property keys (at any depth) masked once every delivery is final.
    redact_keys: frozenset[str] = setting(_parse_keys, frozenset())
    #: ``BLOCK_HTTP``: send nothing at all; every attempt is ``skipped`` (test settings).
    block_http: bool = setting(parse_bool, False)
    #: ``METRICS_TOKEN``: the bearer token a Prometheus scrape presents to ``metrics_view``
    #: (empty: staff only); read literally, never shown.
    metrics_token: str = setting(parse_bearer_token, "", literal=True, secret=True)
    #: ``PLAN_MODE`` as set (None: :meth:`plan_mode` picks by ``DEBUG`` and tests).
    plan_mode_setting: str | None = setting(_parse_plan_mode, None, key="PLAN_MODE")
    #: ``PLAN``: the tracking plan, compiled (None: no plan, every event is accepted).
    #: Read by hand before the vendors, whose settings it may fill (:func:`_plan`).
    plan: CompiledPlan | None = None

    def plan_mode(self) -> str:
        """``PLAN_MODE``, else ``raise`` under ``DEBUG`` and in tests (Django's test
        environment is set up: ``django.core.mail.outbox`` exists), else ``quarantine``.
        Read when an event breaks the plan, so a test's ``DEBUG`` counts."""
        if self.plan_mode_setting is not None:
            return self.plan_mode_setting
        return "raise" if settings.DEBUG or hasattr(mail, "outbox") else "quarantine"

    @property
    def active_vendors(self) -> dict[str, VendorConfig]:
        return {name: vendor for name, vendor in self.vendors.items() if vendor.active}

    @functools.cached_property
    def browser_ids(self) -> tuple[BrowserId, ...]:
        """Every vendor's browser ids, in registry order."""
        return tuple(bid for adapter in self.adapters.values() for bid in adapter.browser_ids)

    @functools.cached_property
    def browser_keys(self) -> tuple[str, ...]:
        """The identity keys of the ids a browser brings (our anonymous id first, then
        the vendors' cookies and SDK ids): kept in the Django session, and never sent
        as another user's once known to be one user's (:mod:`~django_eventtrack.outbox.owners`)."""
        return (ANONYMOUS_ID, *(bid.name for bid in self.browser_ids if bid.from_browser))

    @functools.cached_property
    def purposes(self) -> frozenset[str]:
        """Every purpose some vendor serves (each one's ``PURPOSES``): what granting "every
        purpose" grants."""
        return frozenset(purpose for vendor in self.vendors.values() for purpose in vendor.purposes)

    @functools.cached_property
    def vendor_id_names(self) -> tuple[str, ...]:
        """The identity keys the vendors declare (``track()``'s id keywords)."""
        return tuple(browser_id.name for browser_id in self.browser_ids)

    def check_vendor_ids(self, call: str, vendor_ids: Mapping[str, Any]) -> None:
        """Refuse a keyword of ``call()`` that is no vendor's id, as Python refuses an
        unknown keyword (a ``TypeError`` naming the vendors' id keywords)."""
        unknown = [name for name in vendor_ids if name not in self.vendor_id_names]
        if unknown:
            unknown.sort()
            raise TypeError(
                f"{call}() got an unexpected keyword argument {unknown[0]!r}; the vendors' id "
                f"keywords are {', '.join(self.vendor_id_names)}"
            )

    def adapter(self, name: str) -> VendorAdapter:
        """Vendor ``name``'s adapter with its settings."""
        return self._adapters_with_settings[name]

    @functools.cached_property
    def _adapters_with_settings(self) -> dict[str, VendorAdapter]:
        """Each vendor's adapter with its settings, made once: an adapter keeps no state
        but its settings, and routing asks one of every vendor for every event."""
        return {name: adapter(self.vendors[name]) for name, adapter in self.adapters.items()}


#: The registry's keys: resolved by hand, first (:func:`_build_config`).
REGISTRY_KEYS = ("ADAPTERS", "VENDORS")
#: The tracking plan's key: resolved by hand after the registry, before the vendors' settings.
PLAN_KEY = "PLAN"
#: Top-level keys of ``EVENTTRACK``.
TOP_LEVEL_KEYS = frozenset(REGISTRY_KEYS) | {PLAN_KEY} | {each.key for each in declared(Config)}
#: ``EVENTTRACK`` keys that only the settings can hold (dicts and lists), never a variable.
SETTINGS_ONLY_KEYS = frozenset({"VENDORS"}) | {
    each.key for each in declared(Config) if not each.setting.env
}
#: Keys a vendor's dict may hold besides its credentials and its adapter's own settings.
VENDOR_OPTIONS = frozenset(each.key for each in declared(VendorConfig))
#: Keys of ``EVENTTRACK["IDENTITY"]``, in the reference's order.
IDENTITY_KEYS = tuple(each.key for each in declared(IdentitySettings))

_env = environ.Env()


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


def resolve(
    cls: type[T],
    section: Mapping[str, Any],
    *,
    path: tuple[str, ...] = (),
    defaults: Mapping[str, Any] | None = None,
    **given: Any,
) -> T:
    """``cls`` built from the settings it declares: each read from ``section`` (which sits
    at ``path``), else its environment variable (unless settings only), else its default
    (``defaults`` by field name first); a group's from the same section. ``given``: the
    fields that are not settings."""
    values = dict(given)
    for name, kind in groups_of(cls).items():
        values[name] = resolve(kind, section, path=path)
    for each in declared(cls, groups=False):
        default = (defaults or {}).get(each.name, each.default)
        values[each.name] = _read(each, section, path, default)
    return cls(**values)


def _read(each: Declared, section: Mapping[str, Any], path: tuple[str, ...], default: Any) -> Any:
    found = each.setting
    if found.env:
        return lookup(
            section, each.key, path=path, parse=found.parse, default=default, literal=found.literal
        )
    value = section.get(each.key)
    return default if value is None else found.parse(value, setting_path(*path, each.key))


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
    plan = _plan(raw, adapters)
    return resolve(
        Config,
        raw,
        adapters=adapters,
        vendors=_vendors(raw, adapters, plan),
        plan=compile_plan(plan) if plan is not None else None,
    )


def _plan(
    raw: Mapping[str, Any], adapters: Mapping[str, type[VendorAdapter]]
) -> TrackingPlan | None:
    """``PLAN``, loaded, its vendor mappings checked against the keys each adapter declares."""
    value = lookup(raw, PLAN_KEY, path=(), parse=lambda value, where: value, default=None)
    if value is None or value == "":
        return None
    return load_plan(value, {name: adapter.plan_keys for name, adapter in adapters.items()})


def tracking_plan(value: Any = None) -> TrackingPlan:
    """The plan ``value`` names (a path, a dotted path or an object; default: ``PLAN``),
    loaded against the registry and compiled, so it is checked as ``track()`` would;
    :class:`PlanError` when it is broken, :class:`ConfigurationError` when none is set."""
    config = get_config()
    if value is None:
        if config.plan is None:
            raise ConfigurationError(
                "no tracking plan is configured: set EVENTTRACK['PLAN'] (or EVENTTRACK_PLAN) "
                "to the plan file, see docs/plan.md"
            )
        return config.plan.plan
    keys = {name: adapter.plan_keys for name, adapter in config.adapters.items()}
    return compile_plan(load_plan(value, keys)).plan


def _vendors(
    raw: Mapping[str, Any],
    adapters: Mapping[str, type[VendorAdapter]],
    plan: TrackingPlan | None = None,
) -> dict[str, VendorConfig]:
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
    return {
        name: _vendor_config(name, vendors_raw.get(name) or {}, adapter, visitors, plan)
        for name, adapter in adapters.items()
    }


def _vendor_config(
    name: str,
    raw: Mapping[str, Any],
    adapter: type[VendorAdapter],
    visitors: tuple[str, ...],
    plan: TrackingPlan | None = None,
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
        key: lookup(raw, key, path=path, parse=parse_secret, default="", literal=True)
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
    planned = Planned(name, adapter, raw, plan)
    config = resolve(
        VendorConfig,
        raw,
        path=path,
        defaults={  # the adapter's default_api_url, default_max_age...
            each.name: getattr(adapter, f"default_{each.name}")
            for each in declared(VendorConfig)
            if hasattr(adapter, f"default_{each.name}")
        },
        name=name,
        credentials=credentials,
        options={
            key: planned.merged(
                key, parse, lookup(raw, key, path=path, parse=parse, default=default)
            )
            for key, (parse, default) in own_settings.items()
        },
        visitor_ids=visitors,
    )
    return replace(
        config,
        active=bool(present) and config.enabled,
        event_names=planned.merged("EVENT_NAMES", parse_event_names, config.event_names),
    )


class Planned:
    """A vendor's settings with what the tracking plan declares for it: the plan fills
    what the settings leave out, and a contradiction between the two is an error naming
    both places (the adapter says which settings its plan keys derive:
    ``settings_from_plan``)."""

    def __init__(
        self,
        vendor: str,
        adapter: type[VendorAdapter],
        raw: Mapping[str, Any],
        plan: TrackingPlan | None,
    ) -> None:
        self.vendor, self.raw, self.plan = vendor, raw, plan
        self.derived = adapter.settings_from_plan(plan.mappings(vendor)) if plan else {}

    def merged(self, key: str, parse: Callable[[Any, str], T], value: T) -> T:
        """``value``, the setting as resolved, with what the plan says about it."""
        if key not in self.derived or self.plan is None:
            return value
        where = f'tracking plan {self.plan.source} ("vendors"."{self.vendor}")'
        planned = parse(self.derived[key], where)
        given = self.raw.get(key) is not None or env_name(self.vendor, key) in os.environ
        return self._agreed(key, value, planned, where) if given else planned

    def _agreed(self, key: str, given: Any, planned: Any, where: str) -> Any:
        setting = f"{setting_path('VENDORS', self.vendor, key)} (or {env_name(self.vendor, key)})"
        if isinstance(given, Mapping):
            clash = sorted(k for k in planned if k in given and given[k] != planned[k])
            if clash:
                first = clash[0]
                raise PlanError(
                    f"{setting} maps {first!r} to {given[first]!r} but the {where} says "
                    f"{planned[first]!r}; keep one of the two"
                )
            return {**planned, **given}
        if isinstance(given, frozenset):
            missing = sorted(set(planned) - given)
            if missing:
                raise PlanError(
                    f"the {where} names {', '.join(map(repr, missing))} in {key}, which {setting} "
                    "does not list; add it there, or remove the setting and let the plan say"
                )
            return given
        if given != planned:
            raise PlanError(f"{setting} is {given!r} but the {where} says {planned!r}")
        return given


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

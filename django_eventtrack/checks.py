"""System checks (``manage.py check``): misconfiguration found at start-up, not at the
first event.

Every check reads settings through :func:`~django_eventtrack.conf.get_config`,
whose error messages name the setting and never a credential. A broken
configuration is reported once, by :func:`check_configuration`; the other
checks then say nothing rather than fail themselves. Run only these with
``manage.py check --tag eventtrack``.
"""

from __future__ import annotations

import difflib
import importlib
import os
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from django.apps import AppConfig
from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning
from django.db import connections, router
from django.utils.module_loading import import_string

from django_eventtrack.conf import (
    Config,
    environment_variables,
    get_config,
    is_loopback_url,
    setting_path,
)
from django_eventtrack.delivery import backends
from django_eventtrack.errors import ConfigurationError, PlanError
from django_eventtrack.middleware import EventTrackMiddleware
from django_eventtrack.model_hooks import declarations
from django_eventtrack.models import Delivery
from django_eventtrack.plan import PlannedEvent, TrackingPlan, render
from django_eventtrack.plan.values import FORMATS
from django_eventtrack.vendors.base import DeclaredEvent

TAG = "eventtrack"
HINT = "See django-eventtrack's settings reference (docs/settings.md)."
PLAN_HINT = "See the tracking plan's documentation (docs/plan.md)."


def check_configuration(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """E001: ``EVENTTRACK`` or an ``EVENTTRACK_*`` variable is wrong; W001: no vendor is on."""
    try:
        config = get_config()
    except PlanError as exc:
        return [Error(str(exc), hint=PLAN_HINT, id="eventtrack.E010")]
    except ConfigurationError as exc:
        return [Error(str(exc), hint=HINT, id="eventtrack.E001")]
    except Exception as exc:  # a shape of settings the resolver did not foresee
        return [
            Error(
                f"EVENTTRACK could not be read ({type(exc).__name__})",
                hint=HINT,
                id="eventtrack.E001",
            )
        ]
    if config.active_vendors:
        return []
    return [
        Warning(
            "No vendor is active: events are stored but sent nowhere.",
            hint="Set a vendor's credentials in EVENTTRACK['VENDORS'] or the "
            "EVENTTRACK_<VENDOR>_* environment variables.",
            id="eventtrack.W001",
        )
    ]


def check_delivery_backend(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """E002: ``DELIVERY`` names no importable backend, or one whose ``check_settings()``
    refuses the configuration (a Tasks backend refusing ``TASKS_QUEUE``)."""
    config = _config()
    if config is None:
        return []
    try:
        backend = backends.load_backend(config.delivery)
        check_settings = getattr(backend, "check_settings", None)
        if check_settings is not None:
            check_settings()
    except ConfigurationError as exc:
        return [Error(str(exc), hint=HINT, id="eventtrack.E002")]
    except Exception as exc:
        message = (
            f'EVENTTRACK["DELIVERY"] is {config.delivery!r}, whose backend refuses the '
            f"settings: {type(exc).__name__}: {exc}"
        )
        return [Error(message, hint=HINT, id="eventtrack.E002")]
    return []


def check_vendor_urls(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """E003: an active vendor's ``API_URL`` is plain http to another machine, outside DEBUG."""
    config = _config()
    if config is None or settings.DEBUG:
        return []
    return [
        Error(
            f"{setting_path('VENDORS', name, 'API_URL')} is plain http to "
            f"{urlsplit(vendor.api_url).hostname}: credentials would cross the network "
            "unencrypted.",
            hint="Use https; plain http is allowed only for loopback addresses or with DEBUG.",
            id="eventtrack.E003",
        )
        for name, vendor in config.active_vendors.items()
        if urlsplit(vendor.api_url).scheme == "http" and not is_loopback_url(vendor.api_url)
    ]


def check_thread_delivery(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """W002: uWSGI without threads; W003: an in-memory SQLite database. Either way the
    ``thread`` backend's sender cannot work, and events pile up pending."""
    config = _config()
    if config is None or config.delivery != "thread" or not config.active_vendors:
        return []
    messages: list[CheckMessage] = []
    if _uwsgi_without_threads():
        messages.append(
            Warning(
                "DELIVERY is 'thread' but uWSGI runs without threads: the background sender "
                "never runs.",
                hint="Start uWSGI with --enable-threads (or --threads N), or use the 'worker' "
                "or 'celery' delivery.",
                id="eventtrack.W002",
            )
        )
    alias = router.db_for_write(Delivery)
    connection = connections[alias]
    if connection.vendor == "sqlite" and connection.is_in_memory_db():  # type: ignore[attr-defined]
        messages.append(
            Warning(
                f"DELIVERY is 'thread' but database {alias!r} is an in-memory SQLite "
                "database, which the sender's thread cannot share.",
                hint="Use a SQLite file or another database, or DELIVERY 'sync'.",
                id="eventtrack.W003",
            )
        )
    return messages


def _config() -> Config | None:
    """The configuration, or ``None`` when it is broken (E001 reports that)."""
    try:
        return get_config()
    except Exception:
        return None


def _uwsgi_without_threads() -> bool:
    try:
        uwsgi = importlib.import_module("uwsgi")  # only importable inside a uWSGI process
    except ImportError:
        return False
    options = getattr(uwsgi, "opt", {})
    enabled = _uwsgi_option(options, "enable-threads") not in {"", "0", "false", "no", "off"}
    threads = _uwsgi_option(options, "threads")
    return not (enabled or (threads.isdigit() and int(threads) > 1))


def _uwsgi_option(options: Any, name: str) -> str:
    """An option as lower-case text: flags are ``True``, ini values bytes, absent ones ''."""
    value = options.get(name)
    if value is None or value is False:
        return ""
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    return str(value).strip().lower()


def check_celery_app(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """W004: ``DELIVERY`` is ``celery`` but no Celery app exists in this process.

    Tasks would then go to Celery's fallback app (a broker on localhost's AMQP
    port), not the project's: every enqueue fails and events wait for the sweep.
    """
    config = _config()
    if config is None or config.delivery != "celery":
        return []
    try:
        from celery import current_app
    except ImportError:
        return []  # E002 reports the missing extra
    if current_app.main != "default":
        return []
    return [
        Warning(
            "DELIVERY is 'celery' but no Celery app has been created when Django starts: "
            "tasks would go to Celery's default broker, not yours.",
            hint="Import your Celery app in your project package's __init__.py "
            "(from .celery import app as celery_app), as Celery's Django guide shows.",
            id="eventtrack.W004",
        )
    ]


PREFIX = "EVENTTRACK_"
#: Variables with this prefix belong to test suites (this package's own), not to settings.
TEST_VARIABLES = "EVENTTRACK_TEST_"


def check_environment(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """W006: an ``EVENTTRACK_*`` environment variable that no setting reads (a typo
    such as ``EVENTTRACK_HACKLE_APIKEY`` would leave Hackle off without a word)."""
    config = _config()
    if config is None:
        return []
    # Compared without the prefix every name shares, which would make any two look alike.
    known = {name.removeprefix(PREFIX): name for name in environment_variables(config)}
    unknown = sorted(
        name
        for name in os.environ
        if name.startswith(PREFIX)
        and not name.startswith(TEST_VARIABLES)
        and name.removeprefix(PREFIX) not in known
    )
    messages: list[CheckMessage] = []
    for name in unknown:
        closest = difflib.get_close_matches(name.removeprefix(PREFIX), known, n=1)
        messages.append(
            Warning(
                f"Environment variable {name} is not a django-eventtrack setting; nothing "
                "reads it.",
                hint=(
                    f"Did you mean {known[closest[0]]}? Rename the variable."
                    if closest
                    else "Remove it, or see docs/settings.md for the names."
                ),
                id="eventtrack.W006",
            )
        )
    return messages


#: The middleware ``EventTrackMiddleware`` must follow, what it reads from each, and
#: what goes wrong without it.
MIDDLEWARE_BEFORE_OURS = (
    (
        "django.contrib.sessions.middleware.SessionMiddleware",
        "request.session",
        "visitors' browser ids are not remembered between requests",
    ),
    (
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "request.user",
        "events carry no user id",
    ),
)
EVENTTRACK_MIDDLEWARE = "django_eventtrack.middleware.EventTrackMiddleware"  # its public path
#: Where the class is defined: what a MIDDLEWARE entry (or a subclass) resolves to.
_OURS = f"{EventTrackMiddleware.__module__}.{EventTrackMiddleware.__qualname__}"


def check_middleware_order(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """E004: ``EventTrackMiddleware`` before the session or authentication middleware."""
    positions = _middleware_positions()
    ours = positions.get(_OURS)
    if ours is None:
        return []
    return [
        Error(
            f"{EVENTTRACK_MIDDLEWARE} comes before {path} in MIDDLEWARE, so it cannot read "
            f"{attribute}: {consequence}.",
            hint=f"Move {EVENTTRACK_MIDDLEWARE} after {path} in MIDDLEWARE.",
            id="eventtrack.E004",
        )
        for path, attribute, consequence in MIDDLEWARE_BEFORE_OURS
        if positions.get(path, -1) > ours
    ]


def _middleware_positions() -> dict[str, int]:
    """The first position in ``MIDDLEWARE`` of each middleware class, by dotted path,
    subclasses counting as their bases; entries that cannot be imported are Django's
    to report."""
    positions: dict[str, int] = {}
    for index, path in enumerate(getattr(settings, "MIDDLEWARE", None) or ()):
        try:
            middleware = import_string(path)
        except ImportError:
            continue
        for cls in getattr(middleware, "__mro__", ()):
            positions.setdefault(f"{cls.__module__}.{cls.__qualname__}", index)
    return positions


def check_sqlite_options(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """W005: the outbox is a SQLite file without a busy timeout or ``IMMEDIATE``
    transactions while the delivery backend writes to it from several threads
    (one per vendor): writers then fail with "database is locked" instead of waiting."""
    config = _config()
    if config is None or not config.active_vendors or not _sends_in_process(config.delivery):
        return []
    alias = router.db_for_write(Delivery)
    connection = connections[alias]
    if connection.vendor != "sqlite" or connection.is_in_memory_db():  # type: ignore[attr-defined]
        return []  # an in-memory database is W003's
    options = connection.settings_dict.get("OPTIONS") or {}
    missing = [
        text
        for text, present in (
            ('"timeout": 20', "timeout" in options),
            ('"transaction_mode": "IMMEDIATE"', options.get("transaction_mode") == "IMMEDIATE"),
        )
        if not present
    ]
    if not missing:
        return []
    return [
        Warning(
            f"Database {alias!r} is SQLite without {' and '.join(missing)} in its OPTIONS, "
            f"while DELIVERY {config.delivery!r} writes to it from a thread per vendor: "
            "writes may fail with 'database is locked' instead of waiting their turn.",
            hint=f'Add {", ".join(missing)} to DATABASES["{alias}"]["OPTIONS"] '
            "(transaction_mode needs Django 5.1+), or use PostgreSQL.",
            id="eventtrack.W005",
        )
    ]


#: What ``init_command`` must set for check W007 (lower case, spaces removed); either
#: spelling of each setting counts.
SQLITE_PRAGMAS = (("journal_mode=wal",), ("synchronous=normal", "synchronous=1"))
SQLITE_INIT_COMMAND = "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"


def check_sqlite_journal(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """W007: the outbox is a SQLite file whose connections do not set WAL and
    ``synchronous=NORMAL``. With the default rollback journal every commit waits for
    the disk and a reader blocks the writer, so the senders' claims and outcomes and
    every ``track()`` queue for each other (measured: a tracked page under gunicorn
    served 2.4 times the requests with WAL; see docs/performance.md)."""
    config = _config()
    if config is None or not config.active_vendors:
        return []
    alias = router.db_for_write(Delivery)
    connection = connections[alias]
    if connection.vendor != "sqlite" or connection.is_in_memory_db():  # type: ignore[attr-defined]
        return []
    options = connection.settings_dict.get("OPTIONS") or {}
    command = str(options.get("init_command", "")).lower().replace(" ", "")
    if all(any(pragma in command for pragma in spellings) for spellings in SQLITE_PRAGMAS):
        return []
    return [
        Warning(
            f"Database {alias!r} is SQLite without WAL and synchronous=NORMAL: every "
            "commit waits for the disk and readers block the writer, so track() and the "
            "senders queue for each other.",
            hint=f'Add "init_command": "{SQLITE_INIT_COMMAND}" to '
            f'DATABASES["{alias}"]["OPTIONS"] (docs/delivery.md explains why it is safe '
            "for the outbox), or use PostgreSQL.",
            id="eventtrack.W007",
        )
    ]


def _sends_in_process(delivery: str) -> bool:
    try:
        return bool(getattr(backends.load_backend(delivery), "sends_in_process", False))
    except ConfigurationError:
        return False  # E002 reports it


def check_plan(app_configs: Sequence[AppConfig] | None = None, **kwargs: Any) -> list[CheckMessage]:
    """The tracking plan against JSON Schema and the rest of the settings.

    E010: a schema the JSON Schema 2020-12 metaschema refuses (with ``jsonschema``
    installed; the plan's own checks have refused anything they cannot compile when
    the plan was loaded, reported by :func:`check_configuration`). E011: a
    ``MODEL_EVENTS`` hook tracks an event the plan does not declare. W010: a vendor
    the event goes to cannot take it as declared, and says what it will do, unless the
    event's mapping for that vendor says why that is accepted (``"accepted"``). W011: a
    ``format`` the plan does not check.
    """
    config = _config()
    if config is None or config.plan is None:
        return []
    plan = config.plan.plan
    return [
        *_metaschema_errors(plan),
        *_undeclared_model_events(plan),
        *_vendor_notes(plan, config),
        *_unchecked_formats(plan),
    ]


def _metaschema_errors(plan: TrackingPlan) -> list[CheckMessage]:
    try:
        from jsonschema import Draft202012Validator
        from jsonschema.exceptions import best_match
    except ImportError:  # the plan extra: the compiled checks' own rules still apply
        return []
    messages: list[CheckMessage] = []
    for name, document in render.json_schemas(plan).items():
        error = best_match(
            Draft202012Validator(Draft202012Validator.META_SCHEMA).iter_errors(document)
        )
        if error is not None:
            where = "/".join(str(part) for part in error.absolute_path) or "(root)"
            messages.append(
                Error(
                    f"tracking plan {plan.source}: {name} is not valid JSON Schema at {where}: "
                    f"{error.message}",
                    hint=PLAN_HINT,
                    id="eventtrack.E010",
                )
            )
    return messages


def _undeclared_model_events(plan: TrackingPlan) -> list[CheckMessage]:
    return [
        Error(
            f"{declaration.origin} tracks {event!r}, which the tracking plan {plan.source} "
            "does not declare: every one of them would break the plan.",
            hint="Declare the event in the plan, or fix the hook's event name.",
            id="eventtrack.E011",
        )
        for declaration in declarations()
        if isinstance(event := declaration.values.get("event"), str) and event not in plan.events
    ]


def declared(event: PlannedEvent, plan: TrackingPlan) -> DeclaredEvent:
    """``event`` as the adapters judge it: property schemas with references followed."""
    return DeclaredEvent(
        name=event.name,
        properties={
            name: plan.resolve(schema) if isinstance(schema, dict) else {}
            for name, schema in event.properties.items()
        },
        required=frozenset(event.required),
        closed=event.closed,
    )


def _vendor_notes(plan: TrackingPlan, config: Config) -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    for event in plan:
        for name, vendor in config.active_vendors.items():
            if vendor.events is not None and event.name not in vendor.events:
                continue
            if event.accepted(name):  # the plan says why what the vendor does is fine
                continue
            messages += [
                Warning(
                    f"tracking plan {plan.source}: {note}.",
                    hint="Change the plan to what the vendor takes, or accept what it does: "
                    f'"vendors": {{"{name}": {{"accepted": "<why>"}}}} in the event; see '
                    "docs/plan.md.",
                    id="eventtrack.W010",
                )
                for note in config.adapter(name).plan_notes(declared(event, plan))
            ]
    return messages


def _unchecked_formats(plan: TrackingPlan) -> list[CheckMessage]:
    schemas = [*(event.schema for event in plan), *plan.defs.values()]
    found = sorted({value for schema in schemas for value in _formats(schema)} - set(FORMATS))
    return [
        Warning(
            f"tracking plan {plan.source}: format {name!r} is not checked (a JSON Schema "
            "annotation only): values of any shape pass.",
            hint=f"The formats checked are {', '.join(FORMATS)}; use a pattern for others.",
            id="eventtrack.W011",
        )
        for name in found
    ]


def _formats(schema: Any) -> list[str]:
    if isinstance(schema, dict):
        own = [schema["format"]] if isinstance(schema.get("format"), str) else []
        return own + [
            value
            for key, sub in schema.items()
            if key not in ("enum", "const")
            for value in _formats(sub)
        ]
    if isinstance(schema, list):
        return [value for sub in schema for value in _formats(sub)]
    return []


ALL_CHECKS = (
    check_configuration,
    check_delivery_backend,
    check_vendor_urls,
    check_thread_delivery,
    check_celery_app,
    check_environment,
    check_middleware_order,
    check_sqlite_options,
    check_sqlite_journal,
    check_plan,
)

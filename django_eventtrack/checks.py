"""System checks (``manage.py check``): misconfiguration found at start-up, not at the
first event.

Every check reads settings through :func:`~django_eventtrack.conf.get_config`,
whose error messages name the setting and never a credential. A broken
configuration is reported once, by :func:`check_configuration`; the other
checks then say nothing rather than fail themselves. Run only these with
``manage.py check --tag eventtrack``.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from django.apps import AppConfig
from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning
from django.db import connections, router

from django_eventtrack import backends
from django_eventtrack.conf import Config, get_config, is_loopback_url, setting_path
from django_eventtrack.errors import ConfigurationError
from django_eventtrack.models import Delivery

TAG = "eventtrack"
HINT = "See django-eventtrack's settings reference (docs/settings.md)."


def check_configuration(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """E001: ``EVENTTRACK`` or an ``EVENTTRACK_*`` variable is wrong; W001: no vendor is on."""
    try:
        config = get_config()
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
    """E002: ``DELIVERY`` names no importable backend."""
    config = _config()
    if config is None:
        return []
    try:
        backends.load_backend(config.delivery)
    except ConfigurationError as exc:
        return [Error(str(exc), hint=HINT, id="eventtrack.E002")]
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


ALL_CHECKS = (
    check_configuration,
    check_delivery_backend,
    check_vendor_urls,
    check_thread_delivery,
    check_celery_app,
)

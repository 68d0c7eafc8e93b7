"""Deciding which vendors get an event.

:func:`plan` is the single place that turns "this event, these vendors" into
per-vendor targets (or a reason to skip); the outbox stores them as the event's
routes, and a sender writes one delivery per target from them.
:func:`render_requests` shows what would be sent without opening a connection
(``send_event --dry-run``).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import NamedTuple

from django.utils import timezone

from django_eventtrack.conf import Config, get_config
from django_eventtrack.core.event import TrackedEvent
from django_eventtrack.core.settings import env_name, setting_path
from django_eventtrack.errors import ConfigurationError, InvalidEvent
from django_eventtrack.vendors import VendorAdapter
from django_eventtrack.vendors.base import VendorRequest

#: Why every vendor skips an event about a visitor who refused tracking.
OPTED_OUT = "visitor opted out of tracking"


def no_consent(purposes: Iterable[str]) -> str:
    """Why a vendor skips an event whose visitor did not grant ``purposes`` (its own)."""
    return f"no consent for {', '.join(purposes)}"


class Target(NamedTuple):
    """One vendor's share of an event: an adapter to send with, or why not (a tuple:
    routing makes one per vendor for every event tracked)."""

    vendor: str
    adapter: VendorAdapter
    skip_reason: str | None = None


def plan(
    event: TrackedEvent,
    vendors: Iterable[str] | None = None,
    *,
    require_vendor: bool = True,
    as_sent: bool = False,
    now: datetime | None = None,
) -> list[Target]:
    """The vendors ``event`` goes to.

    With ``vendors=None`` every active vendor whose ``EVENTS`` filter admits the
    event. Naming vendors explicitly is a request: an unknown or unconfigured
    one raises :class:`ConfigurationError` instead of being silently dropped.
    With ``require_vendor`` (the default) having no vendor configured at all is
    an error too. Each vendor judges the event as it is tracked (a user's profile
    may still come: :meth:`~VendorAdapter.tracked_skip_reason`), or ``as_sent``
    with the ids it has now; ``now`` is the time lateness is judged at (default: now).
    """
    config = get_config()
    check_event(event, config)
    now = now or timezone.now()
    targets = []
    for name in target_vendors(vendors, require_vendor=require_vendor):
        adapter = config.adapter(name)
        if not adapter.receives(event):
            if vendors is None:
                continue
            targets.append(Target(name, adapter, _filtered_out(event, name)))
            continue
        if event.identity.opted_out:
            skip_reason: str | None = OPTED_OUT
        elif refused := event.identity.refused(adapter.config.purposes):
            skip_reason = no_consent(refused)
        elif event.is_identify:
            skip_reason = adapter.identify_skip_reason(event)
        else:
            judged = adapter.skip_reason(event) if as_sent else adapter.tracked_skip_reason(event)
            skip_reason = judged or adapter.lateness_refusal(event.timestamp, now)
        targets.append(Target(name, adapter, skip_reason))
    return targets


def check_event(event: TrackedEvent, config: Config) -> None:
    """Refuse, with :class:`InvalidEvent`, what no vendor could take: an event larger than
    ``MAX_EVENT_BYTES``, a ``vendor_extra`` for a vendor that does not exist, or one its
    vendor can never read (:meth:`~django_eventtrack.vendors.base.VendorAdapter.extra_problem`)."""
    if event.larger_than(config.max_event_bytes):
        raise InvalidEvent(
            f"event {event.name!r} is {event.size:,} bytes (its properties and vendor_extra as "
            f"JSON); the limit is {config.max_event_bytes:,} bytes, set by "
            f"{setting_path('MAX_EVENT_BYTES')} (or environment variable "
            f"{env_name('MAX_EVENT_BYTES')}): send an id or a summary instead of the document",
            field="properties",
        )
    for vendor, extra in event.vendor_extra.items():
        adapter = config.adapters.get(vendor)
        if adapter is None:
            raise InvalidEvent(
                f"vendor_extra names unknown vendor {vendor!r}; the vendors are "
                f"{', '.join(sorted(config.adapters))}",
                field=f"vendor_extra.{vendor}",
            )
        if problem := adapter.extra_problem(extra):
            raise InvalidEvent(problem, field=f"vendor_extra.{vendor}.{adapter.entries_key}")


def _filtered_out(event: TrackedEvent, vendor: str) -> str:
    if event.is_identify:
        return f"identify() is turned off by {setting_path('VENDORS', vendor, 'IDENTIFY')}"
    return f"{event.name!r} is not in {setting_path('VENDORS', vendor, 'EVENTS')}"


def target_vendors(vendors: Iterable[str] | None, *, require_vendor: bool = True) -> list[str]:
    """The active vendors to use, in configuration order: all of them, or ``vendors``.

    An unknown or unconfigured vendor named explicitly raises
    :class:`ConfigurationError`, as does (with ``require_vendor``) having no
    vendor configured at all.
    """
    config = get_config()
    if vendors is None:
        if require_vendor and not config.active_vendors:
            raise ConfigurationError(
                "no vendor is configured: set credentials in EVENTTRACK['VENDORS'] or the "
                "EVENTTRACK_<VENDOR>_* environment variables (see the settings reference, "
                "docs/settings.md)"
            )
        return list(config.active_vendors)
    names = _explicit_vendors(config, vendors)
    return [name for name in config.active_vendors if name in names]


def _explicit_vendors(config: Config, vendors: Iterable[str]) -> set[str]:
    names = {vendors} if isinstance(vendors, str) else set(vendors)  # one name, not its letters
    unknown = names - set(config.vendors)
    if unknown:
        raise ConfigurationError(
            f"unknown vendor {', '.join(sorted(unknown))}; the vendors are "
            f"{', '.join(sorted(config.vendors))}"
        )
    for name in sorted(names):
        if not config.vendors[name].active:
            adapter = config.adapters[name]
            needed = " and ".join(env_name(name, key) for key in adapter.credential_settings)
            raise ConfigurationError(
                f"{adapter.display_name} is not configured: set its credentials in "
                f"{setting_path('VENDORS', name)} or the environment ({needed})"
            )
    return names


def render_requests(
    event: TrackedEvent, vendors: Iterable[str] | None = None
) -> list[tuple[Target, VendorRequest | None]]:
    """The requests a delivery would send for ``event``, built but not sent (``--dry-run``)."""
    return [
        (target, None if target.skip_reason else target.adapter.build_request([event]))
        for target in plan(event, vendors, as_sent=True)
    ]

"""Deciding which vendors get an event.

:func:`plan` is the single place that turns "this event, these vendors" into
per-vendor targets (or a reason to skip); the outbox stores one delivery per
target, and :func:`render_requests` shows what would be sent without opening a
connection (``send_event --dry-run``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django_eventtrack.conf import Config, env_name, get_config, setting_path
from django_eventtrack.errors import ConfigurationError
from django_eventtrack.event import Event
from django_eventtrack.vendors import ADAPTERS, VendorAdapter
from django_eventtrack.vendors.base import VendorRequest

#: Why every vendor skips an event about a visitor who refused tracking.
OPTED_OUT = "visitor opted out of tracking"


@dataclass(frozen=True)
class Target:
    """One vendor's share of an event: an adapter to send with, or why not."""

    vendor: str
    adapter: VendorAdapter
    skip_reason: str | None = None


def plan(
    event: Event, vendors: Iterable[str] | None = None, *, require_vendor: bool = True
) -> list[Target]:
    """The vendors ``event`` goes to.

    With ``vendors=None`` every active vendor whose ``EVENTS`` filter admits the
    event. Naming vendors explicitly is a request: an unknown or unconfigured
    one raises :class:`ConfigurationError` instead of being silently dropped.
    With ``require_vendor`` (the default) having no vendor configured at all is
    an error too.
    """
    config = get_config()
    names = _explicit_vendors(config, vendors) if vendors is not None else None
    if require_vendor and names is None and not config.active_vendors:
        raise ConfigurationError(
            "no vendor is configured: set credentials in EVENTTRACK['VENDORS'] or the "
            "EVENTTRACK_<VENDOR>_* environment variables (see the README's Configuration section)"
        )
    targets = []
    for name, vendor_config in config.active_vendors.items():
        if names is not None and name not in names:
            continue
        adapter = ADAPTERS[name](vendor_config)
        if not adapter.receives(event):
            reason = f"{event.name!r} is not in {setting_path('VENDORS', name, 'EVENTS')}"
            if names is None:
                continue
            targets.append(Target(name, adapter, reason))
            continue
        skip_reason = OPTED_OUT if event.identity.opted_out else adapter.skip_reason(event)
        targets.append(Target(name, adapter, skip_reason))
    return targets


def _explicit_vendors(config: Config, vendors: Iterable[str]) -> set[str]:
    names = set(vendors)
    unknown = names - set(config.vendors)
    if unknown:
        raise ConfigurationError(
            f"unknown vendor {', '.join(sorted(unknown))}; the vendors are "
            f"{', '.join(sorted(config.vendors))}"
        )
    for name in sorted(names):
        if not config.vendors[name].active:
            adapter = ADAPTERS[name]
            needed = " and ".join(env_name(name, key) for key in adapter.credential_settings)
            raise ConfigurationError(
                f"{adapter.display_name} is not configured: set its credentials in "
                f"{setting_path('VENDORS', name)} or the environment ({needed})"
            )
    return names


def render_requests(
    event: Event, vendors: Iterable[str] | None = None
) -> list[tuple[Target, VendorRequest | None]]:
    """The requests :func:`deliver_now` would send, built but not sent."""
    return [
        (target, None if target.skip_reason else target.adapter.build_request([event]))
        for target in plan(event, vendors)
    ]

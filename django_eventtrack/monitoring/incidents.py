"""The vendors' incidents as the operator reads them: why (the vendor's own answer),
since when, how many, whether it is over, and what to do about it.

The senders write them (:mod:`django_eventtrack.outbox.incidents`); this only reads.
The advice is per kind of failure and names the settings of the vendor at hand,
taken from its adapter in the registry (its credentials, its URL), so it holds for
any vendor.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Q
from django.utils import timezone

from django_eventtrack.conf import get_config
from django_eventtrack.core.settings import env_name, setting_path
from django_eventtrack.models import Incident
from django_eventtrack.monitoring.status import format_duration

#: Statuses that mean "later", not "never": the vendor is overloaded or down.
UNAVAILABLE = frozenset({408, 425, 502, 503, 504})


@dataclass(frozen=True)
class IncidentView:
    """One incident, with how long it has lasted and what to do."""

    incident: Incident
    #: The vendor's display name (``PrimeData``).
    vendor_name: str
    #: ``3 min`` from the first failure to the last (or to now while it goes on).
    lasted: str
    advice: str

    @property
    def ongoing(self) -> bool:
        return self.incident.resolved_at is None


def recent(since: datetime, now: datetime | None = None, limit: int = 50) -> list[IncidentView]:
    """The incidents still open, then those seen since ``since``, latest first (one query)."""
    now = now or timezone.now()
    rows = Incident.objects.filter(Q(resolved_at__isnull=True) | Q(last_seen__gte=since)).order_by(
        "-last_seen"
    )[:limit]
    found = sorted(rows, key=lambda row: row.resolved_at is not None)
    adapters = get_config().adapters
    return [
        IncidentView(
            row,
            adapters[row.vendor].display_name if row.vendor in adapters else row.vendor,
            format_duration((_end(row, now) - row.first_seen).total_seconds()),
            advice(row.vendor, row.http_status, row.reason),
        )
        for row in found
    ]


def _end(row: Incident, now: datetime) -> datetime:
    """The last failure of a resolved incident; now for an ongoing one."""
    return now if row.resolved_at is None else row.last_seen


def latest_open(views: list[IncidentView]) -> dict[str, IncidentView]:
    """Per vendor, its most recent ongoing incident (``views`` as :func:`recent` gives them)."""
    found: dict[str, IncidentView] = {}
    for view in views:
        if view.ongoing:
            found.setdefault(view.incident.vendor, view)
    return found


def advice(vendor: str, http_status: int | None, reason: str) -> str:
    """What to do about ``vendor`` failing with ``http_status`` (None: no answer, the
    transport's ``reason`` such as ``read timeout``), in a sentence or two."""
    adapters = get_config().adapters
    adapter = adapters.get(vendor)
    name = adapter.display_name if adapter is not None else vendor
    if http_status in (401, 403):
        keys = adapter.credential_settings if adapter is not None else ()
        places = " and ".join(
            f"{setting_path('VENDORS', vendor, key)} (or {env_name(vendor, key)})" for key in keys
        )
        return (
            f"{name} refused the credentials: check {places or 'its credentials'}; "
            "a process reads them when it starts, so restart the senders after fixing it, "
            "then retry the failed deliveries."
        )
    if http_status == 429:
        return (
            f"{name} is rate limiting: the senders pause as long as it asks and retry. "
            f"If it lasts, lower {setting_path('CONCURRENCY')} or ask {name} for a higher limit."
        )
    if http_status is not None and (http_status in UNAVAILABLE or http_status >= 500):
        return (
            f"{name} is failing on its side: deliveries are retried with backoff until their "
            f"MAX_ATTEMPTS or MAX_AGE ({setting_path('VENDORS', vendor)}); nothing to change "
            f"here. Check {name}'s status page; retry the ones that failed for good once it is "
            "back."
        )
    if http_status is None:
        return _unreachable(name, vendor, reason)
    return (
        f"{name} refused these events (HTTP {http_status}): its answer names what it "
        "objects to. Fix what your code tracks (see docs/vendors.md for what it takes); "
        "retrying sends the same request and is refused again."
    )


def _unreachable(name: str, vendor: str, reason: str) -> str:
    if reason.startswith("internal error"):
        return "The sender itself raised: the log of django_eventtrack.sender has the traceback."
    timeout = "TIMEOUT" if "read" in reason else "CONNECT_TIMEOUT"
    return (
        f"No answer from {name} ({reason}): check "
        f"{setting_path('VENDORS', vendor, 'API_URL')} and that this host reaches it "
        f"(DNS, firewall, proxy); if {name} is only slow, raise "
        f"{setting_path('VENDORS', vendor, timeout)}. Deliveries are retried meanwhile."
    )

"""Prometheus metrics for the outbox, served by :func:`metrics_view` (needs
``prometheus-client``, the ``metrics`` extra: ``pip install prometheus-client``).

Add it to your URLs; it is not public: a scrape presents ``METRICS_TOKEN`` as a
bearer token, or comes from a logged-in staff user::

    from django_eventtrack.monitoring.metrics import metrics_view

    urlpatterns = [..., path("eventtrack/metrics", metrics_view)]

The figures come from the outbox at scrape time (four queries), not from
counters in one process, so any web process reports every sender's work, whichever
backend (thread, worker, Celery, Tasks) did it, and a restart loses nothing:

- ``eventtrack_deliveries_last_hour{vendor, outcome}``: deliveries that became
  delivered, failed or skipped in the last hour;
- ``eventtrack_pending_deliveries{vendor}`` and ``eventtrack_due_deliveries{vendor}``:
  waiting now, and due now;
- ``eventtrack_oldest_pending_age_seconds{vendor}`` (0 when nothing is pending);
- ``eventtrack_delivery_latency_seconds{vendor}``: a gauge histogram of tracked to
  delivered times of the last hour's deliveries (``histogram_quantile`` works on it);
- ``eventtrack_vendor_paused{vendor}``: 1 while the vendor is paused for every sending
  process: a 429 with ``Retry-After``, or a circuit breaker that opened in any process
  (both are recorded in the database), or this process's own breaker.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from datetime import timedelta
from typing import TYPE_CHECKING

from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from django_eventtrack.conf import get_config
from django_eventtrack.delivery import flow
from django_eventtrack.monitoring import status
from django_eventtrack.web.middleware import no_visitor_cookie

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

LAST_HOUR = "last_hour"
OUTCOMES = ("delivered", "failed", "skipped")
INSTALL_HINT = (
    "prometheus_client is not installed: pip install prometheus-client "
    "(the [metrics] extra of django-eventtrack)"
)


class OutboxCollector:
    """A Prometheus collector that reads the outbox each time it is collected."""

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import GaugeHistogramMetricFamily, GaugeMetricFamily

        vendors = status.overview({LAST_HOUR: timedelta(hours=1)})

        outcomes = GaugeMetricFamily(
            "eventtrack_deliveries_last_hour",
            "Deliveries that became delivered, failed or skipped in the last hour.",
            labels=["vendor", "outcome"],
        )
        for row in vendors:
            for outcome in OUTCOMES:
                outcomes.add_metric(
                    [row.vendor, outcome], getattr(row.finished[LAST_HOUR], outcome)
                )
        yield outcomes

        for name, documentation, value in (
            ("eventtrack_pending_deliveries", "Deliveries waiting to be sent.", "pending"),
            ("eventtrack_due_deliveries", "Pending deliveries due now.", "due"),
        ):
            gauge = GaugeMetricFamily(name, documentation, labels=["vendor"])
            for row in vendors:
                gauge.add_metric([row.vendor], getattr(row.backlog, value))
            yield gauge

        oldest = GaugeMetricFamily(
            "eventtrack_oldest_pending_age_seconds",
            "Age of the oldest pending delivery (0 when none is pending).",
            labels=["vendor"],
        )
        for row in vendors:
            oldest.add_metric([row.vendor], row.backlog.oldest_pending_seconds or 0.0)
        yield oldest

        latency = GaugeHistogramMetricFamily(
            "eventtrack_delivery_latency_seconds",
            "Time from track() storing an event to the vendor accepting it, for the "
            "deliveries of the last hour.",
            labels=["vendor"],
        )
        for row in vendors:
            stats = row.finished[LAST_HOUR]
            buckets = [
                (_bound(bound), float(count))
                for bound, count in zip(status.LATENCY_BUCKETS, stats.latency_counts, strict=True)
            ]
            buckets.append(("+Inf", float(stats.delivered)))
            latency.add_metric([row.vendor], buckets, stats.latency_sum)
        yield latency

        paused = GaugeMetricFamily(
            "eventtrack_vendor_paused",
            "1 while the vendor is paused (Retry-After or circuit breaker, in any process).",
            labels=["vendor"],
        )
        for row in vendors:
            is_paused = row.paused is not None or not flow.breaker.allows(row.vendor)
            paused.add_metric([row.vendor], 1.0 if is_paused else 0.0)
        yield paused


def _bound(seconds: float) -> str:
    return repr(float(seconds))


def may_scrape(request: HttpRequest) -> bool:
    """A request with ``Authorization: Bearer <METRICS_TOKEN>`` (compared in constant
    time), or from an active staff user. Nothing about the token is ever logged."""
    token = get_config().metrics_token
    given = request.headers.get("Authorization", "")
    if token and hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        return True
    user = getattr(request, "user", None)
    return bool(user is not None and user.is_active and user.is_staff)


@never_cache
@require_GET
@no_visitor_cookie
def metrics_view(request: HttpRequest) -> HttpResponse:
    """The outbox's metrics in Prometheus's text format; 403 for anyone else than a
    staff user or a scrape with the token, 501 without ``prometheus_client``."""
    if not may_scrape(request):
        return HttpResponseForbidden(
            "Forbidden: send Authorization: Bearer <METRICS_TOKEN>.", content_type="text/plain"
        )
    try:
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
    except ImportError:
        return HttpResponse(INSTALL_HINT, status=501, content_type="text/plain")
    registry = CollectorRegistry(auto_describe=False)
    registry.register(OutboxCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from django_eventtrack.monitoring.metrics import metrics_view

urlpatterns = [
    path("admin/", admin.site.urls),
    # Prometheus metrics, for a staff user or a scrape with EVENTTRACK_METRICS_TOKEN
    # (docs/monitoring.md).
    path("eventtrack/metrics", metrics_view),
    path("", include("shop.urls")),
]

from __future__ import annotations

from django.contrib import admin
from django.urls import URLPattern, URLResolver, include, path

from django_eventtrack.monitoring.metrics import metrics_view

urlpatterns: list[URLPattern | URLResolver] = [
    path("admin/", admin.site.urls),
    path("identity/", include("tests.views")),
    path("metrics", metrics_view),
]

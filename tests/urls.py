from __future__ import annotations

from django.contrib import admin
from django.urls import URLPattern, URLResolver, include, path

from django_eventtrack.monitoring.metrics import metrics_view
from django_eventtrack.web.consent import gpc_json

urlpatterns: list[URLPattern | URLResolver] = [
    path("admin/", admin.site.urls),
    path("identity/", include("tests.views")),
    path("metrics", metrics_view),
    path(".well-known/gpc.json", gpc_json),
]

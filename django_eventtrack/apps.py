from __future__ import annotations

from django.apps import AppConfig


class EventTrackConfig(AppConfig):
    name = "django_eventtrack"
    verbose_name = "Event tracking"
    default_auto_field = "django.db.models.BigAutoField"

from __future__ import annotations

from django.apps import AppConfig
from django.core import checks


class EventTrackConfig(AppConfig):
    name = "django_eventtrack"
    verbose_name = "Event tracking"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django_eventtrack import checks as eventtrack_checks
        from django_eventtrack import (
            hooks,
            identification,  # noqa: F401  (connects the login hook)
        )

        for check in eventtrack_checks.ALL_CHECKS:
            checks.register(check, eventtrack_checks.TAG)
        checks.register(hooks.check_model_events, eventtrack_checks.TAG)
        hooks.connect_configured()

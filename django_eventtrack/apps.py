from __future__ import annotations

from django.apps import AppConfig
from django.core import checks
from django.core.signals import request_started


class EventTrackConfig(AppConfig):
    name = "django_eventtrack"
    verbose_name = "Event tracking"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django_eventtrack import api, model_hooks  # noqa: F401  (api connects the login hook)
        from django_eventtrack import checks as eventtrack_checks
        from django_eventtrack.delivery import backends

        for check in eventtrack_checks.ALL_CHECKS:
            checks.register(check, eventtrack_checks.TAG)
        checks.register(model_hooks.check_model_events, eventtrack_checks.TAG)
        model_hooks.connect_configured()
        request_started.connect(
            backends.start_on_first_request, dispatch_uid="django_eventtrack.start_sending"
        )

"""The project's Celery app, exactly as a user's ``proj/celery.py`` (Celery's Django guide):
``celery -A tests.integration.proj worker`` runs it, and ``autodiscover_tasks()`` finds
``django_eventtrack.tasks``."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.integration.proj.settings")

app = Celery("proj")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

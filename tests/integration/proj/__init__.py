"""A Django project laid out the way Celery's Django guide shows, for the worker processes
the integration tests start: importing the project (its settings) creates the Celery app."""

from __future__ import annotations

from tests.integration.proj.celery import app as celery_app

__all__ = ("celery_app",)

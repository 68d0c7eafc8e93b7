"""Settings for the web servers the tests start (uvicorn, gunicorn): the views of
``tests/views.py`` behind the identity middleware, on the SQLite file named by
``EVENTTRACK_TEST_DATABASE`` (or the database at ``EVENTTRACK_TEST_DATABASE_URL``, a
PostgreSQL one in the integration suite), vendors and options from ``EVENTTRACK_*``
variables."""

from __future__ import annotations

import os

import environ

from tests.processes.settings import DATABASES, DEFAULT_AUTO_FIELD, EVENTTRACK, SECRET_KEY

if "EVENTTRACK_TEST_DATABASE_URL" in os.environ:
    DATABASES = {"default": environ.Env.db_url_config(os.environ["EVENTTRACK_TEST_DATABASE_URL"])}

__all__ = ["DATABASES", "DEFAULT_AUTO_FIELD", "EVENTTRACK", "SECRET_KEY"]

DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
ALLOWED_HOSTS = ["127.0.0.1"]
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django_eventtrack",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_eventtrack.middleware.EventTrackMiddleware",
]
ROOT_URLCONF = "tests.views"

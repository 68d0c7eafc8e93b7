"""Django settings for benchmark processes.

The database comes from ``BENCH_DATABASE_URL`` (``sqlite:////path`` or
``postgres://...``); vendors and the delivery backend from the usual
``EVENTTRACK_*`` variables, so each benchmark process is configured exactly
like a deployment.
"""

from __future__ import annotations

import os

import environ

SECRET_KEY = "benchmarks-only-not-secret"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
INSTALLED_APPS = ["django_eventtrack"]
DATABASES = {"default": environ.Env.db_url_config(os.environ["BENCH_DATABASE_URL"])}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # What the docs recommend for SQLite with concurrent writers (checks W005, W007).
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
EVENTTRACK: dict[str, object] = {}
LOGGING_CONFIG = None

"""Settings for the processes the integration tests start (tracking scripts, Celery and
Tasks workers, ``eventtrack_worker``), all sharing one outbox database.

Everything comes from the environment the test sets: the database
(``EVENTTRACK_TEST_DATABASE_URL``, SQLite file or PostgreSQL), the Redis broker
(``EVENTTRACK_TEST_REDIS_URL``), and the vendors and options as ordinary
``EVENTTRACK_*`` variables.
"""

from __future__ import annotations

import importlib.util
import os

import environ

from tests.settings import TEST_ADAPTERS

SECRET_KEY = "tests-only-not-secret"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

#: django.tasks is built in from Django 6.0; on 5.2 the backport app provides it.
TASKS_BACKPORT = importlib.util.find_spec("django.tasks") is None
INSTALLED_APPS = [
    "django_eventtrack",
    *(["django_tasks"] if TASKS_BACKPORT else []),
    "django_tasks_db",
]

DATABASES = {"default": environ.Env.db_url_config(os.environ["EVENTTRACK_TEST_DATABASE_URL"])}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }

EVENTTRACK: dict[str, object] = {"ADAPTERS": list(TEST_ADAPTERS)}

# The database Tasks backend, accepting the queue the tests route eventtrack's task to.
TASKS = {
    "default": {
        "BACKEND": "django_tasks_db.DatabaseBackend",
        "QUEUES": ["default", "eventtrack"],
    }
}

# Celery, configured through Django settings (the CELERY_ namespace in proj/celery.py).
CELERY_BROKER_URL = os.environ.get("EVENTTRACK_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# The workers consume only "eventtrack": drains get there through EVENTTRACK_CELERY_QUEUE,
# the sweep through its schedule entry.
CELERY_BEAT_SCHEDULE = {
    "eventtrack-sweep": {
        "task": "django_eventtrack.sweep_outbox",
        "schedule": float(os.environ.get("EVENTTRACK_TEST_SWEEP_SECONDS", "60")),
        "options": {"queue": "eventtrack"},
    },
}

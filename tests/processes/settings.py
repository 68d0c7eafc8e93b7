"""Settings for worker processes spawned by the tests: the SQLite file named by
``EVENTTRACK_TEST_DATABASE``, vendors and options from ``EVENTTRACK_*`` variables.

The parent test owns the file (in its ``tmp_path``) and reads the outcome from
it directly, so nothing here depends on pytest-django's test database.
"""

from __future__ import annotations

import os

from tests.settings import TEST_ADAPTERS

SECRET_KEY = "tests-only-not-secret"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
INSTALLED_APPS = ["django_eventtrack"]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("EVENTTRACK_TEST_DATABASE", ""),  # unset: a database URL
        "OPTIONS": {
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        },
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
EVENTTRACK: dict[str, object] = {"ADAPTERS": list(TEST_ADAPTERS)}

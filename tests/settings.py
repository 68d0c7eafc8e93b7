"""Settings for the test suite: a SQLite file database, no vendors configured by default.

A file, not ``:memory:``: the background sender and the sender's request
threads use connections of their own, and SQLite's shared-cache in-memory
mode answers concurrent writers with "table is locked" instead of waiting.
"""

from __future__ import annotations

import os
import tempfile

from django_eventtrack.vendors import BUILT_IN

SECRET_KEY = "tests-only-not-secret"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.admin",
    "django.contrib.messages",
    "django_eventtrack",
    "tests.testapp",
]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.path.join(tempfile.gettempdir(), "eventtrack-dev.sqlite3"),
        "OPTIONS": {
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        },
        "TEST": {
            "NAME": os.path.join(tempfile.gettempdir(), f"eventtrack-test-{os.getpid()}.sqlite3")
        },
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
ROOT_URLCONF = "tests.urls"
MIDDLEWARE: list[str] = []
#: The vendor registry of the test suite: the built-in vendors and a test-only fifth one
#: (tests/fifthvendor/), which the "all vendors" tests then cover too. The conftest also
#: puts it in EVENTTRACK_ADAPTERS, so tests that replace EVENTTRACK keep it.
TEST_ADAPTERS = (*BUILT_IN, "tests.fifthvendor.adapter.AcmeAdapter")
EVENTTRACK: dict[str, object] = {"DELIVERY": "sync", "ADAPTERS": list(TEST_ADAPTERS)}

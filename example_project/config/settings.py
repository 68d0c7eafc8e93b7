"""Settings of the example shop, read from the environment (or a .env beside manage.py).

Every ``EVENTTRACK_*`` variable (credentials, API URLs, delivery) is read by
django-eventtrack itself, so nothing about vendors needs to be written here.
"""

from __future__ import annotations

from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env(DEBUG=(bool, True))
environ.Env.read_env(BASE_DIR / ".env")

SECRET_KEY = env.str("SECRET_KEY", default="example-shop-not-a-secret")
DEBUG = env.bool("DEBUG")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_eventtrack",
    "shop",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # After sessions and authentication: it keeps captured ids in the session and
    # reads the user id from request.user.
    "django_eventtrack.middleware.EventTrackMiddleware",
]
ROOT_URLCONF = "config.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "shop.privacy.context",
            ]
        },
    }
]
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'shop.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The background sender writes from its own thread: wait for the lock instead
    # of failing, and take it at BEGIN so two writers never deadlock; WAL lets readers
    # and the writer work at once (docs/installation.md, "SQLite").
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"
STATIC_URL = "static/"

# Vendor credentials and URLs come from EVENTTRACK_* environment variables (or .env).
EVENTTRACK: dict[str, object] = {
    # The events the shop tracks and their properties (docs/plan.md): under DEBUG an event
    # that breaks it raises PlanViolation; in production it waits in quarantine instead.
    # shop/events.py is generated from it (manage.py eventtrack_plan --python shop/events.py).
    "PLAN": env.str("EVENTTRACK_PLAN", default=str(BASE_DIR / "shop" / "tracking_plan.json")),
    # A visitor who signs in is identified to every vendor (traits: email and names);
    # later events about them carry their Hellotext profile.
    "IDENTIFY_ON_LOGIN": True,
    # Consent per purpose: the footer's banner (shop.privacy) grants analytics, marketing,
    # both or neither; a browser sending Global Privacy Control (or Do Not Track) is not
    # tracked at all.
    "IDENTITY": {"CONSENT": "shop.privacy.consent", "RESPECT_GPC": True},
    "MODEL_EVENTS": [
        {
            "model": "shop.Order",
            "on": "create",
            "event": "order.placed",
            "properties": "shop.tracking.order_properties",
            "identity": "shop.tracking.order_identity",
        },
        {
            "model": "shop.Order",
            "on": "update",
            "when": {"status": "shipped"},
            "event": "order.shipped",
            "properties": "shop.tracking.order_properties",
            "identity": "shop.tracking.order_identity",
        },
    ],
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {
        "django_eventtrack": {
            "handlers": ["console"],
            "level": env.str("SHOP_LOG_LEVEL", default="WARNING"),
        }
    },
}

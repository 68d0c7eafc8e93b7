"""Django settings for the web server benchmark: a shop's usual stack around its pages.

The benchmark settings (database, vendors from the environment) plus what a
``startproject`` site runs on every request: the default middleware, sessions,
authentication and a cached template loader. The pages (``tests.benchmarks.pages``)
show an order of ``tests.testapp`` rendered from a template.
"""

from __future__ import annotations

from tests.benchmarks.settings import *  # noqa: F403 (the benchmark settings, extended)

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django_eventtrack",
    "tests.testapp",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
ROOT_URLCONF = "tests.benchmarks.pages"
ALLOWED_HOSTS = ["127.0.0.1"]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
            ],
            "loaders": [
                (
                    "django.template.loaders.cached.Loader",
                    [
                        (
                            "django.template.loaders.locmem.Loader",
                            {
                                "base.html": (
                                    "<!doctype html><html><head><title>{% block title %}"
                                    "{% endblock %} - Shop</title></head><body><nav>"
                                    "{% if user.is_authenticated %}{{ user }}{% else %}"
                                    '<a href="/login">Sign in</a>{% endif %}</nav>'
                                    "{% block content %}{% endblock %}</body></html>"
                                ),
                                "order.html": (
                                    '{% extends "base.html" %}{% block title %}Order '
                                    "{{ order.reference }}{% endblock %}{% block content %}"
                                    "<h1>Order {{ order.reference }}</h1><dl>"
                                    "<dt>Status</dt><dd>{{ order.status|title }}</dd>"
                                    "<dt>Paid</dt><dd>{{ order.paid|yesno }}</dd>"
                                    "<dt>Note</dt><dd>{{ order.note|default:'-' }}</dd></dl>"
                                    '<form method="post">{% csrf_token %}<button>Track it'
                                    "</button></form>{% endblock %}"
                                ),
                            },
                        )
                    ],
                )
            ],
        },
    }
]

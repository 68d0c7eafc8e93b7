"""The pages the web server benchmark serves under gunicorn (``pages:application``).

Both pages run one query, as any page of a shop does (``SELECT 1``: the
connection, a round trip); the tracked one also calls ``track()`` in the same
transaction, for a visitor named by a Hellotext profile so all four vendors
take the event. Its answer says which event it tracked (``n``, unique across
the server's processes) and when the transaction committed (``time.time()``),
so the benchmark can time commit to "vendor received" against the vendor
stand-in's arrival stamps.
"""

from __future__ import annotations

import itertools
import json
import os
import time
from typing import Any

from django.core.wsgi import get_wsgi_application
from django.db import connection, transaction
from django.http import HttpRequest, HttpResponse
from django.urls import path

_numbers = itertools.count()


def untracked(request: HttpRequest) -> HttpResponse:
    _page_query()
    return _answer({})


def tracked(request: HttpRequest) -> HttpResponse:
    from django_eventtrack import track

    n = os.getpid() * 1_000_000 + next(_numbers)
    with transaction.atomic():
        _page_query()
        track("product.purchased", {"n": n, "product": f"SKU{n}"}, profile=f"P{n}")
    return _answer({"n": n, "committed": time.time()})


def _page_query() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _answer(content: dict[str, Any]) -> HttpResponse:
    """A JSON answer with its length, so gunicorn need not chunk it."""
    body = json.dumps(content).encode()
    response = HttpResponse(body, content_type="application/json")
    response["Content-Length"] = str(len(body))
    return response


urlpatterns = [path("untracked", untracked), path("tracked", tracked)]

application = get_wsgi_application()

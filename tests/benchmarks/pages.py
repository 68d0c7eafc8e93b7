"""The pages the web server benchmark serves under gunicorn (``pages:application``).

An order's confirmation page as a shop serves it (``tests.benchmarks.site_settings``:
the default middleware, sessions, authentication, a cached template): one query
for the order, a template rendered. The tracked page also tracks ``order.placed``
the way a view does (autocommit: ``track()`` commits its own rows), for a visitor
with a Hellotext session so all four vendors take the event. Its answer
says which event it tracked (``X-Tracked-Event``, unique across the server's
processes) and when it was committed (``X-Committed-At``, ``time.time()``), so
the benchmark can time commit to "vendor received" against the vendor
stand-in's arrival stamps.
"""

from __future__ import annotations

import itertools
import os
import time

from django.core.wsgi import get_wsgi_application
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import path

_numbers = itertools.count()


def untracked(request: HttpRequest, pk: int) -> HttpResponse:
    from tests.testapp.models import Order

    order = get_object_or_404(Order, pk=pk)
    return render(request, "order.html", {"order": order})


def orm_insert(request: HttpRequest, pk: int) -> HttpResponse:
    """The floor for any durable record of the order: the same page writing one plain
    row (an outbox ``Event`` as the ORM writes it), nothing else."""
    from django.utils import timezone

    from django_eventtrack.models import Event
    from tests.testapp.models import Order

    order = get_object_or_404(Order, pk=pk)
    n = os.getpid() * 1_000_000 + next(_numbers)
    Event.objects.create(
        name="order.placed",
        properties={"n": n, "order": order.reference},
        identity={"session": f"S{n}"},
        timestamp=timezone.now(),
    )
    return render(request, "order.html", {"order": order})


def tracked(request: HttpRequest, pk: int) -> HttpResponse:
    from django_eventtrack import track
    from tests.testapp.models import Order

    order = get_object_or_404(Order, pk=pk)
    n = os.getpid() * 1_000_000 + next(_numbers)
    track("order.placed", {"n": n, "order": order.reference}, session=f"S{n}")
    committed = time.time()
    response = render(request, "order.html", {"order": order})
    response["X-Tracked-Event"] = str(n)
    response["X-Committed-At"] = repr(committed)
    return response


urlpatterns = [
    path("untracked/<int:pk>", untracked),
    path("orm_insert/<int:pk>", orm_insert),
    path("tracked/<int:pk>", tracked),
]

application = get_wsgi_application()

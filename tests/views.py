"""Small views for the middleware tests; ``tests/urls.py`` mounts them under ``identity/``."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

from django.contrib.auth import get_user_model, login
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.urls import path

from django_eventtrack import atrack, track
from django_eventtrack.web import identity


def _current() -> dict[str, Any]:
    return identity.snapshot()


def whoami(request: HttpRequest) -> JsonResponse:
    """The current identity (context variable) and the request's."""
    return JsonResponse({"current": _current(), "request": identity.snapshot(request)})


def tracked(request: HttpRequest) -> JsonResponse:
    """track() deep inside a view, without the request, as a service function would;
    ``?n=`` marks the event (its ``n`` property), so a test can count its copies."""
    event = _place_order(request.GET.get("n"))
    assert event is not None
    return JsonResponse({"event": str(event.id), "identity": event.identity.as_dict()})


def _place_order(n: str | None = None) -> Any:
    marker = {} if n is None else {"n": int(n)}
    return track("order.placed", {"order": "O-1", "amount": 10, "currency": "USD", **marker})


async def async_whoami(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"current": _current()})


async def async_tracked(request: HttpRequest) -> JsonResponse:
    """atrack() in an async view, without the request: the middleware's visitor."""
    event = await atrack("order.placed", {"order": "O-1", "amount": 10, "currency": "USD"})
    assert event is not None
    return JsonResponse({"event": str(event.id), "identity": event.identity.as_dict()})


def streaming(request: HttpRequest) -> StreamingHttpResponse:
    def body() -> Iterator[str]:
        yield "["
        yield str(identity.current() is not None).lower()
        yield "]"

    return StreamingHttpResponse(body(), content_type="application/json")


async def async_streaming(request: HttpRequest) -> StreamingHttpResponse:
    async def body() -> AsyncIterator[str]:
        yield "["
        yield str(identity.current() is not None).lower()
        yield "]"

    return StreamingHttpResponse(body(), content_type="application/json")


def log_in(request: HttpRequest) -> JsonResponse:
    """A login view: ``django.contrib.auth.login`` fires ``user_logged_in``."""
    user = get_user_model().objects.get(username=request.GET["username"])
    login(request, user)
    return JsonResponse({"user": user.pk})


def sets_own_cookie(request: HttpRequest) -> HttpResponse:
    response = HttpResponse("ok")
    response.set_cookie("eventtrack_aid", "0" * 32)
    return response


# -- settings hooks used by the tests (dotted paths) ----------------------------------------


def hashed_email(user: Any) -> str:
    return hashlib.sha256(user.email.encode()).hexdigest()[:16]


def consent_cookie(request: HttpRequest) -> bool:
    return request.COOKIES.get("consent") == "yes"


urlpatterns = [
    path("whoami/", whoami),
    path("tracked/", tracked),
    path("async/whoami/", async_whoami),
    path("async/tracked/", async_tracked),
    path("streaming/", streaming),
    path("async/streaming/", async_streaming),
    path("own-cookie/", sets_own_cookie),
    path("login/", log_in),
]

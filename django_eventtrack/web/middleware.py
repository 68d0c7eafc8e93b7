"""``EventTrackMiddleware``: who the visitor is, for every ``track()`` during the request.

Place it after ``SessionMiddleware`` and ``AuthenticationMiddleware`` (it reads
``request.session`` and ``request.user``). On each request it captures the
visitor's :class:`~django_eventtrack.core.event.Identity` (see
:mod:`django_eventtrack.web.identity`), sets ``request.eventtrack`` and makes it the
current identity until the response is returned (or, for a streaming response,
while each chunk is produced), and issues the first-party anonymous id cookie
once, when the browser does not have it yet. Opted-out visitors get no cookie, and
neither do the responses of the admin and of views marked :func:`no_visitor_cookie`
(the metrics): staff and scrapers are not the visitors whose journey it follows.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from typing import Any, TypeVar

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.http import FileResponse, HttpRequest, HttpResponseBase, StreamingHttpResponse

from django_eventtrack.core.event import Identity
from django_eventtrack.web import identity

_END: Any = object()
#: The attribute :func:`no_visitor_cookie` sets on a view.
NO_COOKIE = "eventtrack_no_visitor_cookie"
V = TypeVar("V", bound=Callable[..., Any])


def no_visitor_cookie(view: V) -> V:
    """Mark ``view``: its responses never set the visitor's anonymous id cookie (an
    endpoint for machines or staff, not a page of the visitor's journey)."""
    setattr(view, NO_COOKIE, True)
    return view


def _for_visitors(request: HttpRequest) -> bool:
    """Whether the view that answered may give the browser a visitor id: not the admin
    (any admin site's namespace), not a view marked :func:`no_visitor_cookie`."""
    match = getattr(request, "resolver_match", None)
    if match is None:
        return True
    if "admin" in match.namespaces or match.app_name == "admin":
        return False
    return not getattr(match.func, NO_COOKIE, False)


class EventTrackMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(
        self,
        get_response: Callable[[HttpRequest], HttpResponseBase]
        | Callable[[HttpRequest], Awaitable[HttpResponseBase]],
    ) -> None:
        self.get_response = get_response
        self.async_mode = iscoroutinefunction(get_response)
        if self.async_mode:
            markcoroutinefunction(self)
        identity.get_settings()  # a misconfiguration fails at startup, not on a visitor

    def __call__(self, request: HttpRequest) -> Any:
        if self.async_mode:
            return self.__acall__(request)
        visitor, issue_cookie = begin(request)
        token = identity.set_current(visitor)
        try:
            response: HttpResponseBase = self.get_response(request)  # type: ignore[assignment]
        finally:
            identity.reset_current(token)
        return finish_response(request, response, visitor, issue_cookie)

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        # Reading request.user and request.session may query the database.
        visitor, issue_cookie = await sync_to_async(begin)(request)
        token = identity.set_current(visitor)
        try:
            response: HttpResponseBase = await self.get_response(request)  # type: ignore[misc]
        finally:
            identity.reset_current(token)
        return finish_response(request, response, visitor, issue_cookie)


def begin(request: HttpRequest) -> tuple[Identity, bool]:
    """Capture the visitor, remember their ids in the session; return the identity
    and whether the anonymous id cookie must be issued."""
    settings = identity.get_settings()
    visitor = identity.capture(request, settings)
    if not visitor.opted_out and not visitor.anonymous_id:
        visitor = visitor.replace(anonymous_id=identity.new_anonymous_id())
    identity.remember(request, visitor)
    request.eventtrack = visitor  # type: ignore[attr-defined]
    issue_cookie = not visitor.opted_out and (
        identity.anonymous_id_cookie(request, settings) != visitor.anonymous_id
    )
    return visitor, issue_cookie


def finish_response(
    request: HttpRequest, response: HttpResponseBase, visitor: Identity, issue_cookie: bool
) -> HttpResponseBase:
    settings = identity.get_settings()
    if isinstance(response, StreamingHttpResponse) and not isinstance(response, FileResponse):
        content = response.streaming_content
        if response.is_async:
            response.streaming_content = _async_chunks(content, visitor)  # type: ignore[arg-type]
        else:
            response.streaming_content = _sync_chunks(content, visitor)  # type: ignore[arg-type]
    if (
        issue_cookie
        and settings.anonymous_cookie not in response.cookies
        and _for_visitors(request)
    ):
        response.set_cookie(
            settings.anonymous_cookie,
            visitor.anonymous_id or "",
            max_age=settings.cookie_max_age,
            domain=settings.cookie_domain,
            path="/",
            secure=request.is_secure(),
            httponly=True,
            samesite="Lax",
        )
    return response


def _sync_chunks(chunks: Iterable[bytes], visitor: Identity) -> Iterator[bytes]:
    """The body, produced with ``visitor`` current; set and reset around each chunk
    so the variable is never left set, whichever context iterates the body."""
    iterator = iter(chunks)
    while True:
        token = identity.set_current(visitor)
        try:
            chunk = next(iterator, _END)
        finally:
            identity.reset_current(token)
        if chunk is _END:
            return
        yield chunk


async def _async_chunks(chunks: AsyncIterator[bytes], visitor: Identity) -> AsyncIterator[bytes]:
    iterator = aiter(chunks)
    while True:
        token = identity.set_current(visitor)
        try:
            chunk = await anext(iterator, _END)
        finally:
            identity.reset_current(token)
        if chunk is _END:
            return
        yield chunk

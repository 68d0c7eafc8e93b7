"""The shop's tracking consent (``EVENTTRACK["IDENTITY"]["CONSENT"]`` in settings).

Visitors are tracked unless they said no with the footer's button, which sets the
``shop_tracking`` cookie; a browser sending Global Privacy Control (``Sec-GPC: 1``)
is never tracked (``RESPECT_GPC``). Either way django-eventtrack issues no cookie,
renders no snippet and stores their events with every delivery skipped.
"""

from __future__ import annotations

from django.http import HttpRequest

CONSENT_COOKIE = "shop_tracking"
DECLINED = "declined"


def may_track(request: HttpRequest) -> bool:
    return request.COOKIES.get(CONSENT_COOKIE) != DECLINED


def browser_says_no(request: HttpRequest) -> bool:
    """The browser itself refuses tracking (Global Privacy Control or Do Not Track): no
    button on our page can override it, only the browser's own setting."""
    return "1" in (request.headers.get("Sec-GPC"), request.headers.get("DNT"))


def context(request: HttpRequest) -> dict[str, bool]:
    """For the footer: why this visitor is not tracked (a context processor)."""
    return {"browser_says_no": browser_says_no(request)}

"""The shop's consent banner and its "forget me" (``EVENTTRACK["IDENTITY"]["CONSENT"]``).

The footer's banner offers two choices, analytics (Hackle, Browsee) and marketing
(Hellotext, PrimeData), kept in the ``shop_consent`` cookie as the purposes granted,
comma-separated. Until a visitor answers, this shop tracks them (its own policy; a
site that must ask first sets ``CONSENT_COOKIE`` instead, whose absence grants
nothing). A browser sending Global Privacy Control (``Sec-GPC: 1``) is never tracked
(``RESPECT_GPC``). The library does the rest: an event goes only to the vendors whose
purposes the visitor granted, the others' deliveries skipped with the reason.
"""

from __future__ import annotations

from django.http import HttpRequest

CONSENT_COOKIE = "shop_consent"
PURPOSES = ("analytics", "marketing")


def consent(request: HttpRequest) -> bool | list[str]:
    """True until the banner is answered; then the purposes chosen (none: opted out)."""
    chosen = request.COOKIES.get(CONSENT_COOKIE)
    if chosen is None:
        return True
    return [purpose for purpose in chosen.split(",") if purpose in PURPOSES]


def chosen(request: HttpRequest) -> list[str]:
    """The purposes the banner shows ticked."""
    answer = consent(request)
    if answer is True:
        return list(PURPOSES)
    return [] if answer is False else list(answer)


def browser_says_no(request: HttpRequest) -> bool:
    """The browser itself refuses tracking (Global Privacy Control or Do Not Track): no
    button on our page can override it, only the browser's own setting."""
    return "1" in (request.headers.get("Sec-GPC"), request.headers.get("DNT"))


def context(request: HttpRequest) -> dict[str, bool]:
    """For the footer: why this visitor is not tracked (a context processor)."""
    return {"browser_says_no": browser_says_no(request)}

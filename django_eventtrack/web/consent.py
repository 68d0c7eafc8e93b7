"""What a visitor consented to, read from the request: the purposes granted.

Each signal the settings turn on says which purposes the visitor granted, and a
purpose is granted only if every signal grants it:

* ``CONSENT``: the site's own function(request), answering True (every
  purpose), False (none) or the purposes granted;
* ``CONSENT_COOKIE``: a cookie the site's banner writes, the purposes granted
  comma-separated (``analytics,marketing``); absent, nothing is granted yet;
* ``TCF_PURPOSES``: the IAB TCF v2 consent string (``euconsent-v2``), each of our
  purposes granted when the visitor consented to every TCF purpose it maps to;
  absent or unreadable, nothing is granted;
* ``RESPECT_GPC``: a ``Sec-GPC: 1`` (or ``DNT: 1``) request denies ``GPC_PURPOSES``
  (every purpose by default).

None of them configured, every purpose is granted. A signal that cannot be read
is logged and counts as no consent: never an error in the visitor's request.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from urllib.parse import unquote

from django.http import HttpRequest, JsonResponse

from django_eventtrack.conf import IdentitySettings, get_config
from django_eventtrack.core import tcf
from django_eventtrack.core.event import PURPOSE_PATTERN, both_grant, purposes
from django_eventtrack.core.settings import parse_list
from django_eventtrack.errors import InvalidEvent

logger = logging.getLogger("django_eventtrack.identity")

NOTHING: frozenset[str] = frozenset()


def granted(request: HttpRequest, settings: IdentitySettings) -> frozenset[str] | None:
    """The purposes ``request``'s visitor granted; None: every purpose."""
    answer: frozenset[str] | None = None
    if settings.consent is not None:
        answer = both_grant(answer, from_function(request, settings))
    if settings.consent_cookie is not None:
        answer = both_grant(answer, from_cookie(request, settings.consent_cookie))
    if settings.tcf_purposes is not None:
        answer = both_grant(answer, from_tcf(request, settings.tcf_cookie, settings.tcf_purposes))
    if settings.respect_gpc and sends_gpc(request):
        denied = get_config().purposes if settings.gpc_purposes is None else settings.gpc_purposes
        answer = (get_config().purposes if answer is None else answer) - set(denied)
    return answer


def from_function(request: HttpRequest, settings: IdentitySettings) -> frozenset[str] | None:
    """``CONSENT``'s answer: True, False or purposes."""
    assert settings.consent is not None
    answer = settings.consent(request)
    if isinstance(answer, bool):
        return None if answer else NOTHING
    try:
        return purposes(answer, "CONSENT's answer")
    except InvalidEvent as exc:
        logger.error("%s; the visitor counts as not consenting", exc)
        return NOTHING


def from_cookie(request: HttpRequest, name: str) -> frozenset[str]:
    """The purposes the site's banner cookie ``name`` grants: comma-separated names (names
    that are not purposes are ignored); absent, none yet."""
    value = unquote(request.COOKIES.get(name, ""))
    items = parse_list(value, f"the {name} cookie", "purposes, comma-separated")
    return frozenset(item for item in items if PURPOSE_PATTERN.fullmatch(item))


def from_tcf(
    request: HttpRequest, cookie: str, mapping: Mapping[str, tuple[int, ...]]
) -> frozenset[str]:
    """Our purposes whose TCF purposes the consent string in ``cookie`` all consents to."""
    value = request.COOKIES.get(cookie)
    if not value:
        return NOTHING
    try:
        consented = tcf.decode(value).purposes_consent
    except tcf.TCStringError as exc:
        logger.debug("ignored the %s cookie: %s", cookie, exc)
        return NOTHING
    return frozenset(ours for ours, needed in mapping.items() if consented.issuperset(needed))


def sends_gpc(request: HttpRequest) -> bool:
    """Whether the browser sends Global Privacy Control (or Do Not Track)."""
    return "1" in (request.headers.get("Sec-GPC"), request.headers.get("DNT"))


def gpc_json(request: HttpRequest) -> JsonResponse:
    """``/.well-known/gpc.json``: whether this site honours Global Privacy Control
    (``RESPECT_GPC``), as the GPC specification's well-known resource says."""
    return JsonResponse({"gpc": get_config().identity.respect_gpc})

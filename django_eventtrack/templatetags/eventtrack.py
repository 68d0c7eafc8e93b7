"""``{% eventtrack_script %}``: the snippet that hands the vendors' browser ids to the server.

``{% load eventtrack %}{% eventtrack_script %}`` renders a ``<script>`` tag for
``django_eventtrack/eventtrack.js`` configured from ``EVENTTRACK["IDENTITY"]``;
``inline=True`` renders the code inline instead. Under a Content Security
Policy pass ``nonce=...``; without it the tag uses the template's ``csp_nonce``
(Django 6's CSP context processor) or ``request.csp_nonce`` (django-csp).
Nothing is rendered for a visitor who opted out of tracking.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from django import template
from django.forms.utils import flatatt
from django.templatetags.static import static
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from django_eventtrack import identity

register = template.Library()

SCRIPT = "django_eventtrack/eventtrack.js"


@register.simple_tag(takes_context=True)
def eventtrack_script(
    context: template.Context, nonce: str | None = None, inline: bool = False
) -> SafeString | str:
    visitor = identity.current()
    if visitor is not None and visitor.opted_out:
        return ""
    settings = identity.get_settings()
    attributes: dict[str, Any] = {
        "data-cookie": settings.ids_cookie,
        "data-max-age": str(settings.cookie_max_age),
    }
    if settings.cookie_domain:
        attributes["data-domain"] = settings.cookie_domain
    nonce = str(nonce or _context_nonce(context) or "")
    if nonce:
        attributes["nonce"] = nonce
    if inline:
        return format_html("<script{}>{}</script>", flatatt(attributes), _source())
    return format_html('<script src="{}"{} defer></script>', static(SCRIPT), flatatt(attributes))


def _context_nonce(context: template.Context) -> Any:
    """The page's CSP nonce, if the project uses one. Django's ``LazyNonce`` is
    falsy until generated, so test for None: using it here generates it."""
    for nonce in (context.get("csp_nonce"), getattr(context.get("request"), "csp_nonce", None)):
        if nonce is not None:
            return str(nonce)
    return None


@functools.cache
def _source() -> SafeString:
    path = Path(__file__).resolve().parent.parent / "static" / SCRIPT
    # Our own file, shipped with the package; it contains no "</script".
    return mark_safe(path.read_text(encoding="utf-8"))  # noqa: S308

"""``{% eventtrack_script %}``: the snippet that hands the vendors' browser ids to the server.

``{% load eventtrack %}{% eventtrack_script %}`` renders a ``<script>`` tag for
``django_eventtrack/eventtrack.js`` configured from ``EVENTTRACK["IDENTITY"]``,
and a small inline script listing where each vendor's id is read in the browser
(the registry's :class:`~django_eventtrack.vendors.base.BrowserId` scripts: code,
since a vendor SDK may be a global ``const`` that only code can reach);
``inline=True`` renders both as one inline script. Under a Content Security
Policy pass ``nonce=...``; without it the tag uses the template's ``csp_nonce``
(Django 6's CSP context processor) or ``request.csp_nonce`` (django-csp).
Nothing is rendered for a visitor who opted out of tracking.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from django import template
from django.forms.utils import flatatt
from django.templatetags.static import static
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from django_eventtrack.conf import get_config
from django_eventtrack.core.browser_ids import BrowserId
from django_eventtrack.web import identity

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
    sources = sources_script(get_config().browser_ids)
    if inline:
        return format_html("<script{}>{}\n{}</script>", flatatt(attributes), sources, _source())
    nonced = flatatt({"nonce": nonce} if nonce else {})
    return format_html(
        '<script src="{}"{} defer></script><script{}>{}</script>',
        static(SCRIPT),
        flatatt(attributes),
        nonced,
        sources,
    )


def sources_script(browser_ids: Iterable[BrowserId]) -> SafeString:
    """``window.eventtrack.sources``: per browser id with a script, its key in the ids
    cookie, a function reading it, and when it becomes ready (``eventtrack.js`` runs
    them). The scripts are the adapters' own code (checked free of ``</`` by conf);
    names are JSON."""
    entries = []
    for browser_id in browser_ids:
        if not (browser_id.script and browser_id.script_key):
            continue
        entry = [
            f"key: {_json(browser_id.script_key)}",
            f"read: function () {{ return {browser_id.script}; }}",
        ]
        if browser_id.ready_event:
            entry.append(f"event: {_json(browser_id.ready_event)}")
        if browser_id.script_ready:
            entry.append(f"ready: function (collect) {{ {browser_id.script_ready}; }}")
        entries.append("{" + ", ".join(entry) + "}")
    # Our adapters' code, not user input; conf refuses a script containing "</".
    return mark_safe(  # noqa: S308
        "(window.eventtrack = window.eventtrack || {}).sources = [" + ", ".join(entries) + "];"
    )


def _json(value: str) -> str:
    return json.dumps(value).replace("</", "<\\/")


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

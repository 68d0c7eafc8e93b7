"""``{% consent_choices as chosen %}``: the purposes the banner shows ticked."""

from __future__ import annotations

from typing import Any

from django import template

from shop.privacy import chosen

register = template.Library()


@register.simple_tag(takes_context=True)
def consent_choices(context: template.Context) -> list[str]:
    request: Any = context.get("request")
    return chosen(request) if request is not None else []

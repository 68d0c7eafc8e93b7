"""Property and identity builders the hook tests name by dotted path."""

from __future__ import annotations

from typing import Any

from django_eventtrack.core.event import Identity
from tests.testapp.models import Order

NOT_CALLABLE = 42


def order_properties(order: Order) -> dict[str, Any]:
    return {"reference": order.reference, "status": order.status}


def order_as_object(order: Order) -> dict[str, Any]:
    """The order as the object of Hellotext's order actions."""
    return {"order": {"reference": order.reference}, "status": order.status}


def order_identity(order: Order) -> Identity | None:
    return Identity(profile=order.customer_profile) if order.customer_profile else None


def order_identity_mapping(order: Order) -> dict[str, str]:
    return {"user_id": f"customer-{order.reference}", "profile": order.customer_profile}


def broken_properties(order: Order) -> dict[str, Any]:
    raise RuntimeError(f"cannot describe {order.reference}")


def unserialisable_properties(order: Order) -> dict[str, Any]:
    return {"order": order}

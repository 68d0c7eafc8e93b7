"""What the shop tells the vendors about its orders (used by the MODEL_EVENTS hooks)."""

from __future__ import annotations

from typing import Any

from shop.models import Order


def order_properties(order: Order) -> dict[str, Any]:
    """``order`` becomes Hellotext's ``object_parameters`` (the order shape it documents)."""
    return {
        "order": {
            "reference": order.reference,
            "source": "example-shop",
            "items": [
                {
                    "product": order.product.sku,
                    "quantity": order.quantity,
                    "price": {"amount": order.product.price, "currency": order.currency},
                }
            ],
            "total": {"amount": order.total, "currency": order.currency},
        },
        "amount": order.total,
        "currency": order.currency,
        "status": order.status,
    }


def order_identity(order: Order) -> dict[str, Any]:
    """The visitor who placed the order, captured at checkout."""
    return order.tracking_identity

"""What the shop tells the vendors about its orders (used by the MODEL_EVENTS hooks)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from shop.models import Order, Product

#: The ``source`` of our products, carts and orders at Hellotext: with the reference,
#: what it finds them by, so the same order is the same object from placed to shipped.
SOURCE = "example-shop"


def product_properties(request: HttpRequest, product: Product) -> dict[str, Any]:
    """A product in the shape Hellotext documents (it needs the ``name`` to create one)."""
    return {
        "reference": product.sku,
        "source": SOURCE,
        "name": product.name,
        "price": {"amount": product.price, "currency": "USD"},
        "url": request.build_absolute_uri(),
    }


def order_properties(order: Order) -> dict[str, Any]:
    """``order`` becomes Hellotext's ``object_parameters`` (the order shape it documents)."""
    return {
        "order": {
            "reference": order.reference,
            "source": SOURCE,
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

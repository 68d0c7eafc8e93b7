"""The shop's catalogue and its demo customer, for ``manage.py seed`` and ``manage.py demo``."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model

from shop.models import Product

PRODUCTS = [("TEE-1", "Organic cotton tee", "29.90"), ("MUG-1", "Stoneware mug", "14.50")]
CUSTOMER = {"username": "ada", "email": "ada@example.com", "first_name": "Ada"}
PASSWORD = "demo-only-password"  # the demo's own throwaway customer


def seed() -> Any:
    """Create (or reset) the products and the customer ``ada``; returns the customer."""
    for sku, name, price in PRODUCTS:
        Product.objects.update_or_create(sku=sku, defaults={"name": name, "price": price})
    customer, _ = get_user_model().objects.update_or_create(
        username=CUSTOMER["username"], defaults=CUSTOMER
    )
    customer.set_password(PASSWORD)
    customer.save()
    return customer

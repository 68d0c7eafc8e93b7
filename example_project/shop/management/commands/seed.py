"""``manage.py seed``: the shop's products and a customer to sign in as."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from shop.seed import CUSTOMER, PASSWORD, seed


class Command(BaseCommand):
    help = f"Add the products and the customer {CUSTOMER['username']!r} (run migrate first)."

    def handle(self, *args: Any, **options: Any) -> None:
        seed()
        self.stdout.write(
            f"Products added; sign in as {CUSTOMER['username']} / {PASSWORD} or sign up."
        )

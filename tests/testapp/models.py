from __future__ import annotations

from django.db import models


class Order(models.Model):
    reference = models.CharField(max_length=32)
    status = models.CharField(max_length=16, default="new")
    paid = models.BooleanField(default=False)
    customer_profile = models.CharField(max_length=64, blank=True)
    note = models.TextField(blank=True)

    def __str__(self) -> str:
        return self.reference

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from shop.models import Order, Product


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ["sku", "name", "price"]


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ["reference", "product", "quantity", "status", "created_at"]
    list_filter = ["status"]
    actions = ["ship"]

    @admin.action(description="Mark selected orders as shipped")
    def ship(self, request: HttpRequest, queryset: QuerySet[Order]) -> None:
        """Saves each order (not a bulk update) so the order.shipped hook sees the change."""
        shipped = 0
        for order in queryset.exclude(status=Order.Status.SHIPPED):
            order.status = Order.Status.SHIPPED
            order.save(update_fields=["status"])
            shipped += 1
        self.message_user(request, f"{shipped} order(s) shipped.", messages.SUCCESS)

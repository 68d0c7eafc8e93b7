"""The shop's pages. Tracking is one ``track()`` call where a view knows something happened;
orders are tracked by the MODEL_EVENTS hooks in settings, not here."""

from __future__ import annotations

import secrets

from django.contrib.auth import authenticate, login
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from django_eventtrack import track
from django_eventtrack.identity import snapshot
from shop.models import Order, Product
from shop.tracking import SOURCE, product_properties


@require_POST
def sign_in(request: HttpRequest) -> HttpResponse:
    """Log in; ``IDENTIFY_ON_LOGIN`` identifies the visitor to every vendor from here."""
    user = authenticate(
        request, username=request.POST.get("username"), password=request.POST.get("password")
    )
    if user is None:
        return HttpResponse("Wrong username or password.", status=403)
    login(request, user)
    return redirect("product_list")


def product_list(request: HttpRequest) -> HttpResponse:
    return render(request, "shop/product_list.html", {"products": Product.objects.order_by("name")})


def product_detail(request: HttpRequest, sku: str) -> HttpResponse:
    product = get_object_or_404(Product, sku=sku)
    track("product.viewed", {"product": product_properties(request, product)}, request=request)
    return render(request, "shop/product_detail.html", {"product": product})


@require_POST
def add_to_cart(request: HttpRequest, sku: str) -> HttpResponse:
    product = get_object_or_404(Product, sku=sku)
    cart: dict[str, int] = request.session.get("cart", {})
    cart[product.sku] = cart.get(product.sku, 0) + 1
    request.session["cart"] = cart
    # The cart is Hellotext's object of cart.added: the same reference for the whole visit.
    cart_reference = request.session.setdefault("cart_reference", secrets.token_hex(8))
    items = [{"product": item_sku, "quantity": quantity} for item_sku, quantity in cart.items()]
    track(
        "cart.added",
        {
            "cart": {"reference": cart_reference, "source": SOURCE, "items": items},
            "amount": product.price,
            "currency": "USD",
        },
        request=request,
    )
    return redirect("cart")


def cart(request: HttpRequest) -> HttpResponse:
    items = [
        (product, request.session["cart"][product.sku])
        for product in Product.objects.filter(sku__in=request.session.get("cart", {}))
    ]
    return render(request, "shop/cart.html", {"items": items})


@require_POST
def checkout(request: HttpRequest) -> HttpResponse:
    """One order per cart line, in one transaction: the order.placed events are in the
    outbox with the orders, and go out only if the checkout commits."""
    with transaction.atomic():
        orders = [
            Order.objects.create(
                reference=f"ORD-{secrets.token_hex(4).upper()}",
                product=product,
                quantity=request.session["cart"][product.sku],
                tracking_identity=snapshot(request),
            )
            for product in Product.objects.filter(sku__in=request.session.get("cart", {}))
        ]
    request.session["cart"] = {}
    return render(request, "shop/thanks.html", {"orders": orders})

"""The shop's pages. Tracking is one call where a view knows something happened, through
``shop.events``, the typed functions generated from the tracking plan (a misspelt event
or property fails in mypy, not in production); orders are tracked by the MODEL_EVENTS
hooks in settings, not here."""

from __future__ import annotations

import secrets

from django import forms
from django.contrib.auth import authenticate, login, logout
from django.contrib.auth.forms import UserCreationForm
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from django_eventtrack import forget, grant_consent, withdraw_consent
from django_eventtrack.web import identity
from django_eventtrack.web.identity import snapshot
from shop import events
from shop.models import Order, Product
from shop.privacy import CONSENT_COOKIE, PURPOSES
from shop.tracking import SOURCE, product_properties


@require_POST
def sign_in(request: HttpRequest) -> HttpResponse:
    """Log in; ``IDENTIFY_ON_LOGIN`` identifies the visitor to every vendor from here."""
    user = authenticate(
        request, username=request.POST.get("username"), password=request.POST.get("password")
    )
    if user is None:
        # The shop's own page, the form again with the error, not a bare 403.
        context = {"username": request.POST.get("username", "")}
        return render(request, "shop/sign_in.html", context)
    login(request, user)
    return redirect("product_list")


@require_POST
def sign_out(request: HttpRequest) -> HttpResponse:
    """Log out and forget the visitor: the next person on this browser is someone else.

    ``logout()`` empties the session (and the browser ids remembered in it);
    expiring the anonymous id cookie makes the middleware issue a new one on the
    next request, so the next shopper's events are not joined to this one's.
    """
    logout(request)
    response = redirect("product_list")
    response.delete_cookie(identity.get_settings().anonymous_cookie)
    return response


class SignUpForm(UserCreationForm):  # type: ignore[type-arg]
    email = forms.EmailField(help_text="Where we send your receipts.")

    class Meta(UserCreationForm.Meta):
        fields = ("username", "email")


def sign_up(request: HttpRequest) -> HttpResponse:
    """Register and sign in at once (``IDENTIFY_ON_LOGIN`` identifies the new customer)."""
    form = SignUpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        login(request, form.save(), backend="django.contrib.auth.backends.ModelBackend")
        return redirect("product_list")
    return render(request, "shop/sign_up.html", {"form": form})


@require_POST
def privacy(request: HttpRequest) -> HttpResponse:
    """The banner's choices: the purposes ticked are kept in the ``shop_consent`` cookie.

    What the visitor refuses is withdrawn for them too (``withdraw_consent``): their
    events still waiting for those vendors are skipped, and so are their later ones
    from any browser they sign in on; what they accept lifts an earlier withdrawal.
    Refusing everything also expires the anonymous id cookie: no id is kept for
    someone who said no.
    """
    granted = [purpose for purpose in PURPOSES if purpose in request.POST.getlist("purpose")]
    refused = [purpose for purpose in PURPOSES if purpose not in granted]
    if known_visitor(request):
        if refused:
            withdraw_consent(refused, request=request)
        if granted:
            grant_consent(granted, request=request)
    response = redirect(request.POST.get("next") or "product_list")
    response.set_cookie(CONSENT_COOKIE, ",".join(granted), max_age=365 * 24 * 3600, samesite="Lax")
    if not granted:
        response.delete_cookie(identity.get_settings().anonymous_cookie)
    return response


def known_visitor(request: HttpRequest) -> bool:
    """Whether the request names the visitor (a user, an anonymous id...)."""
    return bool(identity.from_request(request).ids)


def account(request: HttpRequest) -> HttpResponse:
    """The signed-in customer's page, with "Forget me"."""
    if not request.user.is_authenticated:
        return redirect("product_list")
    return render(request, "shop/account.html")


@require_POST
def forget_me(request: HttpRequest) -> HttpResponse:
    """Erase what was tracked about the customer and track them no more
    (``forget()``: their waiting events are not sent, their stored ones scrubbed; the
    erasure request's tasks in the admin say what to delete at each vendor), then
    sign them out as :func:`sign_out` does."""
    if not request.user.is_authenticated:
        return redirect("product_list")
    anonymous_id = identity.from_request(request).anonymous_id
    forget(user_id=request.user.pk, anonymous_id=anonymous_id, source="shop account page")
    logout(request)
    response = render(request, "shop/forgotten.html")
    response.delete_cookie(identity.get_settings().anonymous_cookie)
    return response


def product_list(request: HttpRequest) -> HttpResponse:
    return render(request, "shop/product_list.html", {"products": Product.objects.order_by("name")})


def product_detail(request: HttpRequest, sku: str) -> HttpResponse:
    product = get_object_or_404(Product, sku=sku)
    events.product_viewed(product=product_properties(request, product), request=request)
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
    events.cart_added(
        cart={"reference": cart_reference, "source": SOURCE, "items": items},
        amount=product.price,
        currency="USD",
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

from __future__ import annotations

from django.templatetags.static import static
from django.urls import path
from django.views.generic import RedirectView

from shop import views

urlpatterns = [
    path("", views.product_list, name="product_list"),
    path("products/<str:sku>/", views.product_detail, name="product_detail"),
    path("cart/", views.cart, name="cart"),
    path("cart/add/<str:sku>/", views.add_to_cart, name="add_to_cart"),
    path("checkout/", views.checkout, name="checkout"),
    path("sign-in/", views.sign_in, name="sign_in"),
    path("sign-out/", views.sign_out, name="sign_out"),
    path("sign-up/", views.sign_up, name="sign_up"),
    path("privacy/", views.privacy, name="privacy"),
    path("account/", views.account, name="account"),
    path("account/forget-me/", views.forget_me, name="forget_me"),
    # Browsers ask for /favicon.ico on pages that name no icon (the admin's).
    path("favicon.ico", RedirectView.as_view(url=static("shop/favicon.svg"), permanent=True)),
]

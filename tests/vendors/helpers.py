"""What the vendor tests share: test credentials, the visitor and purchase every adapter
test starts from, and helpers to read a request's body and a delivery's row."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.utils import timezone

from django_eventtrack.conf import get_config
from django_eventtrack.core.event import Identity, TrackedEvent
from django_eventtrack.models import Delivery
from django_eventtrack.vendors import VendorAdapter

Status = Delivery.Status
WHEN = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
WHEN_TEXT = "2026-01-02T03:04:05.678Z"

HELLOTEXT_TOKEN = "ALK_hellotext-private-token"
HACKLE_KEY = "hackle-server-sdk-key"
BROWSEE_KEY = "browsee-project-api-key"
PRIMEDATA_CLIENT_ID = "pd-source-1234"
PRIMEDATA_TOKEN = "pd-write-key-5678"
#: Distinct secrets per vendor (so masking can be told apart), the built-in ones by name.
CREDENTIALS = {
    **{
        name: {key: f"{name}-{key.lower()}-secret" for key in adapter.credential_settings}
        for name, adapter in get_config().adapters.items()
    },
    "hellotext": {"API_TOKEN": HELLOTEXT_TOKEN},
    "hackle": {"API_KEY": HACKLE_KEY},
    "browsee": {"API_KEY": BROWSEE_KEY},
    "primedata": {"CLIENT_ID": PRIMEDATA_CLIENT_ID, "ACCESS_TOKEN": PRIMEDATA_TOKEN},
}

PURCHASE_PROPERTIES = {
    "product": "vxqQJ3Yg",
    "amount": Decimal("89.90"),
    "currency": "USD",
    "color": "red",
}
VISITOR = Identity(
    user_id="42",
    anonymous_id="anon-1",
    profile="prof-1",
    session="sess-1",
    device_id="dev-1",
    browsee_anonymous_id="br-1",
    primedata_session_id="pd-sess-1",
)
PRIMEDATA_NOWHERE = {"itemId": "_", "itemType": "_", "scope": PRIMEDATA_CLIENT_ID}
ORDER = {"reference": "ORD-1", "source": "shop", "total": {"amount": 29.9, "currency": "USD"}}


AdapterFactory = Callable[..., VendorAdapter]
EventFactory = Callable[..., TrackedEvent]


def body_for(adapter: VendorAdapter, event: TrackedEvent) -> dict[str, Any]:
    return dict(adapter.build_request([event]).body)


def delivery(vendor: str, event: Any) -> Delivery:
    return Delivery.objects.get(vendor=vendor, event_id=event.id)


def make_due(*deliveries: Delivery) -> None:
    Delivery.objects.filter(pk__in=[d.pk for d in deliveries]).update(
        next_attempt_at=timezone.now()
    )

"""Requests to the sandbox over real loopback HTTP, as its tests send them: each vendor's
documented path and test credentials, a valid body per vendor to vary, and the ``client``
and ``send`` fixtures (import them where they are used: ``client`` is a requests session,
not Django's test client)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests

from django_eventtrack.sandbox.browsee import BROWSEE
from django_eventtrack.sandbox.hackle import HACKLE
from django_eventtrack.sandbox.hellotext import HELLOTEXT
from django_eventtrack.sandbox.primedata import PRIMEDATA

ROOT = Path(__file__).resolve().parents[2]
NOW = "2026-08-07T12:30:00Z"
TOKEN = HELLOTEXT.credentials["API_TOKEN"]
HACKLE_KEY = HACKLE.credentials["API_KEY"]
BROWSEE_KEY = BROWSEE.credentials["API_KEY"]
CLIENT_ID = PRIMEDATA.credentials["CLIENT_ID"]
ACCESS_TOKEN = PRIMEDATA.credentials["ACCESS_TOKEN"]

PATHS = {
    "hellotext": "/v1/attribution/events",
    "hackle": "/v1/track",
    "browsee": "/api/v1/track",
    "primedata": "/powehi/smile",
}
AUTH_HEADERS = {
    "hellotext": {"Authorization": f"Bearer {TOKEN}"},
    "hackle": {"X-HACKLE-API-KEY": HACKLE_KEY},
    "browsee": {},
    "primedata": {"X-Client-ID": CLIENT_ID, "X-Client-Access-Token": ACCESS_TOKEN},
}


#: Pass as a change to leave the key out of the body.
MISSING: Any = object()


def changed(body: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    merged = {**body, **changes}
    return {key: value for key, value in merged.items() if value is not MISSING}


def hellotext_event(**changes: Any) -> dict[str, Any]:
    body = {"action": "product.viewed", "profile": "PROFILE_ID", "object": "PRODUCT_ID"}
    return changed(body, changes)


def hackle_event(**changes: Any) -> dict[str, Any]:
    body = {
        "event": {"key": "purchase", "value": 42000, "properties": {"paymentMethod": "CARD"}},
        "user": {"userId": "19285035", "deviceId": "ae2182e0"},
    }
    return changed(body, changes)


def browsee_event(**changes: Any) -> dict[str, Any]:
    return changed({"apiKey": BROWSEE_KEY, "event": "CLICKED_CHECKOUT", "userId": "42"}, changes)


def primedata_event(**changes: Any) -> dict[str, Any]:
    body = {
        "eventType": "purchase",
        "scope": CLIENT_ID,
        "timeStamp": "2021-10-15T18:49:00+07:00",
        "properties": {"total": 10},
        "source": {"itemId": "_", "itemType": "s2s", "scope": CLIENT_ID},
        "target": {"itemId": "order-1", "itemType": "order", "scope": CLIENT_ID},
    }
    return changed(body, changes)


def primedata_batch(*events: Any, **changes: Any) -> dict[str, Any]:
    body = {"sessionId": "session-1", "events": list(events or [primedata_event()])}
    return changed(body, changes)


VALID_BODIES = {
    "hellotext": hellotext_event(),
    "hackle": hackle_event(),
    "browsee": browsee_event(),
    "primedata": primedata_batch(),
}


@pytest.fixture
def client():
    with requests.Session() as session:
        yield session


@pytest.fixture
def send(sandbox, client):
    """POST a JSON body to a vendor's documented path, authenticated unless told otherwise;
    the sandbox's Hellotext knows the profile and the product :data:`VALID_BODIES` name."""
    sandbox.state("hellotext").add_profile("PROFILE_ID")
    sandbox.state("hellotext").add_object("product", "PRODUCT_ID", name="Tee")

    def send(
        vendor: str, body: Any, headers: dict[str, str] | None = None, timeout: float = 2
    ) -> requests.Response:
        sent_headers = AUTH_HEADERS[vendor] if headers is None else headers
        url = sandbox.api_url(vendor) + PATHS[vendor]
        return client.post(url, json=body, headers=sent_headers, timeout=timeout)

    return send

"""The baselines with no library code: what a user writes from the vendors' docs.

One JSON payload per vendor and event, exactly as each vendor's documentation
shows it (and as the sandbox accepts it), sent with ``requests.post``: one
request per event per vendor, one after the other.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import requests

from django_eventtrack.sandbox.vendors import BROWSEE, HACKLE, HELLOTEXT, PRIMEDATA

Request = tuple[str, dict[str, str], dict[str, Any]]


def vendor_requests(base_url: str, n: int) -> list[Request]:
    """The four requests (path, headers, JSON body) for event ``n``: a product purchase."""
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    name, profile, product = "product.purchased", f"P{n}", f"SKU{n}"
    properties = {"n": n, "product": product}
    credentials = {spec.name: spec.credentials for spec in (HELLOTEXT, HACKLE, BROWSEE, PRIMEDATA)}
    client = credentials["primedata"]["CLIENT_ID"]
    return [
        (
            f"{base_url}/hellotext/v1/attribution/events",
            {"Authorization": f"Bearer {credentials['hellotext']['API_TOKEN']}"},
            {
                "action": name,
                "profile": profile,
                "object": product,
                "tracked_at": now,
                "metadata": {"n": n},
            },
        ),
        (
            f"{base_url}/hackle/v1/track",
            {"X-HACKLE-API-KEY": credentials["hackle"]["API_KEY"]},
            {
                "event": {"key": name, "properties": properties},
                "user": {"identifiers": {"anonymousId": profile}},
            },
        ),
        (
            f"{base_url}/browsee/api/v1/track",
            {},
            {
                "apiKey": credentials["browsee"]["API_KEY"],
                "event": name,
                "properties": properties,
                "anonymousId": profile,
                "timestamp": now,
            },
        ),
        (
            f"{base_url}/primedata/powehi/smile",
            {
                "X-Client-ID": client,
                "X-Client-Access-Token": credentials["primedata"]["ACCESS_TOKEN"],
            },
            {
                "sessionId": profile,
                "events": [
                    {
                        "eventType": name,
                        "scope": client,
                        "timeStamp": now,
                        "sessionId": profile,
                        "properties": properties,
                        "source": {"itemId": "_", "itemType": "_", "scope": client},
                        "target": {"itemId": product, "itemType": "product", "scope": client},
                    }
                ],
            },
        ),
    ]


def send_loop(base_url: str, events: int, seconds: float, *, session: bool) -> dict[str, Any]:
    """Send events ``0..`` one vendor request at a time until ``events`` or ``seconds`` is up.

    ``session=False`` is the docs' ``requests.post`` (a new connection per
    request); ``session=True`` the same loop over one keep-alive ``requests.Session``.
    """
    post = requests.Session().post if session else requests.post
    failures = 0
    started = time.perf_counter()
    deadline = started + seconds
    sent = 0
    while sent < events and time.perf_counter() < deadline:
        for url, headers, body in vendor_requests(base_url, sent):
            response = post(url, json=body, headers=headers, timeout=10)
            failures += not response.ok
        sent += 1
    elapsed = time.perf_counter() - started
    return {
        "events": sent,
        "requests": sent * 4,
        "seconds": elapsed,
        "events_per_second": sent / elapsed,
        "requests_per_second": sent * 4 / elapsed,
        "failures": failures,
    }

"""The baselines with no library code: what a user writes from the vendors' docs.

One JSON payload per vendor and event, exactly as each vendor's documentation
shows it (and as the sandbox accepts it), sent with ``requests.post``: one
request per event per vendor, one after the other; or from a pool of threads
looping over keep-alive sessions, against a vendor that is slow to answer.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import requests

from django_eventtrack.sandbox.browsee import BROWSEE
from django_eventtrack.sandbox.hackle import HACKLE
from django_eventtrack.sandbox.hellotext import HELLOTEXT
from django_eventtrack.sandbox.primedata import PRIMEDATA

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


def session_pool(base_url: str, threads: int, wanted: int, seconds: float) -> dict[str, Any]:
    """``threads`` threads, each looping ``requests.Session.post`` over a keep-alive session of
    its own, until ``wanted`` requests were sent in all or ``seconds`` are up.

    What a user gets from a thread pool around the docs' call: the baseline for a
    drain against a vendor that takes a while to answer. Hackle's request, the
    one-event-per-request kind.
    """
    numbers = itertools.count()
    answered: Counter[bool] = Counter()
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def loop() -> None:
        session = requests.Session()
        while time.perf_counter() < deadline and (n := next(numbers)) < wanted:
            url, headers, body = vendor_requests(base_url, n)[1]
            ok = session.post(url, json=body, headers=headers, timeout=10).ok
            with lock:
                answered[ok] += 1

    started = time.perf_counter()
    pool = [threading.Thread(target=loop, name=f"baseline-{index}") for index in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    elapsed = time.perf_counter() - started
    sent = answered.total()
    return {
        "threads": threads,
        "requests": sent,
        "seconds": elapsed,
        "requests_per_second": sent / elapsed,
        "failures": answered[False],
    }

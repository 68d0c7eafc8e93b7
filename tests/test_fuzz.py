"""Bad input everywhere, generated: every input to ``track()`` and the adapters is either
refused with :class:`InvalidEvent` naming the field, or becomes requests that are valid
JSON within each vendor's documented limits, as the sandbox's own validators (and the
limits docs/vendors/hackle.md lists) judge. Hostile ``hello_session`` values never reach
a vendor payload, a response header or a cookie.

Bounded and reproducible: see the hypothesis profiles in ``tests/conftest.py``.
"""

from __future__ import annotations

import json
import string
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import pytest
from django.test import Client
from hypothesis import given
from hypothesis import strategies as st
from pytest_django import Settings

from django_eventtrack import track
from django_eventtrack.conf import get_config
from django_eventtrack.core.event import CORE_KEYS, MAX_IDENTIFIER_LENGTH, Identity, TrackedEvent
from django_eventtrack.errors import InvalidEvent
from django_eventtrack.models import Event
from django_eventtrack.outbox.routing import render_requests
from django_eventtrack.sandbox import registry_specs
from django_eventtrack.sandbox.spec import parse_incoming
from django_eventtrack.vendors import VendorRequest
from django_eventtrack.vendors.hackle import (
    DECIMAL_PLACES,
    MAX_PROPERTIES,
    MAX_PROPERTY_KEY_LENGTH,
    MAX_STRING_LENGTH,
    NUMBER_LIMIT,
)
from tests.processes.helpers import VENDORS

# -- strategies ---------------------------------------------------------------------------

#: Any code point, surrogates and control characters included.
ANY_CHARACTER = st.characters(codec=None, categories=None)
#: Keys and names the adapters treat specially, so they come up often.
SPECIAL_KEYS = [
    "object",
    "object_parameters",
    "object_type",
    "url",
    "amount",
    "currency",
    "value",
    "Value",
    "VALUE",
    "source",
    "target",
    "properties",
    "itemId",
    "itemType",
    "metadata",
    "product",
    "order",
    "page",
]
SPECIAL_NAMES = ["page.viewed", "product.purchased", "order.placed", "value", "x" * 128, "x" * 129]
OFFSETS = st.integers(-23 * 60, 23 * 60).map(lambda minutes: timezone(timedelta(minutes=minutes)))

texts = st.one_of(
    st.text(ANY_CHARACTER, max_size=40),
    st.text(string.printable, max_size=40),
    st.sampled_from(["", "\x00", "\ud800", "a\r\nb", "<script>", "' OR 1=1 --", "é😀", "89.90"]),
    st.integers(1020, 1030).map(lambda n: "s" * n),
    st.sampled_from(["1" * 5000, "1" * 400 + ".5", "x" * 65_537]),
)
keys = st.one_of(
    st.sampled_from(SPECIAL_KEYS), st.text(ANY_CHARACTER, max_size=12), st.just("k" * 129)
)
datetimes = st.one_of(
    st.datetimes(),  # naive: refused
    st.datetimes(timezones=st.just(UTC)),
    st.datetimes(timezones=OFFSETS),  # includes year 1 and 9999 with offsets
)
numbers = st.one_of(
    st.integers(),
    st.sampled_from([2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 10**15]),
    st.builds(pow, st.just(10), st.just(5000)),  # built: hypothesis cannot repr it
    st.floats(),  # NaN and infinities too
    st.decimals(),
    st.sampled_from([Decimal("1e999999"), Decimal("sNaN"), Decimal("0.1234567")]),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    numbers,
    texts,
    datetimes,
    st.dates(),
    st.uuids(),
    st.sampled_from([{1, 2}, b"bytes", object(), 1j, frozenset()]),  # not JSON
)
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.tuples(children, children),
        st.dictionaries(keys, children, max_size=4),
        st.dictionaries(st.integers(), children, min_size=1, max_size=2),  # non-str keys
    ),
    max_leaves=12,
)
properties = st.one_of(
    st.none(),
    st.dictionaries(keys, values, max_size=8),
    st.dictionaries(st.text("abcdefgh", min_size=1, max_size=3), st.integers(), max_size=80),
    st.just(["not", "a", "mapping"]),
)
names = st.one_of(
    st.sampled_from(SPECIAL_NAMES),
    st.from_regex(r"[a-z][a-z0-9_]{0,8}\.[a-z_.:\-]{1,8}", fullmatch=True),
    st.text(ANY_CHARACTER, max_size=20),
    st.integers(),
)
timestamps = st.one_of(st.none(), datetimes, st.just("2026-01-01T00:00:00Z"))
identifiers = st.one_of(
    st.none(),
    st.text(string.ascii_letters + string.digits + ".-_:", min_size=1, max_size=20),
    st.text(ANY_CHARACTER, max_size=20),
    st.just("i" * (MAX_IDENTIFIER_LENGTH + 1)),
    st.integers(0, 10**6),
)
identities = st.fixed_dictionaries(
    {},
    optional={name: identifiers for name in (*CORE_KEYS, *get_config().vendor_id_names)},
)


# -- what "valid" means -------------------------------------------------------------------


def sandbox_verdict(request: VendorRequest) -> tuple[int, Any] | None:
    """The sandbox's answer to ``request`` (None: accepted), through its own validators."""
    raw = request.body_bytes()
    json.loads(raw, parse_constant=lambda name: pytest.fail(f"{name} in {raw[:200]!r}"))
    headers = {name.lower(): value for name, value in request.headers.items()}
    incoming, _ = parse_incoming(headers, raw)
    (spec,) = [spec for spec in registry_specs() if spec.name == request.vendor]
    path = request.url.split(f"/{request.vendor}", 1)[1]
    (endpoint,) = [e for e in spec.endpoints if e.path == path and e.method == request.method]
    return endpoint.validate(incoming, spec.credentials)


def hackle_limit_problems(body: dict[str, Any]) -> list[str]:
    """Hackle's documented limits, checked here too (docs/vendors/hackle.md):
    case-insensitive keys and numbers of at most 15 integer and 6 decimal digits."""
    props = body["event"].get("properties", {})
    problems = []
    if len({key.casefold() for key in props}) != len(props):
        problems.append("keys collide case-insensitively")
    if len(props) > MAX_PROPERTIES:
        problems.append("too many properties")
    numbers = [body["event"]["value"]] if "value" in body["event"] else []
    for key, value in props.items():
        if len(key) > MAX_PROPERTY_KEY_LENGTH:
            problems.append(f"key {key[:20]!r} too long")
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str) and len(item) > MAX_STRING_LENGTH:
                problems.append(f"{key[:20]!r} too long")
            elif isinstance(item, int | float) and not isinstance(item, bool):
                numbers.append(item)
    for number in numbers:
        if abs(number) >= NUMBER_LIMIT or (
            isinstance(number, float) and round(number, DECIMAL_PLACES) != number
        ):
            problems.append(f"number {number!r} beyond Hackle's digits")
    return problems


def assert_requests_valid(event: TrackedEvent) -> int:
    """Build every adapter's request for ``event``; all must pass the vendor's rules."""
    built = 0
    for name, adapter_class in get_config().adapters.items():
        adapter = adapter_class(get_config().vendors[name])
        if adapter.skip_reason(event):
            continue
        request = adapter.build_request([event])
        assert sandbox_verdict(request) is None, (name, request.body)
        if name == "hackle":
            assert hackle_limit_problems(request.body) == [], request.body
        built += 1
    return built


def refused_with_field(exc: InvalidEvent) -> None:
    assert exc.field, exc
    assert str(exc)
    assert exc.field.split(".")[0].split("[")[0] in {
        "name",
        "properties",
        "timestamp",
        "identity",
        "id",
    }, exc.field


@pytest.fixture
def configured(settings: Settings) -> None:
    """Every vendor configured (the sandbox's credentials), nothing sent."""
    settings.EVENTTRACK = {
        "VENDORS": {
            spec.name: {**spec.credentials, "API_URL": f"http://127.0.0.1:9/{spec.name}"}
            for spec in registry_specs()
        },
        "DELIVERY": "worker",
    }


# -- the adapters: any event Event.create accepts is sendable to every vendor ------------------


@pytest.mark.usefixtures("configured")
@given(name=names, props=properties, timestamp=timestamps, ids=identities)
def test_every_event_is_refused_or_valid_for_every_vendor(
    name: Any, props: Any, timestamp: Any, ids: dict[str, Any]
) -> None:
    try:
        event = TrackedEvent.create(name, props, identity=Identity(**ids), timestamp=timestamp)
    except InvalidEvent as exc:
        refused_with_field(exc)
        return
    assert_requests_valid(event)


@given(props=properties, extra=st.dictionaries(keys, values, max_size=3))
def test_the_size_bound_from_validation_is_never_below_the_size(props: Any, extra: Any) -> None:
    """``MAX_EVENT_BYTES`` is checked against the bound first: it must never be lower."""
    try:
        event = TrackedEvent.create("a.b", props, vendor_extra={"hackle": extra})
    except InvalidEvent:
        return
    assert event.size_bound is not None
    assert event.size <= event.size_bound
    assert event.larger_than(event.size - 1)
    assert not event.larger_than(event.size)


@pytest.mark.usefixtures("configured")
@given(props=st.dictionaries(keys, values, max_size=90), value=numbers)
def test_hackle_fits_any_accepted_properties_to_its_limits(props: Any, value: Any) -> None:
    try:
        event = TrackedEvent.create(
            "product.purchased", {**props, "value": value}, identity=Identity(user_id="U1")
        )
    except InvalidEvent as exc:
        refused_with_field(exc)
        return
    # Hellotext skips it: no profile or session
    assert assert_requests_valid(event) == len(VENDORS) - 1


@pytest.mark.usefixtures("configured")
@given(entity=values, target=values, noun_value=values)
def test_primedata_entities_from_any_source_and_target(
    entity: Any, target: Any, noun_value: Any
) -> None:
    try:
        event = TrackedEvent.create(
            "product.viewed",
            {"source": entity, "target": target, "product": noun_value},
            identity=Identity(session="S1"),
        )
    except InvalidEvent as exc:
        refused_with_field(exc)
        return
    # Hellotext takes it only when the product is usable as its object.
    assert assert_requests_valid(event) >= 3


# -- track(): through the outbox, then the stored event is what the adapters read -------------


@pytest.mark.django_db
@pytest.mark.usefixtures("configured")
@given(name=names, props=properties, timestamp=timestamps, ids=identities)
def test_track_stores_only_sendable_events(
    name: Any, props: Any, timestamp: Any, ids: dict[str, Any]
) -> None:
    try:
        event = track(name, props, timestamp=timestamp, **ids)
    except InvalidEvent as exc:
        refused_with_field(exc)
        return
    assert event is not None
    stored = Event.objects.get(pk=event.id).to_normalised()
    assert stored.properties == event.properties
    assert stored.timestamp == event.timestamp
    for _target, request in render_requests(stored):
        if request is not None:
            assert sandbox_verdict(request) is None, request.body


@pytest.mark.django_db
@pytest.mark.usefixtures("configured")
def test_track_refusals_name_the_field() -> None:
    """The bugs the generators above found, pinned: each is refused, naming the field."""
    cases: dict[str, dict[str, Any]] = {
        "properties.n": {"n": 10**5000},  # json.dumps raised ValueError
        "properties.d": {"d": Decimal("1e999999")},  # became inf
        "properties.s": {"s": "\ud800"},  # could not be encoded when sending
        "properties.z": {"z": "a\x00b"},  # PostgreSQL jsonb refuses NUL
        "properties.\x00": {"\x00": 1},  # a key too
        "properties.t": {"t": datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5)))},
    }
    for field, props in cases.items():
        with pytest.raises(InvalidEvent) as refused:
            track("product.purchased", props, profile="P1")
        assert refused.value.field == field
    with pytest.raises(InvalidEvent) as refused:
        track("x", timestamp=datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-5))))
    assert refused.value.field == "timestamp"
    assert not Event.objects.exists()


@pytest.mark.usefixtures("configured")
def test_vendor_quirks_the_generators_found() -> None:
    """Values Hellotext, Hackle and PrimeData would have answered 4xx to, before the fixes."""
    hellotext = {
        "amount": "1" * 400 + ".5",  # float() gave inf
        "object": 5,  # object must be a non-empty string
        "url": "",
        "currency": 7,
        "order": 5,
    }
    visitor = Identity(profile="P1", anonymous_id="A1")  # A1: PrimeData's session
    event = TrackedEvent.create("order.placed", hellotext, identity=visitor)
    assert assert_requests_valid(event) == len(VENDORS)
    body = get_config().adapter("hellotext").build_request([event]).body
    assert body["object_parameters"] == {"source": "django", "reference": "5"}
    assert set(body["metadata"]) == set(hellotext) - {"order"}  # not Hellotext fields: kept
    # The noun's empty id would have become object="": now the event is skipped instead.
    event = TrackedEvent.create("order.placed", {"order": ""}, identity=visitor)
    assert assert_requests_valid(event) == len(VENDORS) - 1

    hackle = {"Value": 1, "value": 10**16, "VALUE": "x", "price": 0.1234567, "big": 1e20}
    event = TrackedEvent.create("product.purchased", hackle, identity=Identity(user_id="U1"))
    sent = get_config().adapter("hackle").build_request([event]).body["event"]
    assert "value" not in sent  # 10**16 is beyond Hackle's 15 digits: not event.value
    assert sent["properties"] == {"Value": 1, "price": 0.123457, "big": "1e+20"}

    event = TrackedEvent.create("page.viewed", {}, identity=Identity(profile="P1"))
    assert "page.viewed needs a url" in str(get_config().adapter("hellotext").skip_reason(event))
    event = TrackedEvent.create(
        "product.viewed",
        {"source": {"properties": 5}, "product": "SKU-1", "name": "Socks"},
        identity=Identity(session="S"),
    )
    assert assert_requests_valid(event) == len(VENDORS)
    # An entity with keys PrimeData's entities do not have keeps them in its properties.
    event = TrackedEvent.create(
        "product.viewed", {"target": {"itemId": "p-1", "object": None}}, identity=Identity()
    )
    target = get_config().adapter("primedata").build_request([event])
    assert target.body["events"][0]["target"]["properties"] == {"object": None}


# -- the middleware: hostile hello_session values --------------------------------------------

HOSTILE_PARTS = st.sampled_from(
    [
        *("\r\nSet-Cookie: evil=1", "\n", "<script>alert(1)</script>", "' OR 1=1 --"),
        *(";", " ", "\x00", "é", '"', "\\", "%0d%0a", "${jndi:x}"),
    ]
)
TOKENS = st.text(string.ascii_letters + string.digits, min_size=8, max_size=12)
hostile_sessions = st.one_of(
    st.builds(lambda a, bad, b: a + bad + b, TOKENS, HOSTILE_PARTS, TOKENS),
    st.builds(lambda a, n: a * n, TOKENS, st.integers(12, 40)),  # longer than 128
    st.builds(lambda a, bad: a + bad, TOKENS, st.text(ANY_CHARACTER, min_size=1, max_size=8)),
)
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_eventtrack.middleware.EventTrackMiddleware",
]


@pytest.mark.django_db
@pytest.mark.usefixtures("configured")
@given(value=hostile_sessions, in_cookie=st.booleans())
def test_hostile_hello_session_never_reaches_a_vendor_or_a_header(
    settings: Settings, value: str, in_cookie: bool
) -> None:
    settings.MIDDLEWARE = MIDDLEWARE
    client = Client()
    query = ""
    if in_cookie:
        # What a WSGI server hands Django for the UTF-8 bytes a browser sends.
        value = value.encode("utf-8", "surrogatepass").decode("latin-1")
        client.cookies["hello_session"] = value
    else:
        query = "?" + urlencode({"hello_session": value})
    response = client.get("/identity/tracked/" + query)
    assert response.status_code == 200
    event = Event.objects.get(pk=response.json()["event"])
    valid = 1 <= len(value) <= 128 and set(value) <= set(string.ascii_letters + string.digits)
    if valid:  # our generator's tokens alone: accepted, as it should be
        return
    assert "session" not in event.identity
    sent = [
        json.dumps(request.masked(), ensure_ascii=False)
        for _target, request in render_requests(event.to_normalised())
        if request is not None
    ]
    headers = "\n".join([*(f"{k}: {v}" for k, v in response.items()), response.cookies.output()])
    for text in [*sent, headers, json.dumps(event.identity)]:
        assert value not in text
        assert value.strip() not in text or not value.strip()

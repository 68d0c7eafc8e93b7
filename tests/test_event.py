"""The normalised event: names, properties, timestamps and identity are checked once."""

from __future__ import annotations

import copy
import pickle
import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from django_eventtrack.core.event import MAX_DEPTH, MAX_ITEMS, Identity, TrackedEvent
from django_eventtrack.errors import InvalidEvent


def test_defaults_give_an_id_a_utc_timestamp_and_empty_properties() -> None:
    before = datetime.now(UTC)
    event = TrackedEvent.create("product.purchased")
    assert isinstance(event.id, uuid.UUID)
    assert event.timestamp.tzinfo is UTC
    assert before <= event.timestamp <= datetime.now(UTC)
    assert event.properties == {}
    assert event.identity == Identity()
    assert event.noun == "product"


def test_properties_are_normalised_to_json() -> None:
    moment = datetime(2026, 11, 23, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    ident = uuid.UUID("12345678-1234-5678-1234-567812345678")
    event = TrackedEvent.create(
        "order.placed",
        {
            "amount": Decimal("89.90"),
            "quantity": Decimal("3"),
            "paid_at": moment,
            "day": date(2026, 11, 23),
            "ref": ident,
            "items": ({"sku": "A", "n": 1},),
            "gift": False,
            "note": None,
        },
    )
    assert event.properties == {
        "amount": 89.9,
        "quantity": 3,
        "paid_at": "2026-11-23T10:00:00Z",
        "day": "2026-11-23",
        "ref": str(ident),
        "items": [{"sku": "A", "n": 1}],
        "gift": False,
        "note": None,
    }


@pytest.mark.parametrize(
    ("properties", "field", "words"),
    [
        ({"price": object()}, "properties.price", "is a object, which is not JSON"),
        ({"cart": {"items": [1, {2, 3}]}}, "properties.cart.items[1]", "is a set"),
        ({"ratio": float("nan")}, "properties.ratio", "JSON cannot carry"),
        ({"ratio": Decimal("Infinity")}, "properties.ratio", "JSON cannot carry"),
        ({"at": datetime(2026, 1, 1)}, "properties.at", "naive datetime"),
        ({1: "x"}, "properties", "keys must be strings"),
        ({"": "x"}, "properties.", "key must be 1 to 128"),
        ({"k" * 129: "x"}, "properties." + "k" * 129, "key must be 1 to 128"),
        ({"blob": "x" * 65_537}, "properties.blob", "the limit is 65536"),
    ],
)
def test_bad_properties_are_refused_naming_the_key(
    properties: dict[Any, Any], field: str, words: str
) -> None:
    with pytest.raises(InvalidEvent) as caught:
        TrackedEvent.create("a.b", properties)
    assert caught.value.field == field
    assert words in str(caught.value)


@pytest.mark.parametrize(
    ("value", "sent"),
    [
        (2**63 - 1, 2**63 - 1),
        (-(2**63), -(2**63)),
        (Decimal("9223372036854775807"), 2**63 - 1),
        (Decimal("-9223372036854775808"), -(2**63)),
        (Decimal("1E+18"), 10**18),
        (Decimal("9223372036854775807.5"), 9223372036854775807.5),
        (Decimal("89.90"), 89.9),
        (1e30, 1e30),  # a float is inexact by choice: kept as the float it is
    ],
)
def test_numbers_within_64_bits_are_kept(value: Any, sent: Any) -> None:
    kept = TrackedEvent.create("a.b", {"n": value}).properties["n"]
    assert kept == sent
    assert type(kept) is type(sent)


@pytest.mark.parametrize(
    "value",
    [
        2**63,
        -(2**63) - 1,
        Decimal("9223372036854775808"),
        Decimal("-9223372036854775809"),
        Decimal("12345678901234567890123"),
        Decimal("1E+25"),
        Decimal("12345678901234567890123.5"),
        Decimal("1e999999"),
    ],
)
def test_an_int_and_a_decimal_beyond_64_bits_are_refused_alike(value: Any) -> None:
    """Both: a float would carry it inexactly, and JSON readers cannot carry it exactly."""
    with pytest.raises(InvalidEvent) as caught:
        TrackedEvent.create("a.b", {"n": value})
    assert caught.value.field == "properties.n"
    assert "integer part is beyond 64 bits" in str(caught.value)
    assert "send it as a string" in str(caught.value)


def test_properties_must_be_a_mapping() -> None:
    with pytest.raises(InvalidEvent, match="properties must be a mapping, got list"):
        TrackedEvent.create("a.b", ["x"])  # type: ignore[arg-type]


def test_depth_and_size_limits() -> None:
    nested: dict[str, Any] = {}
    cursor = nested
    for _ in range(MAX_DEPTH):
        cursor["x"] = {}
        cursor = cursor["x"]
    with pytest.raises(InvalidEvent, match="nested deeper than 8"):
        TrackedEvent.create("a.b", nested)
    with pytest.raises(InvalidEvent, match=f"more than {MAX_ITEMS} values"):
        TrackedEvent.create("a.b", {"list": list(range(MAX_ITEMS + 1))})


@pytest.mark.parametrize("container", [dict, list])
def test_thousands_of_levels_are_refused_at_the_ninth(container: type) -> None:
    deep: Any = "bottom"
    for _ in range(5_000):
        deep = {"x": deep} if container is dict else [deep]
    for where in ({"deep": deep}, None):
        with pytest.raises(InvalidEvent, match="nested deeper than 8 levels"):
            TrackedEvent.create(
                "a.b", where, vendor_extra=None if where else {"hackle": {"deep": deep}}
            )


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("", "must not be empty"),
        ("x" * 129, "the limit is 128"),
        ("product purchased", "may only contain"),
        (".hidden", "may only contain"),
        ("café.viewed", "may only contain"),
        (42, "must be a string, got int"),
    ],
)
def test_bad_names_are_refused(name: Any, words: str) -> None:
    with pytest.raises(InvalidEvent) as caught:
        TrackedEvent.create(name)
    assert caught.value.field == "name"
    assert words in str(caught.value)


@pytest.mark.parametrize("name", ["product.purchased", "SIGNED_UP", "app:installed", "a-b.c_d"])
def test_good_names(name: str) -> None:
    assert TrackedEvent.create(name).name == name


def test_timestamp_is_converted_to_utc() -> None:
    local = datetime(2026, 11, 23, 9, 30, tzinfo=timezone(timedelta(hours=-3)))
    assert TrackedEvent.create("a.b", timestamp=local).timestamp == datetime(
        2026, 11, 23, 12, 30, tzinfo=UTC
    )


@pytest.mark.parametrize(
    ("timestamp", "words"),
    [
        (datetime(2026, 1, 1), "must be timezone-aware"),
        ("2026-01-01T00:00:00Z", "must be a datetime, got str"),
        (datetime.now(UTC) + timedelta(days=2), "more than a day in the future"),
    ],
)
def test_bad_timestamps(timestamp: Any, words: str) -> None:
    with pytest.raises(InvalidEvent) as caught:
        TrackedEvent.create("a.b", timestamp=timestamp)
    assert caught.value.field == "timestamp"
    assert words in str(caught.value)


def test_event_id_can_be_given_and_must_be_a_uuid() -> None:
    given = uuid.uuid4()
    assert TrackedEvent.create("a.b", event_id=str(given)).id == given
    with pytest.raises(InvalidEvent, match="is not a UUID"):
        TrackedEvent.create("a.b", event_id="order-17")


def test_identity_normalises_and_validates() -> None:
    identity = Identity(user_id=42, anonymous_id="", profile="P1")
    assert identity.user_id == "42"
    assert identity.anonymous_id is None
    assert identity.as_dict() == {"user_id": "42", "profile": "P1"}
    with pytest.raises(InvalidEvent) as caught:
        Identity(session="abc\r\nSet-Cookie: x")
    assert caught.value.field == "identity.session"
    with pytest.raises(InvalidEvent, match="1 to 256 printable"):
        Identity(device_id="d" * 257)
    with pytest.raises(InvalidEvent, match="must be a string, got list"):
        Identity(profile=["P1"])  # type: ignore[arg-type]


def test_identity_merge_and_fallback() -> None:
    explicit = Identity(user_id="7")
    captured = Identity(user_id="9", session="S1", profile="P1")
    merged = explicit.merged(captured)
    assert (merged.user_id, merged.session, merged.profile) == ("7", "S1", "P1")
    assert merged.replace(session=None) == Identity(user_id="7", profile="P1")
    assert merged == Identity.from_dict(merged.as_dict(), ["session", "profile"])
    assert len({merged, explicit.merged(captured)}) == 1
    assert pickle.loads(pickle.dumps(merged)) == merged  # noqa: S301 (our own bytes)
    assert copy.deepcopy(Identity(device_id="D", opted_out=True)).opted_out
    with pytest.raises(AttributeError, match="immutable"):
        merged.session = "S2"


def test_vendor_extra_is_normalised_and_checked() -> None:
    event = TrackedEvent.create("a.b", vendor_extra={"hackle": {"event": {"value": Decimal("2")}}})
    assert event.vendor_extra == {"hackle": {"event": {"value": 2}}}
    with pytest.raises(InvalidEvent, match=r"vendor_extra\['hackle'\] must be a mapping"):
        TrackedEvent.create("a.b", vendor_extra={"hackle": 3})  # type: ignore[dict-item]

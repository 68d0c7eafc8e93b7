"""A tracking plan of 50 events for the benchmarks: the event ``track()`` sends in the
request path benchmark, declared as a shop would, among 49 others."""

from __future__ import annotations

from typing import Any

#: The event the request path benchmark tracks, and its properties.
EVENT = "product.purchased"
PROPERTIES = {"product": "SKU-1042", "amount": 19.99, "currency": "USD", "quantity": 2}


def plan_data() -> dict[str, Any]:
    """The plan as its JSON file would hold it."""
    purchased = {
        "description": "A customer paid for a product.",
        "properties": {
            "product": {"type": "string", "minLength": 1, "maxLength": 64},
            "amount": {"type": "number", "minimum": 0},
            "currency": {"type": "string", "enum": ["USD", "EUR", "GBP"]},
            "quantity": {"type": "integer", "minimum": 1},
            "coupon": {"type": "string", "pattern": "^[A-Z0-9-]+$"},
            "n": {"type": "integer"},
        },
        "required": ["product", "amount", "currency"],
        "additionalProperties": False,
    }
    events: dict[str, Any] = {EVENT: purchased}
    for number in range(49):
        events[f"feature{number}.used"] = {
            "description": f"Feature {number} was used.",
            "properties": {
                "feature": {"type": "string"},
                "count": {"type": "integer", "minimum": 0},
                "plan": {"type": "string", "enum": ["free", "pro", "team"]},
            },
            "required": ["feature"],
        }
    return {"events": events}

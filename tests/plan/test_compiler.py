"""The compiled checks: the same verdict as the reference JSON Schema implementation, clear
messages, and invalid schemas refused at load time with their place named."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st

from django_eventtrack.errors import PlanError
from django_eventtrack.plan import Violation, compile_plan, parse_plan

#: Property schemas covering every keyword the checks implement.
SCHEMAS: list[dict[str, Any]] = [
    {"type": "string"},
    {"type": "number", "minimum": 0, "exclusiveMaximum": 100},
    {"type": "integer", "multipleOf": 5},
    {"type": "number", "multipleOf": 0.5, "exclusiveMinimum": -3},
    {"type": ["string", "null"], "minLength": 2, "maxLength": 4},
    {"type": "string", "pattern": "^[A-Z]{2}-\\d+$"},
    {"enum": ["a", 1, True, None, [1, 2], {"k": "v"}]},
    {"const": 1},
    {"type": "boolean"},
    {"type": "array", "items": {"type": "integer"}, "minItems": 1, "maxItems": 3},
    {"type": "array", "uniqueItems": True},
    {"type": "array", "prefixItems": [{"type": "string"}], "items": {"type": "number"}},
    {"type": "array", "contains": {"type": "string"}, "minContains": 2, "maxContains": 3},
    {
        "type": "object",
        "properties": {"a": {"type": "integer"}, "b": {"type": "string"}},
        "required": ["a"],
        "additionalProperties": False,
    },
    {
        "type": "object",
        "patternProperties": {"^x-": {"type": "string"}},
        "additionalProperties": {"type": "number"},
        "minProperties": 1,
        "maxProperties": 2,
        "propertyNames": {"maxLength": 3},
        "dependentRequired": {"a": ["b"]},
    },
    {"anyOf": [{"type": "string"}, {"type": "integer", "minimum": 10}]},
    {"oneOf": [{"type": "number"}, {"type": "integer"}]},
    {"allOf": [{"type": "number"}, {"maximum": 3}]},
    {"not": {"type": "string"}},
    {"$ref": "#/$defs/money"},
]
DEFS = {
    "money": {
        "type": "object",
        "properties": {"amount": {"type": "number"}, "currency": {"enum": ["USD", "EUR"]}},
        "required": ["amount", "currency"],
    }
}

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-1000, 1000)
    | st.floats(-1000, 1000, allow_nan=False).map(lambda x: round(x, 2))
    | st.sampled_from(["a", "AB-12", "x-1", "USD", "", "abcdef", "b"]),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(["a", "b", "x-y", "amount", "currency", "long"]), children, max_size=4
        )
    ),
    max_leaves=10,
)


def compiled_for(schema: dict[str, Any]) -> Any:
    plan = parse_plan({"events": {"e": {"properties": {"p": schema}}}, "$defs": DEFS}, "test", {})
    return compile_plan(plan)


@pytest.mark.parametrize("schema", SCHEMAS, ids=lambda schema: str(schema)[:40])
@given(value=json_values)
def test_the_compiled_checks_agree_with_the_reference_implementation(
    schema: dict[str, Any], value: Any
) -> None:
    compiled = compiled_for(schema)
    reference = jsonschema.Draft202012Validator(
        {"type": "object", "properties": {"p": schema}, "$defs": DEFS}
    )
    ours = compiled.violations("e", {"p": value})
    assert (not ours) == reference.is_valid({"p": value}), (ours, value)


@pytest.mark.parametrize(
    ("schema", "value", "message"),
    [
        ({"type": "number"}, "five", "properties.p must be a number, got a string ('five')"),
        ({"type": "integer"}, 1.5, "properties.p must be an integer, got a number (1.5)"),
        ({"type": "integer"}, True, "properties.p must be an integer, got a boolean (true)"),
        (
            {"type": ["string", "null"]},
            3,
            "properties.p must be a string or a null, got a number (3)",
        ),
        (
            {"enum": ["USD", "EUR"]},
            "usd",
            "properties.p must be one of 'USD', 'EUR', got a string ('usd')",
        ),
        ({"minimum": 0}, -1, "properties.p must be at least 0, got a number (-1)"),
        ({"maxLength": 2}, "abc", "properties.p must be at most 2 characters long"),
        (
            {"type": "string", "format": "date-time"},
            "yesterday",
            "properties.p must be a valid date-time, got a string ('yesterday')",
        ),
        ({"type": "string", "pii": True}, 5, "properties.p must be a string, got a number"),
        (
            {"items": {"type": "integer"}},
            [1, "x"],
            "properties.p[1] must be an integer, got a string ('x')",
        ),
        (
            {"properties": {"total": {"$ref": "#/$defs/money"}}},
            {"total": {"amount": "1"}},
            "properties.p.total.amount must be a number, got a string ('1')",
        ),
        ({"properties": {"q": {}}, "required": ["q"]}, {}, "properties.p.q is required"),
    ],
)
def test_each_violation_names_the_property_and_what_was_expected(
    schema: dict[str, Any], value: Any, message: str
) -> None:
    assert message in [str(found) for found in compiled_for(schema).violations("e", {"p": value})]


def test_every_violation_is_reported_not_only_the_first() -> None:
    plan = compile_plan(
        parse_plan(
            {
                "events": {
                    "order.placed": {
                        "properties": {"amount": {"type": "number"}, "order": {"type": "string"}},
                        "required": ["order"],
                        "additionalProperties": False,
                    }
                }
            },
            "plan.json",
            {},
        )
    )
    assert plan.violations("order.placed", {"amount": "x", "extra": 1}) == [
        Violation("properties.order", "is required"),
        Violation("properties.amount", "must be a number, got a string ('x')"),
        Violation(
            "properties.extra", "is not declared in the plan (additionalProperties is false)"
        ),
    ]
    assert plan.violations("order.placed", {"order": "A", "amount": 2}) == []


def test_an_undeclared_event_is_a_violation_with_the_closest_name() -> None:
    plan = compile_plan(parse_plan({"events": {"order.placed": {}}}, "plan.json", {}))
    [violation] = plan.violations("order.placd", {})
    assert violation.field == "name"
    assert violation.message == (
        "'order.placd' is not declared in the tracking plan plan.json "
        "(did you mean 'order.placed'?)"
    )


def test_dates_and_decimals_are_checked_as_track_stores_them() -> None:
    """track() normalises properties first: a datetime is an ISO string, a Decimal a number."""
    from datetime import UTC, datetime
    from decimal import Decimal

    from django_eventtrack.core.event import normalise_properties

    plan = compiled_for(
        {
            "type": "object",
            "properties": {
                "at": {"type": "string", "format": "date-time"},
                "amount": {"type": "number"},
            },
        }
    )
    value = normalise_properties({"at": datetime.now(UTC), "amount": Decimal("9.90")})
    assert plan.violations("e", {"p": value}) == []


@pytest.mark.parametrize(
    ("schema", "problem"),
    [
        ({"type": "strng"}, "'strng' is not a JSON Schema type (did you mean 'string'?)"),
        (
            {"type": "string", "minLenght": 2},
            "'minLenght' is not a JSON Schema keyword (did you mean 'minLength'?)",
        ),
        ({"minimum": "0"}, '"minimum" must be a number'),
        ({"maxLength": -1}, '"maxLength" must be a whole number, 0 or more'),
        ({"pattern": "("}, "pattern '(' is not a valid regular expression"),
        ({"enum": []}, '"enum" must be a non-empty array'),
        ({"required": "a"}, '"required" must be an array of distinct property names'),
        ({"items": [{"type": "string"}]}, 'use "prefixItems"'),
        ({"if": {"type": "string"}}, "'if' is JSON Schema the plan's checks do not support"),
        ({"multipleOf": 0}, '"multipleOf" must be more than 0'),
        ({"pii": "yes"}, '"pii" must be true or false'),
        ("string", "a schema must be an object or a boolean"),
    ],
)
def test_an_invalid_schema_is_an_error_naming_the_plan_the_event_and_the_property(
    schema: Any, problem: str
) -> None:
    with pytest.raises(PlanError) as caught:
        compiled_for(schema)
    assert str(caught.value).startswith("tracking plan test: event 'e', property 'p': ")
    assert problem in str(caught.value)


def test_extension_keywords_and_annotations_are_accepted() -> None:
    compiled_for({"type": "string", "x-owner": "growth", "description": "d", "examples": ["a"]})


def test_unknown_formats_are_annotations() -> None:
    assert compiled_for({"format": "hostname"}).violations("e", {"p": "-- not a host"}) == []

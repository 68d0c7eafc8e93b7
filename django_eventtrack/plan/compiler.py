"""The plan's schemas compiled into plain Python checks, once, for ``track()`` to run.

Why not a JSON Schema library at run time: ``track()`` is on the caller's request
path, and the plan's schemas use a small part of JSON Schema (types, enums,
bounds, patterns, formats, nested objects and arrays, ``anyOf``/``oneOf``/
``allOf``/``not``, ``$ref`` to the plan's ``$defs``). Compiled to closures, one
per keyword, checking an event costs a few microseconds and no dependency; the
measured figures against ``jsonschema``, ``fastjsonschema`` and ``jsonschema-rs``
are in docs/plan.md. Compiling also checks each schema against the rules of the
JSON Schema 2020-12 metaschema for those keywords, so an invalid schema
(``{"type": "strng"}``) is an error naming the plan, the event and the property;
a keyword outside that part of JSON Schema is refused the same way rather than
silently ignored. ``manage.py check`` also runs the full metaschema when
``jsonschema`` is installed (the checks of ``django_eventtrack.checks``).

A check appends a :class:`Violation` per problem to a list and returns nothing;
where a value sits (``properties.order.items[2].price``) is only spelt out when
a violation is recorded.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django_eventtrack.errors import PlanError
from django_eventtrack.plan.containers import COMBINATORS, array_check, negated, object_check
from django_eventtrack.plan.declared import DEFS_PREFIX, PlannedEvent, TrackingPlan
from django_eventtrack.plan.values import (
    FORMAT_TESTS,
    INSTANCE_TYPES,
    JSON_TYPES,
    TYPE_TESTS,
    Check,
    Violation,
    Where,
    canonical,
    combined,
    described,
    is_integer,
    is_number,
    no_check,
    refuse_all,
    undeclared,
    violation,
)

#: Keywords that only describe (JSON Schema annotations, and ``pii``, which the
#: privacy settings read); ``x-`` prefixed keys are extensions, ignored too.
ANNOTATIONS = frozenset(
    {"title", "description", "default", "examples", "deprecated", "readOnly", "writeOnly"}
    | {"$comment", "$schema", "$id", "contentMediaType", "contentEncoding", "pii"}
)
#: Valid JSON Schema that the compiled checks do not implement: refused by name.
UNSUPPORTED = frozenset(
    {"if", "then", "else", "dependentSchemas", "unevaluatedProperties", "unevaluatedItems"}
    | {"$dynamicRef", "$dynamicAnchor", "$anchor", "$recursiveRef", "$recursiveAnchor"}
    | {"$defs", "definitions", "dependencies", "contentSchema", "$vocabulary"}
)
# -- compiling ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Location:
    """Where a schema sits in the plan, for schema errors: the event and the property."""

    source: str
    event: str
    path: str = ""

    def at(self, part: str) -> Location:
        joined = (
            f"{self.path}{part}" if part.startswith("[") or not self.path else f"{self.path}.{part}"
        )
        return Location(self.source, self.event, joined)

    def error(self, problem: str) -> PlanError:
        prop = f", property {self.path!r}" if self.path else ""
        return PlanError(f"tracking plan {self.source}: {self.event}{prop}: {problem}")


class Compiler:
    """Turns schemas into checks; ``$ref``'s targets are compiled once each."""

    def __init__(self, plan: TrackingPlan) -> None:
        self.plan = plan
        self.refs: dict[str, list[Check]] = {}

    def compile(self, schema: Any, at: Location, *, show: bool = True) -> Check:
        """The check of ``schema``; ``show`` is false inside a ``pii`` schema (values
        are then left out of the messages)."""
        if schema is True:
            return no_check
        if schema is False:
            return refuse_all
        if not isinstance(schema, Mapping):
            raise at.error(f"a schema must be an object or a boolean, got {schema!r}")
        self._check_keywords(schema, at)
        show = show and schema.get("pii") is not True
        if "pii" in schema and not isinstance(schema["pii"], bool):
            raise at.error(f'"pii" must be true or false, got {schema["pii"]!r}')
        checks = [
            check
            for build in (
                self._ref,
                _type,
                _enum,
                _const,
                _number_bounds,
                _string_bounds,
                _format,
                self._object,
                self._array,
                self._combinators,
            )
            if (check := build(schema, at, show)) is not None
        ]
        return combined(checks)

    def _check_keywords(self, schema: Mapping[str, Any], at: Location) -> None:
        for keyword in schema:
            if not isinstance(keyword, str):
                raise at.error(f"keyword {keyword!r} is not a string")
            if keyword in UNSUPPORTED:
                raise at.error(
                    f"{keyword!r} is JSON Schema the plan's checks do not support; the plan "
                    "supports type, enum, const, bounds, pattern, format, properties, items, "
                    "anyOf/oneOf/allOf/not and $ref to the plan's $defs (docs/plan.md)"
                )
            if keyword not in KEYWORDS and keyword not in ANNOTATIONS:
                if keyword.startswith("x-"):
                    continue
                close = difflib.get_close_matches(keyword, sorted(KEYWORDS | ANNOTATIONS), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise at.error(f"{keyword!r} is not a JSON Schema keyword{hint}")

    def _ref(self, schema: Mapping[str, Any], at: Location, show: bool) -> Check | None:
        ref = schema.get("$ref")
        if ref is None:
            return None
        name = str(ref).removeprefix(DEFS_PREFIX)
        if name not in self.refs:
            cell: list[Check] = []
            self.refs[name] = cell
            target = Location(self.plan.source, f"$defs {name!r}")
            cell.append(self.compile(self.plan.defs[name], target, show=show))
        cell = self.refs[name]

        def check(value: Any, where: Where, out: list[Violation]) -> None:
            cell[0](value, where, out)

        return check

    def _object(self, schema: Mapping[str, Any], at: Location, show: bool) -> Check | None:
        if not OBJECT_KEYWORDS & set(schema):
            return None
        properties = _mapping(schema, "properties", at)
        compiled = {
            name: self.compile(sub, at.at(name), show=show) for name, sub in properties.items()
        }
        patterns = [
            (_regex(pattern, at), self.compile(sub, at.at(pattern), show=show))
            for pattern, sub in _mapping(schema, "patternProperties", at).items()
        ]
        additional = schema.get("additionalProperties")
        extra = (
            None
            if additional is None or additional is True
            else (
                undeclared
                if additional is False
                else self.compile(additional, at.at("*"), show=show)
            )
        )
        names = (
            self.compile(schema["propertyNames"], at.at("(names)"))
            if "propertyNames" in schema
            else None
        )
        return object_check(
            compiled,
            patterns,
            extra,
            names,
            required=_names(schema, "required", at),
            dependent=_dependent(schema, at),
            sizes=(_count(schema, "minProperties", at), _count(schema, "maxProperties", at)),
        )

    def _array(self, schema: Mapping[str, Any], at: Location, show: bool) -> Check | None:
        if not ARRAY_KEYWORDS & set(schema):
            return None
        if isinstance(schema.get("items"), list):
            raise at.error('"items" must be one schema; for a tuple, use "prefixItems"')
        prefix = schema.get("prefixItems", [])
        if not isinstance(prefix, list):
            raise at.error('"prefixItems" must be an array of schemas')
        head = [self.compile(sub, at.at(f"[{i}]"), show=show) for i, sub in enumerate(prefix)]
        items = self.compile(schema["items"], at.at("[]"), show=show) if "items" in schema else None
        contains = (
            self.compile(schema["contains"], at.at("[]"), show=show)
            if "contains" in schema
            else None
        )
        return array_check(
            head,
            items,
            sizes=(_count(schema, "minItems", at), _count(schema, "maxItems", at)),
            unique=_flag(schema, "uniqueItems", at),
            contains=contains,
            contained=(
                _count(schema, "minContains", at, default=1),
                _count(schema, "maxContains", at),
            ),
        )

    def _combinators(self, schema: Mapping[str, Any], at: Location, show: bool) -> Check | None:
        checks: list[Check] = []
        for keyword in ("allOf", "anyOf", "oneOf"):
            if keyword not in schema:
                continue
            subs = schema[keyword]
            if not isinstance(subs, list) or not subs:
                raise at.error(f'"{keyword}" must be a non-empty array of schemas')
            compiled = [self.compile(sub, at, show=show) for sub in subs]
            checks.append(COMBINATORS[keyword](compiled))
        if "not" in schema:
            checks.append(negated(self.compile(schema["not"], at, show=show)))
        return combined(checks) if checks else None


# -- keyword by keyword -------------------------------------------------------------------


def _type(schema: Mapping[str, Any], at: Location, show: bool) -> Check | None:
    declared = schema.get("type")
    if declared is None:
        return None
    names = _type_names(declared, at)
    tests = tuple(TYPE_TESTS[name] for name in names)
    expected = " or ".join(("an " if n[0] in "aeiou" else "a ") + n for n in names)
    if len(names) == 1 and names[0] in INSTANCE_TYPES:
        # The common case, without a call per test: isinstance, bool kept out of numbers.
        kind, boolean = INSTANCE_TYPES[names[0]]

        def check_instance(value: Any, where: Where, out: list[Violation]) -> None:
            if not isinstance(value, kind) or (boolean and isinstance(value, bool)):
                violation(out, where, f"must be {expected}, got {described(value, show)}")

        return check_instance
    if len(tests) == 1:
        (test,) = tests

        def check(value: Any, where: Where, out: list[Violation]) -> None:
            if not test(value):
                violation(out, where, f"must be {expected}, got {described(value, show)}")

        return check

    def check_any(value: Any, where: Where, out: list[Violation]) -> None:
        if not any(test(value) for test in tests):
            violation(out, where, f"must be {expected}, got {described(value, show)}")

    return check_any


def _type_names(declared: Any, at: Location) -> list[str]:
    names = declared if isinstance(declared, list) else [declared]
    for name in names:
        if name not in JSON_TYPES:
            close = difflib.get_close_matches(str(name), JSON_TYPES, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise at.error(
                f"{name!r} is not a JSON Schema type{hint}; the types are {', '.join(JSON_TYPES)}"
            )
    if not names or len(set(names)) != len(names):
        raise at.error('"type" must be a type name or a non-empty array of distinct ones')
    return names


def _enum(schema: Mapping[str, Any], at: Location, show: bool) -> Check | None:
    if "enum" not in schema:
        return None
    values = schema["enum"]
    if not isinstance(values, list) or not values:
        raise at.error('"enum" must be a non-empty array of values')
    allowed = frozenset(canonical(value) for value in values)
    shown = _listed(values, show)

    def check(value: Any, where: Where, out: list[Violation]) -> None:
        if canonical(value) not in allowed:
            violation(out, where, f"must be one of {shown}, got {described(value, show)}")

    return check


def _listed(values: Sequence[Any], show: bool) -> str:
    text = ", ".join(repr(value) for value in values[:10])
    return text + (f" and {len(values) - 10} more" if len(values) > 10 else "")


def _const(schema: Mapping[str, Any], at: Location, show: bool) -> Check | None:
    if "const" not in schema:
        return None
    expected = canonical(schema["const"])
    shown = repr(schema["const"])

    def check(value: Any, where: Where, out: list[Violation]) -> None:
        if canonical(value) != expected:
            violation(out, where, f"must be {shown}, got {described(value, show)}")

    return check


def _number(schema: Mapping[str, Any], keyword: str, at: Location) -> float | None:
    value = schema.get(keyword)
    if value is None:
        return None
    if not is_number(value) or not math.isfinite(value):
        raise at.error(f'"{keyword}" must be a number, got {value!r}')
    return value  # type: ignore[no-any-return]  # int or float, checked above


def _number_bounds(schema: Mapping[str, Any], at: Location, show: bool) -> Check | None:
    """``minimum``, ``maximum``, ``exclusiveMinimum``, ``exclusiveMaximum``, ``multipleOf``:
    each applies to numbers only (another type is ``type``'s business)."""
    low, high = _number(schema, "minimum", at), _number(schema, "maximum", at)
    above, below = _number(schema, "exclusiveMinimum", at), _number(schema, "exclusiveMaximum", at)
    divisor = _number(schema, "multipleOf", at)
    if divisor is not None and divisor <= 0:
        raise at.error(f'"multipleOf" must be more than 0, got {divisor!r}')
    if low is None and high is None and above is None and below is None and divisor is None:
        return None

    def check(value: Any, where: Where, out: list[Violation]) -> None:
        if not isinstance(value, int | float) or isinstance(value, bool):
            return
        if low is not None and value < low:
            violation(out, where, f"must be at least {low!r}, got {described(value, show)}")
        if high is not None and value > high:
            violation(out, where, f"must be at most {high!r}, got {described(value, show)}")
        if above is not None and value <= above:
            violation(out, where, f"must be more than {above!r}, got {described(value, show)}")
        if below is not None and value >= below:
            violation(out, where, f"must be less than {below!r}, got {described(value, show)}")
        if divisor is not None and not _multiple(value, divisor):
            shown = described(value, show)
            violation(out, where, f"must be a multiple of {divisor!r}, got {shown}")

    return check


def _multiple(value: float, divisor: float) -> bool:
    """As JSON Schema validators compute it: exact for integers, by the quotient for floats."""
    if isinstance(divisor, float) or isinstance(value, float):
        try:
            quotient = value / divisor
            return int(quotient) == quotient
        except OverflowError:
            return False
    return value % divisor == 0


def _count(
    schema: Mapping[str, Any], keyword: str, at: Location, default: int | None = None
) -> int | None:
    value = schema.get(keyword)
    if value is None:
        return default
    if not is_integer(value) or value < 0:
        raise at.error(f'"{keyword}" must be a whole number, 0 or more, got {value!r}')
    return int(value)


def _flag(schema: Mapping[str, Any], keyword: str, at: Location) -> bool:
    value = schema.get(keyword, False)
    if not isinstance(value, bool):
        raise at.error(f'"{keyword}" must be true or false, got {value!r}')
    return value


def _regex(pattern: Any, at: Location) -> re.Pattern[str]:
    if not isinstance(pattern, str):
        raise at.error(f"a pattern must be a string, got {pattern!r}")
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise at.error(f"pattern {pattern!r} is not a valid regular expression: {exc}") from None


def _string_bounds(schema: Mapping[str, Any], at: Location, show: bool) -> Check | None:
    shortest, longest = _count(schema, "minLength", at), _count(schema, "maxLength", at)
    pattern = _regex(schema["pattern"], at) if "pattern" in schema else None
    if shortest is None and longest is None and pattern is None:
        return None

    def check(value: Any, where: Where, out: list[Violation]) -> None:
        if not isinstance(value, str):
            return
        if shortest is not None and len(value) < shortest:
            violation(out, where, f"must be at least {shortest} characters long")
        if longest is not None and len(value) > longest:
            violation(out, where, f"must be at most {longest} characters long")
        if pattern is not None and not pattern.search(value):
            shown = described(value, show)
            violation(out, where, f"must match the pattern {pattern.pattern!r}, got {shown}")

    return check


def _format(schema: Mapping[str, Any], at: Location, show: bool) -> Check | None:
    name = schema.get("format")
    if name is None:
        return None
    if not isinstance(name, str):
        raise at.error(f'"format" must be a string, got {name!r}')
    test = FORMAT_TESTS.get(name)
    if test is None:
        return None  # an annotation only; manage.py check warns about it

    def check(value: Any, where: Where, out: list[Violation]) -> None:
        if isinstance(value, str) and not test(value):
            violation(out, where, f"must be a valid {name}, got {described(value, show)}")

    return check


OBJECT_KEYWORDS = frozenset(
    {"properties", "required", "additionalProperties", "patternProperties", "propertyNames"}
    | {"minProperties", "maxProperties", "dependentRequired"}
)
ARRAY_KEYWORDS = frozenset(
    {"items", "prefixItems", "minItems", "maxItems", "uniqueItems", "contains"}
    | {"minContains", "maxContains"}
)
COMBINATOR_KEYWORDS = frozenset({"allOf", "anyOf", "oneOf", "not"})
KEYWORDS = (
    frozenset({"type", "enum", "const", "$ref", "format", "pattern", "minLength", "maxLength"})
    | {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"}
    | OBJECT_KEYWORDS
    | ARRAY_KEYWORDS
    | COMBINATOR_KEYWORDS
)


def _mapping(schema: Mapping[str, Any], keyword: str, at: Location) -> Mapping[str, Any]:
    value = schema.get(keyword, {})
    if not isinstance(value, Mapping) or not all(isinstance(key, str) for key in value):
        raise at.error(f'"{keyword}" must be an object of property name to schema')
    return value


def _names(schema: Mapping[str, Any], keyword: str, at: Location) -> tuple[str, ...]:
    value = schema.get(keyword, [])
    if (
        not isinstance(value, list)
        or not all(isinstance(name, str) for name in value)
        or len(set(value)) != len(value)
    ):
        raise at.error(f'"{keyword}" must be an array of distinct property names')
    return tuple(value)


def _dependent(schema: Mapping[str, Any], at: Location) -> tuple[tuple[str, tuple[str, ...]], ...]:
    value = schema.get("dependentRequired", {})
    if not isinstance(value, Mapping):
        raise at.error('"dependentRequired" must be an object of property name to names')
    return tuple(
        (name, _names({"dependentRequired": needed}, "dependentRequired", at))
        for name, needed in value.items()
    )


# -- the compiled plan --------------------------------------------------------------------


class CompiledPlan:
    """The plan with its checks: :meth:`violations` is what ``track()`` calls."""

    def __init__(self, plan: TrackingPlan) -> None:
        compiler = Compiler(plan)
        self.plan = plan
        self._events = {event.name: _compiled(compiler, event) for event in plan}
        self._identify = _compiled(compiler, plan.identify) if plan.identify is not None else None
        for name, schema in plan.defs.items():  # unused ones are checked too
            compiler.compile(schema, Location(plan.source, f"$defs {name!r}"))

    def violations(
        self, name: str, properties: Mapping[str, Any], *, identify: bool = False
    ) -> list[Violation]:
        """Every way the event breaks the plan; empty when it follows it. An undeclared
        name is one violation; ``identify()`` traits are checked only when the plan
        declares them (``"identify"``)."""
        check = self._identify if identify else self._events.get(name)
        if check is None:
            return [] if identify else [self.undeclared(name)]
        found: list[Violation] = []
        check(properties, None, found)
        return found

    def undeclared(self, name: str) -> Violation:
        close = difflib.get_close_matches(name, list(self._events), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return Violation(
            "name", f"{name!r} is not declared in the tracking plan {self.plan.source}{hint}"
        )


def _compiled(compiler: Compiler, event: PlannedEvent) -> Check:
    label = "identify" if event is compiler.plan.identify else f"event {event.name!r}"
    return compiler.compile(dict(event.schema), Location(compiler.plan.source, label))


def compile_plan(plan: TrackingPlan) -> CompiledPlan:
    """Compile ``plan``; :class:`PlanError` names the first invalid schema."""
    return CompiledPlan(plan)

"""The checks of objects (``properties``, ``required``, ``additionalProperties``...),
arrays (``items``, ``contains``, sizes) and combinations (``anyOf``, ``oneOf``, ``allOf``,
``not``), built from their parts' checks by :mod:`.compiler`."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from django_eventtrack.plan.values import Check, Violation, Where, canonical, combined, violation


def object_check(
    properties: Mapping[str, Check],
    patterns: Sequence[tuple[re.Pattern[str], Check]],
    extra: Check | None,
    names: Check | None,
    *,
    required: tuple[str, ...],
    dependent: tuple[tuple[str, tuple[str, ...]], ...],
    sizes: tuple[int | None, int | None],
) -> Check:
    """The object keywords, each a check of its own, run on dicts only."""
    parts = [
        _required(required) if required else None,
        _dependent_required(dependent) if dependent else None,
        _members(properties, patterns, extra, names)
        if properties or patterns or extra or names
        else None,
        _sized(sizes, "properties") if sizes != (None, None) else None,
    ]
    inner = combined([part for part in parts if part is not None])

    def check(value: Any, where: Where, out: list[Violation]) -> None:
        if isinstance(value, dict):
            inner(value, where, out)

    return check


def _required(required: tuple[str, ...]) -> Check:
    def check(value: Any, where: Where, out: list[Violation]) -> None:
        for name in required:
            if name not in value:
                violation(out, (where, name), "is required")

    return check


def _dependent_required(dependent: tuple[tuple[str, tuple[str, ...]], ...]) -> Check:
    def check(value: Any, where: Where, out: list[Violation]) -> None:
        for name, needed in dependent:
            if name not in value:
                continue
            for other in needed:
                if other not in value:
                    violation(out, (where, other), f"is required when {name!r} is given")

    return check


def _members(
    properties: Mapping[str, Check],
    patterns: Sequence[tuple[re.Pattern[str], Check]],
    extra: Check | None,
    names: Check | None,
) -> Check:
    """``properties``, then ``patternProperties``, then ``additionalProperties`` for a
    member neither matched; ``propertyNames`` for every member's name."""
    if not patterns and names is None:
        return _declared_members(properties, extra)

    def check(value: Any, where: Where, out: list[Violation]) -> None:
        for name, item in value.items():
            at = (where, name)
            sub = properties.get(name)
            if sub is not None:
                sub(item, at, out)
            matched = _patterns(patterns, name, item, at, out) or sub is not None
            if not matched and extra is not None:
                extra(item, at, out)
            if names is not None:
                names(name, at, out)

    return check


def _declared_members(properties: Mapping[str, Check], extra: Check | None) -> Check:
    """:func:`_members` without patterns or name rules: one lookup per member."""
    declared = dict(properties)

    def check(value: Any, where: Where, out: list[Violation]) -> None:
        for name, item in value.items():
            sub = declared.get(name, extra)
            if sub is not None:
                sub(item, (where, name), out)

    return check


def _patterns(
    patterns: Sequence[tuple[re.Pattern[str], Check]],
    name: str,
    item: Any,
    at: Where,
    out: list[Violation],
) -> bool:
    matched = False
    for pattern, sub in patterns:
        if pattern.search(name):
            matched = True
            sub(item, at, out)
    return matched


def _sized(sizes: tuple[int | None, int | None], what: str) -> Check:
    fewest, most = sizes

    def check(value: Any, where: Where, out: list[Violation]) -> None:
        if fewest is not None and len(value) < fewest:
            violation(out, where, f"must have at least {fewest} {what}")
        if most is not None and len(value) > most:
            violation(out, where, f"must have at most {most} {what}")

    return check


def array_check(
    head: Sequence[Check],
    items: Check | None,
    *,
    sizes: tuple[int | None, int | None],
    unique: bool,
    contains: Check | None,
    contained: tuple[int | None, int | None],
) -> Check:
    sized = _sized(sizes, "items")
    least, greatest = contained

    def check(value: Any, where: Where, out: list[Violation]) -> None:
        if not isinstance(value, list):
            return
        for index, item in enumerate(value):
            sub = head[index] if index < len(head) else items
            if sub is not None:
                sub(item, (where, index), out)
        sized(value, where, out)
        if unique and len({canonical(item) for item in value}) != len(value):
            violation(out, where, "must not hold the same item twice")
        if contains is not None:
            _contains(value, where, out, contains, least, greatest)

    return check


def _contains(
    value: list[Any],
    where: Where,
    out: list[Violation],
    contains: Check,
    least: int | None,
    greatest: int | None,
) -> None:
    matching = sum(not _failures(contains, item) for item in value)
    if least is not None and matching < least:
        violation(out, where, f"must hold at least {least} matching item(s), holds {matching}")
    if greatest is not None and matching > greatest:
        violation(out, where, f"must hold at most {greatest} matching item(s), holds {matching}")


def _failures(check: Check, value: Any) -> list[Violation]:
    found: list[Violation] = []
    check(value, None, found)
    return found


def _all_of(checks: Sequence[Check]) -> Check:
    return combined(checks)


def _any_of(checks: Sequence[Check]) -> Check:
    def check(value: Any, where: Where, out: list[Violation]) -> None:
        first: list[Violation] = []
        for each in checks:
            found: list[Violation] = []
            each(value, where, found)
            if not found:
                return
            first = first or found
        reasons = "; ".join(violation.message for violation in first[:3])
        violation(out, where, f"must match one of the plan's anyOf choices (the first: {reasons})")

    return check


def _one_of(checks: Sequence[Check]) -> Check:
    def check(value: Any, where: Where, out: list[Violation]) -> None:
        matching = sum(not _failures(each, value) for each in checks)
        if matching != 1:
            violation(
                out,
                where,
                f"must match exactly one of the plan's oneOf choices, matches {matching}",
            )

    return check


def negated(sub: Check) -> Check:
    def check(value: Any, where: Where, out: list[Violation]) -> None:
        if not _failures(sub, value):
            violation(out, where, 'must not match the plan\'s "not" schema')

    return check


COMBINATORS: dict[str, Callable[[Sequence[Check]], Check]] = {
    "allOf": _all_of,
    "anyOf": _any_of,
    "oneOf": _one_of,
}

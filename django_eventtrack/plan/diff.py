"""Comparing two plans: which changes break the events callers send today.

A change is *breaking* when an event that followed the old plan may break the new
one (a removed event, a new required property, a narrowed type, a removed enum
value, a tighter bound, a closed object) or when a vendor's name for it changes;
otherwise it is *compatible* (a new event, a new optional property, a widened
type, a new description).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from django_eventtrack.plan.declared import ACCEPTED, PlannedEvent, TrackingPlan
from django_eventtrack.plan.values import canonical

#: Bounds that break when raised (lower bounds) or lowered (upper bounds).
LOWER_BOUNDS = ("minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties")
UPPER_BOUNDS = ("maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties")
#: Keywords any change to which is breaking (a new pattern, another format...).
STRICT = ("pattern", "format", "const", "multipleOf", "$ref")


@dataclass(frozen=True)
class Change:
    """One difference: where (``order.placed``, ``order.placed: amount``) and what."""

    where: str
    text: str
    breaking: bool

    def __str__(self) -> str:
        return f"{'BREAKING' if self.breaking else 'compatible'}  {self.where}: {self.text}"


def diff(old: TrackingPlan, new: TrackingPlan) -> list[Change]:
    """Every change from ``old`` to ``new``, breaking ones first."""
    changes: list[Change] = []
    for name in old.events.keys() - new.events.keys():
        changes.append(Change(name, "event removed", True))
    for name in new.events.keys() - old.events.keys():
        changes.append(Change(name, "event added", False))
    for name in old.events.keys() & new.events.keys():
        changes += _event(old.events[name], new.events[name], old, new)
    return sorted(changes, key=lambda change: (not change.breaking, change.where, change.text))


def _event(
    before: PlannedEvent, after: PlannedEvent, old: TrackingPlan, new: TrackingPlan
) -> list[Change]:
    changes = list(_object(before.name, before.schema, after.schema, old, new, ""))
    if before.description != after.description:
        changes.append(Change(before.name, "description changed", False))
    for vendor in sorted(before.vendors.keys() | after.vendors.keys()):
        was, now = dict(before.vendors.get(vendor, {})), dict(after.vendors.get(vendor, {}))
        if was.pop(ACCEPTED, None) != now.pop(ACCEPTED, None):
            changes.append(Change(before.name, f"what {vendor} does accepted or not", False))
        if was != now:
            changes.append(Change(before.name, f"mapping at {vendor}: {was} -> {now}", True))
    return changes


def _object(
    event: str,
    before: Mapping[str, Any],
    after: Mapping[str, Any],
    old: TrackingPlan,
    new: TrackingPlan,
    prefix: str,
) -> Iterator[Change]:
    before, after = old.resolve(before), new.resolve(after)
    where = f"{event}: {prefix.rstrip('.')}" if prefix else event
    was_props, now_props = before.get("properties") or {}, after.get("properties") or {}
    was_required, now_required = set(before.get("required") or ()), set(after.get("required") or ())
    closed_before = before.get("additionalProperties", True) is False
    closed_after = after.get("additionalProperties", True) is False
    if closed_after and not closed_before:
        yield Change(where, "now refuses undeclared properties", True)
    if closed_before and not closed_after:
        yield Change(where, "now allows undeclared properties", False)
    for name in sorted(was_props.keys() - now_props.keys()):
        yield Change(f"{event}: {prefix}{name}", "property removed", closed_after)
    for name in sorted(now_props.keys() - was_props.keys()):
        required = name in now_required
        text = "required property added" if required else "optional property added"
        yield Change(f"{event}: {prefix}{name}", text, required)
    for name in sorted(now_required - was_required - (now_props.keys() - was_props.keys())):
        yield Change(f"{event}: {prefix}{name}", "now required", True)
    for name in sorted(was_required - now_required):
        yield Change(f"{event}: {prefix}{name}", "now optional", False)
    for name in sorted(was_props.keys() & now_props.keys()):
        yield from _property(event, f"{prefix}{name}", was_props[name], now_props[name], old, new)


def _property(
    event: str, path: str, before: Any, after: Any, old: TrackingPlan, new: TrackingPlan
) -> Iterator[Change]:
    where = f"{event}: {path}"
    if not isinstance(before, Mapping) or not isinstance(after, Mapping):
        if before != after:
            yield Change(where, "schema changed", True)
        return
    before, after = old.resolve(before), new.resolve(after)
    yield from _types(where, before, after)
    yield from _enum(where, before, after)
    yield from _bounds(where, before, after)
    if before.get("properties") or after.get("properties"):
        yield from _object(event, before, after, old, new, f"{path}.")
    if isinstance(before.get("items"), Mapping) and isinstance(after.get("items"), Mapping):
        yield from _property(event, f"{path}[]", before["items"], after["items"], old, new)
    if before.get("description") != after.get("description"):
        yield Change(where, "description changed", False)


def _type_set(schema: Mapping[str, Any]) -> set[str]:
    declared = schema.get("type")
    if declared is None:
        return {"any"}
    return {declared} if isinstance(declared, str) else set(declared)


def _covered(kind: str, by: set[str]) -> bool:
    return "any" in by or kind in by or (kind == "integer" and "number" in by)


def _types(where: str, before: Mapping[str, Any], after: Mapping[str, Any]) -> Iterator[Change]:
    was, now = _type_set(before), _type_set(after)
    if was == now:
        return
    lost = sorted(kind for kind in was if not _covered(kind, now))
    gained = sorted(kind for kind in now if not _covered(kind, was))
    shown = f"type {'/'.join(sorted(was))} -> {'/'.join(sorted(now))}"
    if lost:
        yield Change(where, f"{shown} (narrowed: no more {', '.join(lost)})", True)
    elif gained:
        yield Change(where, f"{shown} (widened)", False)


def _enum(where: str, before: Mapping[str, Any], after: Mapping[str, Any]) -> Iterator[Change]:
    if "enum" not in before and "enum" not in after:
        return
    if "enum" not in after:
        yield Change(where, "enum removed: any value allowed", False)
        return
    if "enum" not in before:
        yield Change(where, "enum added: only its values allowed", True)
        return
    was = {canonical(value): value for value in before["enum"]}
    now = {canonical(value): value for value in after["enum"]}
    removed = [repr(was[key]) for key in was.keys() - now.keys()]
    added = [repr(now[key]) for key in now.keys() - was.keys()]
    if removed:
        yield Change(where, f"enum values removed: {', '.join(sorted(removed))}", True)
    if added:
        yield Change(where, f"enum values added: {', '.join(sorted(added))}", False)


def _bounds(where: str, before: Mapping[str, Any], after: Mapping[str, Any]) -> Iterator[Change]:
    for keyword in (*LOWER_BOUNDS, *UPPER_BOUNDS):
        was, now = before.get(keyword), after.get(keyword)
        if was == now:
            continue
        lower = keyword in LOWER_BOUNDS
        if now is None:
            tighter = False
        elif was is None:
            tighter = True
        else:
            tighter = now > was if lower else now < was
        yield Change(where, f"{keyword} {was!r} -> {now!r}", tighter)
    for keyword in STRICT:
        if before.get(keyword) != after.get(keyword):
            yield Change(
                where,
                f"{keyword} {before.get(keyword)!r} -> {after.get(keyword)!r}",
                keyword in after,
            )

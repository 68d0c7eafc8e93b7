"""The plan for people and other tools: a listing, a Markdown page, JSON Schema files.

``manage.py eventtrack_plan`` prints these; each is a pure function of the plan, so
tests (and projects) call them directly.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from django_eventtrack.plan.declared import DEFS_PREFIX, DIALECT, PlannedEvent, TrackingPlan
from django_eventtrack.plan.loading import DATA_KEYWORDS

#: The file name ``--json-schema`` gives ``identify()``'s traits.
IDENTIFY_FILE = "identify-traits.schema.json"


def summary(schema: Mapping[str, Any], plan: TrackingPlan) -> str:
    """A schema in a few words: ``number, >= 0``, ``string, one of 'USD', 'EUR'``."""
    schema = plan.resolve(schema)
    parts = [_type_words(schema, plan)]
    for keyword, words in (
        ("minimum", ">="),
        ("exclusiveMinimum", ">"),
        ("maximum", "<="),
        ("exclusiveMaximum", "<"),
        ("multipleOf", "multiple of"),
        ("minLength", "min length"),
        ("maxLength", "max length"),
        ("minItems", "min items"),
        ("maxItems", "max items"),
        ("pattern", "matching"),
        ("format", "format"),
    ):
        if keyword in schema:
            parts.append(f"{words} {schema[keyword]!r}")
    if "enum" in schema:
        parts.append("one of " + ", ".join(repr(value) for value in schema["enum"]))
    if "const" in schema:
        parts.append(f"always {schema['const']!r}")
    if schema.get("pii") is True:
        parts.append("personal data")
    return ", ".join(part for part in parts if part)


def _type_words(schema: Mapping[str, Any], plan: TrackingPlan) -> str:
    declared = schema.get("type")
    names = [declared] if isinstance(declared, str) else list(declared or [])
    for keyword in ("anyOf", "oneOf"):
        if keyword in schema:
            names.append(
                " or ".join(_type_words(plan.resolve(sub), plan) for sub in schema[keyword])
            )
    if "array" in names and isinstance(schema.get("items"), Mapping):
        item = _type_words(plan.resolve(schema["items"]), plan) or "anything"
        names[names.index("array")] = f"array of {item}"
    return " or ".join(name for name in names if name) or ""


def rows(event: PlannedEvent, plan: TrackingPlan) -> Iterator[tuple[str, str, bool, str]]:
    """(property, summary, required, description) for each declared property, nested
    objects' properties as ``order.total`` and array items' as ``items[].price``."""
    yield from _rows(event.schema, plan, "")


def _rows(
    schema: Mapping[str, Any], plan: TrackingPlan, prefix: str
) -> Iterator[tuple[str, str, bool, str]]:
    schema = plan.resolve(schema)
    required = set(schema.get("required") or ())
    for name, sub in (schema.get("properties") or {}).items():
        sub = plan.resolve(sub) if isinstance(sub, Mapping) else {}
        path = f"{prefix}{name}"
        yield path, summary(sub, plan), name in required, str(sub.get("description") or "")
        if sub.get("properties"):
            yield from _rows(sub, plan, f"{path}.")
        items = sub.get("items")
        if isinstance(items, Mapping) and plan.resolve(items).get("properties"):
            yield from _rows(items, plan, f"{path}[].")


def listing(plan: TrackingPlan) -> str:
    """The plan as text, for a terminal."""
    lines = [f"Tracking plan {plan.source}: {len(plan)} event(s)"]
    if plan.description:
        lines.append(plan.description)
    entries = [*plan] + ([plan.identify] if plan.identify is not None else [])
    for event in entries:
        label = "identify() traits" if event is plan.identify else event.name
        lines += ["", f"{label}" + (f": {event.description}" if event.description else "")]
        found = list(rows(event, plan))
        width = max((len(name) for name, *_ in found), default=0)
        for name, words, required, description in found:
            flag = "required" if required else "optional"
            line = f"  {name:<{width}}  {flag}  {words}"
            lines.append(line + (f"  ({description})" if description else ""))
        if not found:
            lines.append("  (no properties declared)")
        if event.closed:
            lines.append("  no other properties")
        for vendor, mapping in event.vendors.items():
            pairs = ", ".join(f"{key} {value!r}" for key, value in mapping.items())
            lines.append(f"  at {vendor}: {pairs}")
    return "\n".join(lines) + "\n"


def markdown(plan: TrackingPlan) -> str:
    """The plan as a Markdown page (a docs site's "what we track")."""
    lines = ["# Tracking plan", ""]
    if plan.description:
        lines += [plan.description, ""]
    lines += [f"{len(plan)} events, from `{plan.source}`.", ""]
    entries = [*plan] + ([plan.identify] if plan.identify is not None else [])
    for event in entries:
        title = "`identify()` traits" if event is plan.identify else f"`{event.name}`"
        lines += [f"## {title}", ""]
        if event.description:
            lines += [event.description, ""]
        found = list(rows(event, plan))
        if found:
            lines += ["| Property | Type | Required | Description |", "|---|---|---|---|"]
            lines += [
                f"| `{name}` | {_cell(words)} | {'yes' if required else 'no'} | {_cell(text)} |"
                for name, words, required, text in found
            ]
            lines.append("")
        lines.append("No other properties." if event.closed else "Other properties are allowed.")
        lines.append("")
        for vendor, mapping in event.vendors.items():
            pairs = ", ".join(f"{key} `{value}`" for key, value in mapping.items())
            lines += [f"- At {vendor}: {pairs}"]
        if event.vendors:
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def file_name(event: PlannedEvent, plan: TrackingPlan) -> str:
    """``order.placed.schema.json`` (``:`` becomes ``_``: not every file system takes it)."""
    if event is plan.identify:
        return IDENTIFY_FILE
    return f"{event.name.replace(':', '_')}.schema.json"


def json_schema(event: PlannedEvent, plan: TrackingPlan) -> dict[str, Any]:
    """``event``'s properties as a standalone JSON Schema (2020-12) document, with the
    ``$defs`` it refers to, so other tools validate the same events the same way."""
    document: dict[str, Any] = {
        "$schema": DIALECT,
        "title": "identify() traits" if event is plan.identify else event.name,
        **{key: value for key, value in event.schema.items() if key != "$schema"},
        "type": "object",
    }
    used = _used_defs(event.schema, plan)
    if used:
        document["$defs"] = {name: plan.defs[name] for name in sorted(used)}
    return document


def json_schemas(plan: TrackingPlan) -> dict[str, dict[str, Any]]:
    """Every event's document (and the traits', if declared), by file name."""
    entries = [*plan] + ([plan.identify] if plan.identify is not None else [])
    return {file_name(event, plan): json_schema(event, plan) for event in entries}


def _used_defs(schema: Any, plan: TrackingPlan) -> set[str]:
    used: set[str] = set()
    pending = [schema]
    while pending:
        current = pending.pop()
        if isinstance(current, Mapping):
            ref = current.get("$ref")
            if isinstance(ref, str) and (name := ref.removeprefix(DEFS_PREFIX)) not in used:
                used.add(name)
                pending.append(plan.defs[name])
            pending += [v for k, v in current.items() if k not in DATA_KEYWORDS]
        elif isinstance(current, list):
            pending += current
    return used

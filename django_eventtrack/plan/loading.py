"""Reading a tracking plan: a JSON file, a YAML file (with PyYAML, the ``plan`` extra), or
a Python object named by its dotted path.

The shape is checked here (which keys, which types) and every error names the
plan's source and the event; the property schemas themselves are checked when
they are compiled (:mod:`.compiler`). Vendor mappings are checked against the
keys each vendor's adapter declares (``plan_keys``), passed in by the caller, so
nothing here knows a vendor.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from django.utils.module_loading import import_string

from django_eventtrack.core.event import validate_name
from django_eventtrack.errors import InvalidEvent, PlanError
from django_eventtrack.plan.declared import (
    ACCEPTED,
    ACCEPTED_MEANING,
    DEFS_PREFIX,
    PlannedEvent,
    TrackingPlan,
)

#: Top-level keys of a plan.
PLAN_KEYS = frozenset({"$schema", "$id", "$comment", "title", "description", "version"}) | {
    "events",
    "identify",
    "$defs",
}
#: The key of an event's vendor mappings (not part of its JSON Schema).
VENDORS = "vendors"
FILE_SUFFIXES = (".json", ".yaml", ".yml")
#: Keywords whose values are data, not schemas: a "$ref" key inside them is no reference.
DATA_KEYWORDS = frozenset({"enum", "const", "default", "examples"})
#: Each vendor's plan keys: vendor -> {key: what it means} (the adapters' ``plan_keys``).
VendorKeys = Mapping[str, Mapping[str, str]]


def load_plan(value: Any, vendor_keys: VendorKeys) -> TrackingPlan:
    """The plan ``value`` names: a path to a ``.json``/``.yaml``/``.yml`` file (a ``str``
    or a :class:`~pathlib.Path`), the dotted path of a Python object, or the object
    itself: a :class:`TrackingPlan`, a dict shaped like the file, or a callable
    returning either. Raises :class:`PlanError` naming what is wrong."""
    if isinstance(value, TrackingPlan):
        return value
    if isinstance(value, Path) or (isinstance(value, str) and _is_path(value)):
        path = Path(value)
        return parse_plan(_read_file(path), str(path), vendor_keys)
    if isinstance(value, str):
        return _from_object(_import(value), value, vendor_keys)
    return _from_object(value, type(value).__name__, vendor_keys)


def _is_path(value: str) -> bool:
    return value.lower().endswith(FILE_SUFFIXES) or os.sep in value or "/" in value


def _import(dotted: str) -> Any:
    try:
        return import_string(dotted)
    except ImportError as exc:
        raise PlanError(
            f"tracking plan {dotted!r} is neither a .json/.yaml file nor an importable "
            f"dotted path ({exc})"
        ) from None


def _from_object(value: Any, source: str, vendor_keys: VendorKeys) -> TrackingPlan:
    if isinstance(value, TrackingPlan):
        return value
    if callable(value):
        return _from_object(value(), source, vendor_keys)
    return parse_plan(value, source, vendor_keys)


def _read_file(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PlanError(
            f"tracking plan {path} cannot be read: {exc.strerror or exc} (EVENTTRACK['PLAN'] "
            "takes an absolute path, or one relative to the current directory)"
        ) from None
    if path.suffix.lower() in (".yaml", ".yml"):
        return _parse_yaml(text, path)
    try:
        return json.loads(text)
    except ValueError as exc:
        raise PlanError(f"tracking plan {path} is not valid JSON: {exc}") from None


def _parse_yaml(text: str, path: Path) -> Any:
    try:
        import yaml
    except ImportError:
        raise PlanError(
            f"tracking plan {path} is YAML, which needs PyYAML: "
            "pip install 'django-eventtrack[plan]' (or write the plan as JSON)"
        ) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PlanError(f"tracking plan {path} is not valid YAML: {exc}") from None


def parse_plan(data: Any, source: str, vendor_keys: VendorKeys) -> TrackingPlan:
    """A :class:`TrackingPlan` from the file's data (a dict), or :class:`PlanError`."""
    if not isinstance(data, Mapping):
        raise PlanError(
            f"tracking plan {source} must be an object like "
            '{"events": {"order.placed": {"properties": {...}}}}, '
            f"got {type(data).__name__}"
        )
    unknown = sorted(set(data) - PLAN_KEYS)
    if unknown:
        raise PlanError(
            f"tracking plan {source} has unknown keys {unknown}; expected some of "
            f"{sorted(PLAN_KEYS)}"
        )
    events = data.get("events")
    if not isinstance(events, Mapping):
        raise PlanError(f'tracking plan {source} needs "events": an object of event name to entry')
    defs = _defs(data.get("$defs"), source)
    plan = TrackingPlan(
        events={
            name: _event(name, entry, source, vendor_keys, check_name=True)
            for name, entry in events.items()
        },
        source=source,
        identify=(
            _event("identify", data["identify"], source, vendor_keys, check_name=False)
            if data.get("identify") is not None
            else None
        ),
        defs=defs,
        description=_text(data.get("description"), f"tracking plan {source}: description"),
    )
    _check_refs(plan)
    return plan


def _defs(value: Any, source: str) -> dict[str, Mapping[str, Any]]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(
        isinstance(name, str) and isinstance(schema, Mapping | bool)
        for name, schema in value.items()
    ):
        raise PlanError(f'tracking plan {source}: "$defs" must be an object of name to schema')
    return dict(value)


def _event(
    name: Any, entry: Any, source: str, vendor_keys: VendorKeys, *, check_name: bool
) -> PlannedEvent:
    where = f"tracking plan {source}: event {name!r}"
    if check_name:
        try:
            validate_name(name)
        except InvalidEvent as exc:
            raise PlanError(f"{where}: {exc}") from None
    if not isinstance(entry, Mapping):
        raise PlanError(
            f'{where} must be an object like {{"description": ..., "properties": {{...}}}}, '
            f"got {type(entry).__name__}"
        )
    schema = {key: value for key, value in entry.items() if key != VENDORS}
    if schema.get("type", "object") != "object":
        raise PlanError(f'{where}: "type" must be "object" (an event\'s properties are one)')
    _text(schema.get("description"), f"{where}: description")
    return PlannedEvent(
        name=name, schema=schema, vendors=_vendors(entry.get(VENDORS), where, vendor_keys)
    )


def _text(value: Any, where: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise PlanError(f"{where} must be a string, got {type(value).__name__}")
    return value


def _vendors(value: Any, where: str, vendor_keys: VendorKeys) -> dict[str, dict[str, str]]:
    """An event's vendor mappings, each key one its vendor declares."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise PlanError(f'{where}: "{VENDORS}" must be an object of vendor name to mapping')
    mappings: dict[str, dict[str, str]] = {}
    for vendor, mapping in value.items():
        if vendor not in vendor_keys:
            raise PlanError(
                f'{where}: "{VENDORS}" names {vendor!r}, which is not a vendor; the vendors '
                f"are {', '.join(sorted(vendor_keys))}"
            )
        allowed = {**vendor_keys[vendor], ACCEPTED: ACCEPTED_MEANING}
        if not isinstance(mapping, Mapping) or not all(
            isinstance(key, str) and key in allowed and isinstance(text, str) and text
            for key, text in mapping.items()
        ):
            keys = ", ".join(f"{key!r} ({meaning})" for key, meaning in allowed.items())
            raise PlanError(
                f'{where}: "{VENDORS}"."{vendor}" must map some of these keys to non-empty '
                f"strings: {keys}; got {mapping!r}"
            )
        mappings[vendor] = dict(mapping)
    return mappings


def _check_refs(plan: TrackingPlan) -> None:
    """Every ``$ref`` points at one of the plan's ``$defs``."""
    entries: list[tuple[str, Any]] = [(f"event {e.name!r}", e.schema) for e in plan]
    if plan.identify is not None:
        entries.append(("identify", plan.identify.schema))
    entries += [(f"$defs {name!r}", schema) for name, schema in plan.defs.items()]
    for where, schema in entries:
        for ref in _refs(schema):
            if not ref.startswith(DEFS_PREFIX) or ref.removeprefix(DEFS_PREFIX) not in plan.defs:
                raise PlanError(
                    f"tracking plan {plan.source}: {where}: $ref {ref!r} does not name one of "
                    f"the plan's $defs ({', '.join(sorted(plan.defs)) or 'none'}); write "
                    f'"{DEFS_PREFIX}<name>"'
                )


def _refs(schema: Any) -> list[str]:
    if isinstance(schema, Mapping):
        own = [schema["$ref"]] if isinstance(schema.get("$ref"), str) else []
        return own + [
            ref for key, value in schema.items() if key not in DATA_KEYWORDS for ref in _refs(value)
        ]
    if isinstance(schema, list):
        return [ref for item in schema for ref in _refs(item)]
    return []


#: What a Python plan object may be, for typing a setting that names one.
PlanSource = str | Path | Mapping[str, Any] | TrackingPlan | Callable[[], Any]

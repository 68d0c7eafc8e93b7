"""What a tracking plan declares: its events, each a JSON Schema for its properties.

A plan is data, read once (:mod:`.loading`) and never changed: the compiled checks
(:mod:`.compiler`), the exported schemas, the generated module and the diff all read
the same objects.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

#: The JSON Schema dialect of the plan's property schemas and of the files it exports.
DIALECT = "https://json-schema.org/draft/2020-12/schema"
#: Where a plan's shared schemas live (``{"$ref": "#/$defs/money"}``).
DEFS_PREFIX = "#/$defs/"
#: The key of an event's mapping for a vendor that accepts what the vendor does with the
#: event as declared (why, in words): ``manage.py check`` no longer warns of it (W010).
#: Every vendor takes it besides its own keys.
ACCEPTED = "accepted"
#: What :data:`ACCEPTED` means, as the plan's error messages list a vendor's keys.
ACCEPTED_MEANING = "why what the vendor does with the event is accepted (no check W010)"


@dataclass(frozen=True)
class PlannedEvent:
    """One declared event: ``schema`` is the JSON Schema of its properties object (the
    plan entry without its ``vendors`` mapping), ``vendors`` what each vendor calls it."""

    name: str
    schema: Mapping[str, Any]
    vendors: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    @property
    def description(self) -> str:
        return str(self.schema.get("description") or "")

    @property
    def properties(self) -> Mapping[str, Mapping[str, Any]]:
        """The declared properties' schemas, by name, in the plan's order."""
        declared: Mapping[str, Mapping[str, Any]] = self.schema.get("properties") or {}
        return declared

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(self.schema.get("required") or ())

    def accepted(self, vendor: str) -> str:
        """Why the plan accepts what ``vendor`` does with this event; empty when it does not."""
        return self.vendors.get(vendor, {}).get(ACCEPTED, "")

    @property
    def closed(self) -> bool:
        """Whether properties the plan does not declare are refused
        (``"additionalProperties": false``)."""
        return self.schema.get("additionalProperties", True) is False


@dataclass(frozen=True)
class TrackingPlan:
    """The whole plan: ``events`` by name, the traits ``identify()`` sends (if declared),
    shared schemas (``$defs``) and where the plan came from (``source``, for messages)."""

    events: Mapping[str, PlannedEvent]
    source: str
    identify: PlannedEvent | None = None
    defs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    description: str = ""

    def __iter__(self) -> Iterator[PlannedEvent]:
        return iter(self.events.values())

    def __len__(self) -> int:
        return len(self.events)

    def resolve(self, schema: Mapping[str, Any]) -> Mapping[str, Any]:
        """``schema`` with a ``$ref`` to the plan's ``$defs`` followed (the loader has
        checked every reference), its own keywords laid over the target's."""
        seen: set[str] = set()
        while isinstance(ref := schema.get("$ref"), str) and ref not in seen:
            seen.add(ref)
            target = self.defs[ref.removeprefix(DEFS_PREFIX)]
            schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
        return schema

    def mappings(self, vendor: str) -> dict[str, Mapping[str, str]]:
        """Each event's mapping for ``vendor`` (its name there, its action...), by event."""
        return {event.name: event.vendors[vendor] for event in self if vendor in event.vendors}

"""The tracking plan: the events a project declares, with JSON Schema for their properties.

Loaded once per configuration (``EVENTTRACK["PLAN"]``, by :mod:`django_eventtrack.conf`),
compiled into plain Python checks (:mod:`.compiler`) that ``track()`` runs inside the
caller's transaction. Everything here is pure: a plan in, a verdict, a JSON Schema file,
a Markdown page, a typed module or a diff out; what reads the outbox (coverage,
quarantine, replay) lives with the outbox and the operator's view.
"""

from __future__ import annotations

from django_eventtrack.plan.compiler import CompiledPlan, compile_plan
from django_eventtrack.plan.declared import PlannedEvent, TrackingPlan
from django_eventtrack.plan.loading import load_plan, parse_plan
from django_eventtrack.plan.values import Violation

__all__ = [
    "CompiledPlan",
    "PlannedEvent",
    "TrackingPlan",
    "Violation",
    "compile_plan",
    "load_plan",
    "parse_plan",
]

"""Fixtures for the tracking plan's tests: the plan of the issue's acceptance test, written
to a file, and vendors pointed at the sandbox with that plan in force."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pytest_django import Settings

from django_eventtrack.sandbox import Sandbox

#: ``order.placed`` (``order`` string and ``amount`` number, both required) and
#: ``product.viewed``.
SHOP_PLAN: dict[str, Any] = {
    "events": {
        "order.placed": {
            "description": "A customer placed an order.",
            "properties": {
                "order": {"type": "string", "description": "The order's reference."},
                "amount": {"type": "number", "minimum": 0},
                "currency": {"type": "string", "enum": ["USD", "EUR"]},
            },
            "required": ["order", "amount"],
        },
        "product.viewed": {
            "description": "A visitor looked at a product.",
            "properties": {"product": {"type": "string"}},
        },
    }
}

WritePlan = Callable[..., Path]


@pytest.fixture
def write_plan(tmp_path: Path) -> WritePlan:
    """Write a plan (default: :data:`SHOP_PLAN`) to ``plan.json``; returns its path."""

    def write(data: dict[str, Any] | None = None, name: str = "plan.json") -> Path:
        path = tmp_path / name
        path.write_text(json.dumps(SHOP_PLAN if data is None else data), encoding="utf-8")
        return path

    return write


Configure = Callable[..., None]


@pytest.fixture
def with_plan(settings: Settings, sandbox: Sandbox, write_plan: WritePlan) -> Configure:
    """Every vendor at the sandbox (``sync`` delivery) and the plan in force, in ``mode``."""

    def configure(mode: str | None = "quarantine", data: dict[str, Any] | None = None) -> None:
        settings.EVENTTRACK = {
            "VENDORS": sandbox.vendor_settings(),
            "DELIVERY": "sync",
            "PLAN": str(write_plan(data)),
            **({"PLAN_MODE": mode} if mode else {}),
        }

    return configure


@pytest.fixture
def hellotext_knows_order(sandbox: Sandbox) -> None:
    """Hellotext knows profile P1 and order A-1 (so a bare reference finds it)."""
    sandbox.state("hellotext").add_profile("P1")
    sandbox.state("hellotext").add_object("order", reference="A-1", source="django")

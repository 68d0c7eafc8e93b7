"""``manage.py eventtrack_plan``: the listing, JSON Schema files, Markdown, coverage, the
diff and the typed module."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone
from pytest_django import Settings

from django_eventtrack import track
from django_eventtrack.models import Event
from tests.plan.conftest import SHOP_PLAN, WritePlan

RICH_PLAN: dict[str, Any] = {
    "description": "What the shop tracks.",
    "$defs": {
        "money": {
            "type": "object",
            "properties": {"amount": {"type": "number"}, "currency": {"enum": ["USD", "EUR"]}},
            "required": ["amount", "currency"],
        }
    },
    "events": {
        **SHOP_PLAN["events"],
        "cart.added": {
            "description": "An item went into the cart.",
            "properties": {
                "items": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "sku": {"type": "string"},
                            "price": {"$ref": "#/$defs/money"},
                        },
                    },
                },
                "total": {"$ref": "#/$defs/money"},
                "at": {"type": "string", "format": "date-time"},
            },
            "required": ["items"],
            "additionalProperties": False,
            "vendors": {"hackle": {"name": "Cart Added"}},
        },
        "form:sent": {
            "properties": {"first-name": {"type": ["string", "null"], "pii": True}},
        },
    },
}


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("eventtrack_plan", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def rich(settings: Settings, write_plan: WritePlan) -> Path:
    path = write_plan(RICH_PLAN)
    settings.EVENTTRACK = {**settings.EVENTTRACK, "PLAN": str(path)}
    return path


def test_it_prints_the_plan(rich: Path) -> None:
    text = run()
    assert text.startswith(f"Tracking plan {rich}: 4 event(s)\nWhat the shop tracks.\n")
    assert "order.placed: A customer placed an order." in text
    assert "  amount    required  number, >= 0" in text
    assert "  items[].price.currency  required  one of 'USD', 'EUR'" in text
    assert "  at hackle: name 'Cart Added'" in text
    assert "first-name  optional  string or null, personal data" in text


def test_json_schema_writes_one_valid_schema_per_event(rich: Path, tmp_path: Path) -> None:
    out = tmp_path / "schemas"
    assert run("--json-schema", str(out)) == f"Wrote 4 JSON Schema files to {out}.\n"
    files = sorted(path.name for path in out.iterdir())
    assert files == [
        "cart.added.schema.json",
        "form_sent.schema.json",
        "order.placed.schema.json",
        "product.viewed.schema.json",
    ]
    for path in out.iterdir():
        document = json.loads(path.read_text())
        jsonschema.Draft202012Validator.check_schema(document)
        assert document["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert "vendors" not in document
    cart = json.loads((out / "cart.added.schema.json").read_text())
    assert set(cart["$defs"]) == {"money"}
    validator = jsonschema.Draft202012Validator(cart)
    assert validator.is_valid({"items": [{"sku": "A", "price": {"amount": 1, "currency": "USD"}}]})
    assert not validator.is_valid({"items": [{"price": {"amount": "1", "currency": "USD"}}]})
    order = jsonschema.Draft202012Validator(
        json.loads((out / "order.placed.schema.json").read_text())
    )
    assert order.is_valid({"order": "A-1", "amount": 5})
    assert not order.is_valid({"order": "A-1", "amount": "five"})


def test_markdown_renders_a_docs_page(rich: Path) -> None:
    text = run("--markdown")
    assert text.startswith("# Tracking plan\n\nWhat the shop tracks.\n\n4 events, from")
    assert "## `cart.added`\n\nAn item went into the cart.\n\n| Property | Type |" in text
    assert "| `items[].sku` | string | no |  |" in text
    assert "No other properties.\n\n- At hackle: name `Cart Added`" in text


@pytest.mark.django_db
def test_coverage_compares_the_plan_with_the_outbox(rich: Path, settings: Settings) -> None:
    settings.EVENTTRACK = {**settings.EVENTTRACK, "PLAN_MODE": "warn"}
    track("order.placed", {"order": "A-1", "amount": 5})
    track("order.placed", {"order": "A-1", "amount": "five"})
    track("signup.done", {})
    old = track("product.viewed", {"product": "p"})
    assert old is not None
    Event.objects.filter(pk=old.id).update(created_at=timezone.now() - timedelta(days=30))
    text = run("--coverage", "--days", "7")
    assert text.splitlines()[0] == "Tracking plan coverage over the last 7 day(s):"
    assert any(line.split() == ["order.placed", "2", "1", "0"] for line in text.splitlines())
    assert any(
        line.split() == ["signup.done", "1", "1", "0", "(not", "declared)"]
        for line in text.splitlines()
    )
    assert "Declared but never tracked: product.viewed, cart.added, form:sent" in text
    assert "Tracked but not declared: signup.done" in text


def test_diff_classifies_breaking_and_compatible_changes(rich: Path, write_plan: WritePlan) -> None:
    new = json.loads(json.dumps(RICH_PLAN))
    events = new["events"]
    del events["product.viewed"]
    events["order.placed"]["properties"]["amount"] = {"type": "integer", "minimum": 0}
    events["order.placed"]["properties"]["coupon"] = {"type": "string"}
    events["order.placed"]["properties"]["channel"] = {"type": "string"}
    events["order.placed"]["required"].append("channel")
    events["order.placed"]["properties"]["currency"]["enum"] = ["USD", "GBP"]
    events["cart.added"]["properties"]["at"]["format"] = "date"
    events["cart.added"]["vendors"]["hackle"]["name"] = "Added to cart"
    events["form:sent"]["properties"]["first-name"]["type"] = ["string", "null", "number"]
    events["refund.requested"] = {}
    other = write_plan(new, name="next.json")
    with pytest.raises(
        CommandError, match=r"6 breaking change\(s\) from .*plan.json to .*next.json"
    ):
        call_command("eventtrack_plan", "--diff", str(other), stdout=(out := io.StringIO()))
    lines = out.getvalue().splitlines()
    assert lines == [
        "BREAKING  cart.added: mapping at hackle: {'name': 'Cart Added'} -> "
        "{'name': 'Added to cart'}",
        "BREAKING  cart.added: at: format 'date-time' -> 'date'",
        "BREAKING  order.placed: amount: type number -> integer (narrowed: no more number)",
        "BREAKING  order.placed: channel: required property added",
        "BREAKING  order.placed: currency: enum values removed: 'EUR'",
        "BREAKING  product.viewed: event removed",
        "compatible  form:sent: first-name: type null/string -> null/number/string (widened)",
        "compatible  order.placed: coupon: optional property added",
        "compatible  order.placed: currency: enum values added: 'GBP'",
        "compatible  refund.requested: event added",
    ], lines


def test_diff_without_breaking_changes_exits_zero(rich: Path, write_plan: WritePlan) -> None:
    new = json.loads(json.dumps(RICH_PLAN))
    new["events"]["order.placed"]["description"] = "Placed."
    new["events"]["cart.added"]["vendors"]["hackle"]["accepted"] = "JSON strings are fine"
    new["events"]["order.placed"]["vendors"] = {"primedata": {"accepted": "as strings"}}
    assert run("--diff", str(write_plan(new, name="next.json"))).splitlines() == [
        "compatible  cart.added: what hackle does accepted or not",
        "compatible  order.placed: description changed",
        "compatible  order.placed: what primedata does accepted or not",
        "3 change(s), none breaking.",
    ]


def test_the_command_without_a_plan_says_how_to_set_one() -> None:
    with pytest.raises(CommandError, match=r"no tracking plan is configured: set EVENTTRACK"):
        run()


def test_plan_option_reads_another_file(write_plan: WritePlan) -> None:
    assert run("--plan", str(write_plan(SHOP_PLAN))).startswith("Tracking plan")


@pytest.mark.slow
def test_python_writes_a_typed_module_that_passes_mypy_strict_and_catches_typos(
    rich: Path, tmp_path: Path
) -> None:
    module = tmp_path / "tracking_plan.py"
    assert run("--python", str(module)) == f"Wrote {module} (4 event functions).\n"
    source = module.read_text()
    assert "def order_placed(\n    *,\n    order: str,\n    amount: float | Decimal," in source
    assert (
        '    """A customer placed an order.\n\n    :param order: The order\'s reference.' in source
    )
    assert "def form_sent(\n    properties: FormSentProperties, /" in source
    user = tmp_path / "use_plan.py"
    user.write_text(
        "from tracking_plan import cart_added, order_placed\n\n"
        "order_placed(order='A-1', amount=5, currency='USD', user_id='7', session='s')\n"
        "order_placed(order='A-1', amount='five')\n"
        "order_placed(ordr='A-1', amount=5)\n"
        "order_placed(order='A-1', amount=5, currency='GBP')\n"
        "cart_added(items=[{'sku': 'A'}], user='7')\n"
    )
    # mypy as a user's project runs it, not with this repository's configuration (whose
    # django-stubs plugin only the lint environment installs).
    config = tmp_path / "mypy.ini"
    config.write_text("[mypy]\n")
    strict = ["--config-file", str(config), "--strict", "--follow-imports=silent"]
    checked = subprocess.run(  # noqa: S603 (our own interpreter, mypy, our file)
        [sys.executable, "-m", "mypy", *strict, str(module)],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        check=False,
    )
    assert checked.returncode == 0, checked.stdout
    typos = subprocess.run(  # noqa: S603 (our own interpreter, mypy, our file)
        [sys.executable, "-m", "mypy", *strict[:2], "--follow-imports=silent", str(user)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    errors = [line for line in typos.stdout.splitlines() if ": error:" in line]
    assert [line.split(":")[1] for line in errors] == ["4", "5", "6", "7"], typos.stdout


@pytest.mark.django_db(transaction=True)
def test_send_event_refuses_an_event_that_breaks_the_plan_in_any_mode(
    settings: Settings, write_plan: WritePlan
) -> None:
    settings.EVENTTRACK = {
        **settings.EVENTTRACK,
        "PLAN": str(write_plan(SHOP_PLAN)),
        "PLAN_MODE": "quarantine",
    }
    with pytest.raises(CommandError, match=r"properties\.amount must be a number"):
        call_command(
            "send_event",
            "order.placed",
            "--property",
            "order=A",
            "--property",
            "amount=five",
            "--user-id",
            "7",
            "--dry-run",
            stdout=io.StringIO(),
        )
    assert not Event.objects.exists()

"""The example shop tracks through functions generated from its tracking plan; the module
it ships is what the plan generates today."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.example_project import MANAGE, environment, manage

SHOP = MANAGE.parent / "shop"


@pytest.mark.slow
def test_the_shops_typed_module_is_generated_from_its_plan(tmp_path: Path) -> None:
    generated = tmp_path / "events.py"
    result = manage(
        "eventtrack_plan", "--python", str(generated), env=environment(tmp_path / "db.sqlite3")
    )
    assert result.returncode == 0, result.stderr
    assert generated.read_text() == (SHOP / "events.py").read_text(), (
        "shop/events.py is out of date: run `python manage.py eventtrack_plan --python "
        "shop/events.py` in example_project/"
    )


def test_the_shops_views_track_through_the_generated_functions() -> None:
    views = (SHOP / "views.py").read_text()
    assert "events.product_viewed(" in views
    assert "events.cart_added(" in views
    assert "track(" not in views.replace("events.", "")

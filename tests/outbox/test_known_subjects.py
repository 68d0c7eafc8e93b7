"""What a process knows of ids without privacy state (``outbox.known_subjects``), apart
from PostgreSQL: how it learns, forgets and stays bounded. The database side (the
generation, the trigger, another session's ``forget()``) is in
``tests/integration/test_postgres_known_subjects.py``."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from django_eventtrack.outbox import known_subjects
from django_eventtrack.outbox.known_subjects import Known

CONNECTION: Any = SimpleNamespace(alias="elsewhere", vendor="postgresql")
SEEN = (7, "read committed", None)


@pytest.fixture(autouse=True)
def knowing_nothing() -> Iterator[None]:
    known_subjects.reset()
    yield
    known_subjects.reset()


def test_ids_are_learnt_in_place_and_checked_against_their_generation() -> None:
    known_subjects._known["elsewhere"] = known = Known(7)
    ids = known.clean
    for n in range(1_000):  # a copy per new visitor would make this quadratic
        known_subjects.learn(CONNECTION, 7, [f"s{n}", "u1"], SEEN)
    assert known_subjects._known["elsewhere"] is known
    assert known.clean is ids
    assert len(ids) == 1_001
    assert known_subjects.clean_under(CONNECTION, ["s5", "u1"]) == 7
    assert known_subjects.clean_under(CONNECTION, ["s5", "u2"]) is None


def test_what_cannot_be_known_is_not_learnt() -> None:
    known_subjects._known["elsewhere"] = Known(7)
    known_subjects.learn(CONNECTION, 7, ["a"], (7, "repeatable read", None))
    known_subjects.learn(CONNECTION, 7, ["b"], (7, "read committed", "on"))
    assert known_subjects.clean_under(CONNECTION, ["a"]) is None
    assert known_subjects.clean_under(CONNECTION, ["b"]) is None
    known_subjects.learn(CONNECTION, 7, ["c"], (8, "read committed", None))  # it moved
    assert "elsewhere" not in known_subjects._known


def test_the_ids_known_stay_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(known_subjects, "MAX_KNOWN", 10)
    known_subjects._known["elsewhere"] = Known(7)
    for n in range(25):
        known_subjects.learn(CONNECTION, 7, [f"s{n}"], SEEN)
        assert len(known_subjects._known["elsewhere"].clean) <= 10
    assert known_subjects.clean_under(CONNECTION, ["s24"]) == 7
    assert known_subjects.clean_under(CONNECTION, ["s0"]) is None

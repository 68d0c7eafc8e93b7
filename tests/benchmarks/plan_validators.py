"""``python -m tests.benchmarks.plan_validators``: which validator ``track()`` should run.

One event of a 50-event plan (``tests.benchmarks.plan_fixture``), valid, checked by each
candidate, microseconds per check (median of rounds), in this process: the plan's own
compiled checks (no dependency), ``fastjsonschema`` (generates Python code),
``jsonschema`` (the reference implementation, pure Python) and ``jsonschema-rs`` (Rust).
A candidate that is not installed is reported as such (``pip install jsonschema
fastjsonschema jsonschema-rs``). The figures are quoted in docs/plan.md.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from tests.benchmarks.plan_fixture import EVENT, PROPERTIES, plan_data

ROUNDS = 15
PER_ROUND = 2000


def candidates(schema: dict[str, Any]) -> dict[str, Callable[[dict[str, Any]], object] | str]:
    from django_eventtrack.plan import compile_plan, parse_plan

    compiled = compile_plan(parse_plan(plan_data(), "plan_fixture", {}))
    found: dict[str, Callable[[dict[str, Any]], object] | str] = {
        "compiled checks (django-eventtrack)": lambda props: compiled.violations(EVENT, props)
    }
    try:
        import fastjsonschema

        found["fastjsonschema"] = fastjsonschema.compile(schema)
    except ImportError:
        found["fastjsonschema"] = "not installed"
    try:
        import jsonschema

        validator = jsonschema.Draft202012Validator(schema)
        found["jsonschema (is_valid)"] = validator.is_valid
        found["jsonschema (iter_errors)"] = lambda props: list(validator.iter_errors(props))
    except ImportError:
        found["jsonschema (is_valid)"] = "not installed"
    try:
        import jsonschema_rs

        found["jsonschema-rs"] = jsonschema_rs.validator_for(schema).is_valid
    except ImportError:
        found["jsonschema-rs"] = "not installed"
    return found


def measure(call: Callable[[dict[str, Any]], object]) -> float:
    rounds = []
    for _ in range(ROUNDS):
        started = time.perf_counter_ns()
        for _ in range(PER_ROUND):
            call(PROPERTIES)
        rounds.append((time.perf_counter_ns() - started) / PER_ROUND / 1000)
    return statistics.median(rounds)


def main() -> None:
    import django
    from django.conf import settings

    settings.configure()
    django.setup()
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema"} | plan_data()["events"][
        EVENT
    ]
    results = {}
    for name, call in candidates(schema).items():
        results[name] = call if isinstance(call, str) else round(measure(call), 2)
    json.dump({"unit": "microseconds per valid event (median)", "results": results}, sys.stdout)
    print()


if __name__ == "__main__":
    main()

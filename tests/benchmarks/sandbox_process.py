"""``python -m tests.benchmarks.sandbox_process``: the sandbox in a process of its own.

Prints ``{"url": ...}`` once listening, then answers one JSON command per
stdin line with one JSON line: ``reset``, ``fault`` (``Sandbox.inject``
arguments), ``clear-faults``, ``counts`` and ``marks`` (the ``n`` property and
receive time of every accepted event, computed here so no request bodies
cross the pipe). End of stdin stops it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from functools import partial
from typing import Any

from django_eventtrack.sandbox import Sandbox
from tests.benchmarks.common import VENDORS, serve_commands
from tests.processes.helpers import marker


def answer(sandbox: Sandbox, command: dict[str, Any]) -> dict[str, Any]:
    name = command.pop("cmd")
    handler = COMMANDS.get(name)
    if handler is None:
        return {"error": f"unknown command {name!r}"}
    return handler(sandbox, command)


def _reset(sandbox: Sandbox, command: dict[str, Any]) -> dict[str, Any]:
    sandbox.reset()
    return {"ok": True}


def _fault(sandbox: Sandbox, command: dict[str, Any]) -> dict[str, Any]:
    sandbox.inject(**command)
    return {"ok": True}


def _clear_faults(sandbox: Sandbox, command: dict[str, Any]) -> dict[str, Any]:
    sandbox.clear_faults()
    return {"ok": True}


def _counts(sandbox: Sandbox, command: dict[str, Any]) -> dict[str, Any]:
    accepted: Counter[str] = Counter()
    requests: Counter[str] = Counter()
    for record in sandbox.requests():
        requests[record.vendor] += 1
        if record.accepted:
            accepted[record.vendor] += record.event_count
    return {"accepted_events": dict(accepted), "requests": dict(requests)}


def _marks(sandbox: Sandbox, command: dict[str, Any]) -> dict[str, Any]:
    # The benchmarks' four vendors, not the test suite's registry (which adds one of its own).
    marks: dict[str, list[list[float]]] = {vendor: [] for vendor in VENDORS}
    for record in sandbox.requests():
        if record.accepted:
            for event in record.events:
                marks[record.vendor].append([marker(record.vendor, event), record.received_at])
    return {"marks": marks}


COMMANDS: dict[str, Callable[[Sandbox, dict[str, Any]], dict[str, Any]]] = {
    "reset": _reset,
    "fault": _fault,
    "clear-faults": _clear_faults,
    "counts": _counts,
    "marks": _marks,
}


def main() -> None:
    # Every PrimeData event type registered: the benchmarks send whatever they track.
    with Sandbox(max_records=1_000_000, options={"primedata": {"aliases": ["*"]}}) as sandbox:
        serve_commands(sandbox.url, partial(answer, sandbox))


if __name__ == "__main__":
    main()

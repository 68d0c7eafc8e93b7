"""What the plan's compiled checks share: where a value sits, the violations they record,
how a value is read (its JSON type, JSON's equality, the formats checked) and how checks
combine. :mod:`.compiler` turns schemas into checks with these; :mod:`.containers` holds
the checks of objects, arrays and combinations."""

from __future__ import annotations

import ipaddress
import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any

#: Where a value sits: ``None`` for the event's properties object, else (parent, key).
Where = tuple[Any, str | int] | None
Check = Callable[[Any, Where, list["Violation"]], None]

JSON_TYPES = ("array", "boolean", "integer", "null", "number", "object", "string")
#: The formats checked; another format is an annotation (JSON Schema's default).
FORMATS = ("date-time", "date", "time", "email", "uri", "uuid", "ipv4", "ipv6")
MAX_SHOWN = 40


@dataclass(frozen=True)
class Violation:
    """One way an event breaks the plan: ``field`` is where (``name``,
    ``properties.amount``), ``message`` what was expected."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field} {self.message}"

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


def spelt(where: Where) -> str:
    """``properties.order.items[2]`` for ``where``."""
    parts: list[str] = []
    while where is not None:
        where, key = where
        parts.append(f"[{key}]" if isinstance(key, int) else f".{key}")
    return "properties" + "".join(reversed(parts))


def violation(out: list[Violation], where: Where, message: str) -> None:
    out.append(Violation(spelt(where), message))


# -- reading values -----------------------------------------------------------------------


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_integer(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


TYPE_TESTS: dict[str, Callable[[Any], bool]] = {
    "string": lambda value: isinstance(value, str),
    "number": is_number,
    "integer": is_integer,
    "boolean": lambda value: isinstance(value, bool),
    "null": lambda value: value is None,
    "array": lambda value: isinstance(value, list),
    "object": lambda value: isinstance(value, dict),
}


#: Types whose test is one ``isinstance`` (and, for numbers, not a bool).
INSTANCE_TYPES: dict[str, tuple[type | tuple[type, ...], bool]] = {
    "string": (str, False),
    "number": ((int, float), True),
    "boolean": (bool, False),
    "array": (list, False),
    "object": (dict, False),
}


def json_type(value: Any) -> str:
    """The JSON type of a normalised value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if is_number(value):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def described(value: Any, show: bool) -> str:
    """``a string ('five')``; the type alone for a ``pii`` value."""
    kind = json_type(value)
    article = "an" if kind[0] in "aeiou" else "a"
    if not show or kind in ("array", "object", "null"):
        return "null" if kind == "null" else f"{article} {kind}"
    text = repr(value) if kind == "string" else _json_text(value)
    if len(text) > MAX_SHOWN:
        text = text[: MAX_SHOWN - 3] + "..."
    return f"{article} {kind} ({text})"


def _json_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


def canonical(value: Any) -> Any:
    """A hashable stand-in with JSON's equality: ``1 == 1.0``, ``true != 1``, objects
    equal whatever their keys' order."""
    if isinstance(value, bool):
        return ("boolean", value)
    if isinstance(value, list):
        return ("array", tuple(canonical(item) for item in value))
    if isinstance(value, dict):
        return ("object", frozenset((key, canonical(item)) for key, item in value.items()))
    return value


# -- formats ------------------------------------------------------------------------------

_DATE_TIME = re.compile(r"\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)", re.ASCII)
_TIME = re.compile(r"\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)", re.ASCII)
_DATE = re.compile(r"\d{4}-\d\d-\d\d", re.ASCII)
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+")
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:[^\s]*")


def _parses(parse: Callable[[str], Any], text: str) -> bool:
    try:
        parse(text)
    except ValueError:
        return False
    return True


def _date_time(text: str) -> bool:
    return bool(_DATE_TIME.fullmatch(text)) and _parses(
        datetime.fromisoformat, text.upper().replace("Z", "+00:00").replace(" ", "T")
    )


FORMAT_TESTS: dict[str, Callable[[str], bool]] = {
    "date-time": _date_time,
    "date": lambda text: bool(_DATE.fullmatch(text)) and _parses(date.fromisoformat, text),
    "time": lambda text: (
        bool(_TIME.fullmatch(text))
        and _parses(time.fromisoformat, text.upper().replace("Z", "+00:00"))
    ),
    "email": lambda text: bool(_EMAIL.fullmatch(text)),
    "uri": lambda text: bool(_URI.fullmatch(text)),
    "uuid": lambda text: len(text) == 36 and _parses(uuid.UUID, text),
    "ipv4": lambda text: _parses(ipaddress.IPv4Address, text),
    "ipv6": lambda text: _parses(ipaddress.IPv6Address, text),
}


# -- combining checks ---------------------------------------------------------------------


def no_check(value: Any, where: Where, out: list[Violation]) -> None:
    return None


def refuse_all(value: Any, where: Where, out: list[Violation]) -> None:
    violation(out, where, "is not allowed by the plan (its schema is false)")


def undeclared(value: Any, where: Where, out: list[Violation]) -> None:
    violation(out, where, "is not declared in the plan (additionalProperties is false)")


def combined(checks: Sequence[Check]) -> Check:
    if not checks:
        return no_check
    if len(checks) == 1:
        return checks[0]
    ordered = tuple(checks)

    def check(value: Any, where: Where, out: list[Violation]) -> None:
        for each in ordered:
            each(value, where, out)

    return check

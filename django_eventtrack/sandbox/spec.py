"""What the sandbox's vendor modules share: a request as the validators see it, a
documented endpoint, a vendor's spec, and the checks several vendors' documentation
asks for (times with an offset, finite numbers, non-empty strings, known keys).

Each vendor served lives in a module of its own (``sandbox/<vendor>.py`` for a built-in
one) that builds its :class:`VendorSpec` from these; the adapter names that spec
(``VendorAdapter.sandbox``), so the server serves whatever the registry lists and names
no vendor itself. Validators are pure (a request in, an answer out): what a vendor
remembers between requests is its spec's ``state``, handed to them in
:attr:`Incoming.state`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeGuard

JSONObject = dict[str, Any]
#: An HTTP status and the JSON object sent with it.
Answer = tuple[int, JSONObject]
Credentials = Mapping[str, str]


@dataclass(frozen=True)
class Incoming:
    """One request as the validators see it.

    ``headers`` has lower-case names. ``body`` is the JSON object sent, or
    None with ``body_problem`` saying why (wrong Content-Type, not JSON, not
    an object): every vendor documents a JSON-object body, and each answers
    that problem in its own error shape.
    """

    headers: Mapping[str, str]
    body: JSONObject | None
    body_problem: str | None
    #: The vendor path (``/v1/sessions/abc``), for endpoints with an id in it.
    path: str = ""
    #: What the vendor remembers between requests (its spec's ``state``), if anything.
    state: Any = None


Validator = Callable[[Incoming, Credentials], Answer | None]
Success = Callable[[Incoming], Answer]


@dataclass(frozen=True)
class Endpoint:
    """A documented route: ``validate`` returns the rejection or None when valid."""

    method: str
    path: str
    validate: Validator
    #: The answer to a valid request; stateful endpoints may still refuse here
    #: (an unknown Hellotext profile), so only a 2xx counts as accepted.
    success: Success
    #: The answer the vendor's older docs showed instead of a 2xx ``success``; None
    #: when it never changed.
    legacy_success: Success | None = None

    def matches(self, path: str) -> bool:
        """``path`` is this endpoint's; a trailing ``{id}`` segment matches any one segment."""
        head, brace, _ = self.path.partition("{")
        if not brace:
            return path == self.path
        rest = path[len(head) :]
        return path.startswith(head) and rest != "" and "/" not in rest


@dataclass(frozen=True)
class StateOption:
    """A setting of what a vendor remembers: ``Sandbox(options={vendor: {keyword: ...}})``,
    or ``--<vendor>-<flag>`` (repeatable) on the command line, kept across resets; and
    while it runs, more of the same through :meth:`Sandbox.seed` or ``POST
    /_sandbox/seed`` (the state's ``seed(**{keyword: values})``)."""

    flag: str
    keyword: str
    metavar: str
    help: str
    #: The command line's default: ``[]`` or None (then unset unless given).
    default: list[str] | None = field(default_factory=list)
    #: Whether the command line offers it (False: only for seeding a running sandbox,
    #: like a session Hellotext sees after the start).
    command_line: bool = True


@dataclass(frozen=True)
class VendorSpec:
    """A vendor served under ``/<name>``."""

    name: str
    endpoints: tuple[Endpoint, ...]
    #: The vendor's error body for a message (malformed bodies, injected faults).
    error_body: Callable[[str], JSONObject]
    #: The event payloads a request carries (PrimeData batches, others send one).
    events: Callable[[JSONObject], list[JSONObject]]
    #: The credentials the sandbox accepts unless told others.
    credentials: Mapping[str, str]
    #: Builds what the vendor remembers between requests from its ``options``; the
    #: object's ``clear()`` forgets all but those.
    state: Callable[..., Any] | None = None
    options: tuple[StateOption, ...] = ()

    @property
    def has_legacy(self) -> bool:
        """Whether some endpoint answers differently in legacy mode."""
        return any(endpoint.legacy_success is not None for endpoint in self.endpoints)


def is_aware_iso8601(value: object) -> bool:
    """An ISO-8601 string with ``Z`` or an offset: a naive time is ambiguous to every vendor."""
    if not isinstance(value, str):
        return False
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return False
    return parsed.tzinfo is not None


def is_number(value: object) -> TypeGuard[float]:
    # JSON true/false parse to bool, a subclass of int; no vendor means those.
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def is_nonempty_string(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and value != ""


def single_event(body: JSONObject) -> list[JSONObject]:
    return [body]


def unknown_key(value: dict[str, Any], known: frozenset[str], field: str) -> str | None:
    unknown = sorted(set(value) - known)
    if not unknown:
        return None
    where = f"{field}.{unknown[0]}" if field else unknown[0]
    return f"{where} is not a documented field (expected some of {', '.join(sorted(known))})"


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def parse_incoming(
    headers: Mapping[str, str], raw: bytes, path: str = "", state: Any = None
) -> tuple[Incoming, Any]:
    """The validators' view of a request, and the parsed JSON (any type) for the record.

    The Content-Type check comes first so a library that forgets the header
    is told so even when its body happens to be valid JSON.
    """
    parsed: Any = None
    problem: str | None = None
    try:
        parsed = json.loads(raw, parse_constant=_reject_constant) if raw else None
    except ValueError:  # JSONDecodeError and UnicodeDecodeError are ValueErrors.
        problem = "body is not valid JSON"
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        problem = "Content-Type must be application/json"
    elif problem is None and not isinstance(parsed, dict):
        problem = "body must be a JSON object"
    body = parsed if problem is None else None
    incoming = Incoming(
        headers=headers,
        body=body,
        body_problem=problem,
        path=path,
        state=state,
    )
    return incoming, parsed

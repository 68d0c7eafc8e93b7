"""The loopback HTTP server: routing, recording, fault injection and the control API.

It names no vendor: it serves the :class:`~django_eventtrack.sandbox.spec.VendorSpec`
of each vendor in the registry (each adapter's ``sandbox``). It needs no Django
settings (without them it serves the built-in vendors), so it runs in the test
process, in a separate process for Celery workers and the demo, or from the
command line. It is
meant to be fast enough for benchmarks: one thread per keep-alive
connection, one short lock per request, no logging unless asked.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import socket
import socketserver
import threading
import time
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs

from django.conf import settings
from django.utils.module_loading import import_string

from django_eventtrack.conf import get_config
from django_eventtrack.sandbox.spec import (
    Endpoint,
    Incoming,
    JSONObject,
    VendorSpec,
    parse_incoming,
)
from django_eventtrack.vendors import BUILT_IN

logger = logging.getLogger("django_eventtrack.sandbox")

CONTROL_PREFIX = "/_sandbox/"
MAX_BODY_BYTES = 16 * 1024 * 1024
FAULT_FIELDS = frozenset(
    {"vendor", "status", "count", "retry_after", "delay", "drop", "body", "truncate"}
)


@dataclass(frozen=True)
class RecordedRequest:
    """One request that reached a vendor's prefix, with what the sandbox answered.

    ``status`` is None when a fault dropped the connection. ``accepted`` is
    True only when the vendor rules passed and a 2xx was sent; ``events`` are
    the event payloads in the body (a batch's events, otherwise the body
    itself), extracted even for rejected requests to help debugging.
    """

    vendor: str
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    raw: str
    status: int | None
    received_at: float
    accepted: bool
    faulted: bool
    events: tuple[JSONObject, ...]

    @property
    def event_count(self) -> int:
        return len(self.events)

    def to_dict(self) -> JSONObject:
        """A JSON-serialisable copy, as the control API returns it."""
        record = asdict(self)
        record["events"] = list(self.events)
        record["event_count"] = self.event_count
        return record


@dataclass
class Fault:
    """A rule applied to the next ``count`` requests to one vendor (see :meth:`Sandbox.inject`)."""

    status: int | None = None
    count: int = 1
    retry_after: str | None = None
    delay: float = 0.0
    drop: bool = False
    body: JSONObject | None = None
    truncate: bool = False


def registry_specs() -> list[VendorSpec]:
    """The sandbox specs of the registry's vendors: the project's ``EVENTTRACK["ADAPTERS"]``
    when Django settings are configured, else the built-in vendors."""
    if settings.configured:
        adapters = list(get_config().adapters.values())
    else:
        adapters = [import_string(path) for path in BUILT_IN.values()]
    return [import_string(adapter.sandbox) for adapter in adapters if adapter.sandbox]


def _make_fault(
    status: int | None,
    count: int,
    retry_after: str | int | None,
    delay: float,
    drop: bool,
    body: JSONObject | None,
    truncate: bool = False,
) -> Fault:
    """Validate a rule up front: a typo in a test should fail loudly, not be ignored."""
    _check_fault_values(status, count, retry_after, delay, drop, body, truncate)
    if drop and status is not None:
        raise ValueError("a dropped connection has no status; pass drop or status, not both")
    if truncate and drop:
        raise ValueError("truncate must be a boolean, and cannot be combined with drop")
    if status is None and (body is not None or retry_after is not None):
        raise ValueError("body and retry_after need a status")
    if status is None and not (drop or delay or truncate):
        raise ValueError("a fault needs a status, a delay, drop=True or truncate=True")
    return Fault(
        status=status,
        count=count,
        retry_after=None if retry_after is None else str(retry_after),
        delay=float(delay),
        drop=drop,
        body=body,
        truncate=truncate,
    )


def _check_fault_values(
    status: int | None,
    count: int,
    retry_after: str | int | None,
    delay: float,
    drop: bool,
    body: JSONObject | None,
    truncate: bool,
) -> None:
    """Each value of a fault rule on its own (how they combine is :func:`_make_fault`'s)."""
    if status is not None and (
        not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599
    ):
        raise ValueError(f"status must be an HTTP status code, got {status!r}")
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise ValueError(f"count must be a positive integer, got {count!r}")
    if not isinstance(delay, int | float) or isinstance(delay, bool) or delay < 0:
        raise ValueError(f"delay must be a non-negative number of seconds, got {delay!r}")
    if not isinstance(drop, bool):
        raise ValueError(f"drop must be a boolean, got {drop!r}")
    if body is not None and not isinstance(body, dict):
        raise ValueError("body must be a JSON object")
    if retry_after is not None and not isinstance(retry_after, str | int):
        raise ValueError("retry_after must be a string (seconds or an HTTP-date)")
    if not isinstance(truncate, bool):
        raise ValueError("truncate must be a boolean, and cannot be combined with drop")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host's FQDN, which can stall on DNS.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def close_connections(self) -> None:
        """Shut idle keep-alive connections so a stopped sandbox really stops answering."""
        with self.connections_lock:
            connections = list(self.connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # answers are small; do not wait to fill a segment
    server: _Server

    def setup(self) -> None:
        super().setup()
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)
        super().finish()

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Per-request lines come from :meth:`_log` instead, without headers or query strings."""

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.sandbox.verbose:
            logger.info("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        raw = self._read_body()
        if raw is None:
            return
        path, _, query = self.path.partition("?")
        if path.startswith(CONTROL_PREFIX):
            self._control(path[len(CONTROL_PREFIX) :], query, raw)
            return
        prefix, _, rest = path[1:].partition("/")
        spec = self.server.sandbox.specs.get(prefix)
        if spec is None:
            self._send(404, {"error": "not found"})
            return
        self._vendor(spec, "/" + rest, raw)

    def _read_body(self) -> bytes | None:
        """The request body, or None after answering a body the sandbox will not read."""
        if "transfer-encoding" in self.headers:
            self.close_connection = True
            self._send(411, {"error": "send a Content-Length; chunked bodies are not supported"})
            return None
        try:
            length = int(self.headers.get("content-length", "0"))
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY_BYTES:
            self.close_connection = True
            self._send(400, {"error": "invalid or too large Content-Length"})
            return None
        return self.rfile.read(length) if length else b""

    def _send(
        self,
        status: int,
        body: JSONObject,
        headers: Iterable[tuple[str, str]] = (),
        truncate: bool = False,
    ) -> None:
        """Status line, headers and body in one write: one syscall per answer matters under load.

        ``truncate`` sends half the body and closes: the answer breaks off mid-response.
        """
        data = json.dumps(body, separators=(",", ":")).encode()
        reason = self.responses.get(status, ("",))[0]
        lines = [
            f"{self.protocol_version} {status} {reason}",
            "Content-Type: application/json",
            f"Content-Length: {len(data)}",
            *(f"{name}: {value}" for name, value in headers),
        ]
        if self.close_connection:
            lines.append("Connection: close")
        if truncate:
            data = data[: len(data) // 2]
        self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + data)
        if truncate:
            self._drop()

    def _drop(self) -> None:
        """Close without answering: the client sees a reset or a remote disconnect."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _log(self, vendor: str, path: str, status: int | None, detail: str = "") -> None:
        if self.server.sandbox.verbose:
            shown = "dropped" if status is None else str(status)
            logger.info("%s %s %s -> %s %s", vendor, self.command, path, shown, detail)

    def _vendor(self, spec: VendorSpec, path: str, raw: bytes) -> None:
        sandbox = self.server.sandbox
        headers = {name.lower(): value for name, value in self.headers.items()}
        incoming, parsed = parse_incoming(headers, raw, path, sandbox.states.get(spec.name))
        record = functools.partial(
            RecordedRequest,
            vendor=spec.name,
            method=self.command,
            path=self.path,
            headers=headers,
            body=parsed,
            raw=raw.decode("utf-8", errors="replace"),
            received_at=time.time(),
            events=tuple(spec.events(parsed)) if isinstance(parsed, dict) else (),
        )
        endpoint, allowed = _match(spec, path, self.command)
        if endpoint is None:
            reply = _Reply(405, {"error": "method not allowed"}, [("Allow", ", ".join(allowed))])
            if not allowed:
                reply = _Reply(404, {"error": "not found"})
            sandbox._record(record(status=reply.status, accepted=False, faulted=False))
            self._log(spec.name, path, reply.status)
            self._send(reply.status, reply.body, reply.headers)
            return
        fault = sandbox._take_fault(spec.name)
        if fault is not None and fault.delay:
            time.sleep(fault.delay)
        if fault is not None and fault.drop:
            sandbox._record(record(status=None, accepted=False, faulted=True))
            self._log(spec.name, path, None, "(fault)")
            self._drop()
            return
        reply = _reply(spec, endpoint, incoming, fault, sandbox)
        sandbox._record(
            record(status=reply.status, accepted=reply.accepted, faulted=fault is not None)
        )
        self._log(spec.name, path, reply.status, "" if reply.accepted else json.dumps(reply.body))
        truncate = fault is not None and fault.truncate
        self._send(reply.status, reply.body, reply.headers, truncate=truncate)

    def _control(self, action: str, query: str, raw: bytes) -> None:
        sandbox = self.server.sandbox
        routes = {
            "health": "GET",
            "requests": "GET",
            "faults": "POST",
            "reset": "POST",
            "legacy": "POST",
            "seed": "POST",
        }
        if action not in routes:
            self._send(404, {"error": "not found"})
            return
        if self.command != routes[action]:
            self._send(405, {"error": "method not allowed"}, [("Allow", routes[action])])
            return
        if action == "health":
            self._send(200, {"ok": True})
        elif action == "requests":
            vendor = parse_qs(query).get("vendor", [None])[0]
            records = sandbox.requests(vendor)
            self._send(
                200, {"requests": [r.to_dict() for r in records], "dropped": sandbox.dropped}
            )
        elif action == "reset":
            sandbox.reset()
            self._send(200, {"ok": True})
        else:
            self._control_change(action, raw)

    def _control_change(self, action: str, raw: bytes) -> None:
        sandbox = self.server.sandbox
        try:
            payload = json.loads(raw or b"{}")
            if not isinstance(payload, dict):
                raise ValueError("body must be a JSON object")
            if action == "faults":
                unknown = set(payload) - FAULT_FIELDS
                if unknown:
                    raise ValueError(f"unknown fields: {', '.join(sorted(unknown))}")
                sandbox.inject(**payload)
            elif action == "seed":
                vendor = payload.pop("vendor", None)
                if not isinstance(vendor, str):
                    raise ValueError("vendor is required: the vendor whose state to seed")
                sandbox.seed(vendor, **payload)
            else:
                sandbox.set_legacy(payload["vendor"], bool(payload.get("enabled", True)))
        except (ValueError, KeyError, TypeError) as error:
            self._send(400, {"error": str(error)})
            return
        self._send(200, {"ok": True})


@dataclass(frozen=True)
class _Reply:
    status: int
    body: JSONObject
    headers: list[tuple[str, str]] = field(default_factory=list)
    accepted: bool = False


def _reply(
    spec: VendorSpec, endpoint: Endpoint, incoming: Incoming, fault: Fault | None, sandbox: Sandbox
) -> _Reply:
    """An injected status, else the vendor's rejection, else its (current or legacy) success."""
    if fault is not None and fault.status is not None:
        body = fault.body if fault.body is not None else spec.error_body("sandbox fault")
        retry_after = [("Retry-After", fault.retry_after)] if fault.retry_after else []
        return _Reply(fault.status, body, retry_after)
    rejection = endpoint.validate(incoming, sandbox.credentials[spec.name])
    if rejection is not None:
        return _Reply(*rejection)
    status, body = endpoint.success(incoming)
    accepted = 200 <= status < 300
    if accepted and spec.name in sandbox.legacy and endpoint.legacy_success is not None:
        status, body = endpoint.legacy_success(incoming)
    return _Reply(status, body, accepted=accepted)


def _match(spec: VendorSpec, path: str, method: str) -> tuple[Endpoint | None, list[str]]:
    """The endpoint for this method and path, else the methods the path allows."""
    allowed = []
    for endpoint in spec.endpoints:
        if endpoint.matches(path):
            if endpoint.method == method:
                return endpoint, []
            allowed.append(endpoint.method)
    return None, allowed


class Sandbox:
    """A local stand-in for every vendor of the registry, served over real loopback HTTP.

    Usage::

        with Sandbox() as sandbox:
            settings.EVENTTRACK["VENDORS"] = sandbox.vendor_settings()
            ...
            sandbox.wait_for(1, vendor="hackle")

    Each vendor lives under its own prefix (``/<vendor>``) followed by the vendor's
    documented path, so configuring the library's ``API_URL`` as :meth:`api_url` is
    all it takes. ``vendors`` are the specs served (default: :func:`registry_specs`);
    ``options`` set what a vendor remembers (``{vendor: {keyword: value}}``, the
    keywords of its spec's ``state``), kept across :meth:`reset`.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        credentials: Mapping[str, Mapping[str, str]] | None = None,
        legacy: Iterable[str] = (),
        max_records: int = 100_000,
        verbose: bool = False,
        vendors: Iterable[VendorSpec] | None = None,
        options: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        if max_records < 1:
            raise ValueError("max_records must be at least 1")
        self.host = host
        self.port = port
        #: The vendors served, by name (the path prefix).
        self.specs = {
            spec.name: spec for spec in (registry_specs() if vendors is None else vendors)
        }
        self.credentials = {name: dict(spec.credentials) for name, spec in self.specs.items()}
        for vendor, values in (credentials or {}).items():
            self.credentials[self._check_vendor(vendor)].update(values)
        for vendor in options or {}:
            self._check_vendor(vendor)
        #: What each vendor remembers between requests (:meth:`state`).
        self.states: dict[str, Any] = {}
        for name, spec in self.specs.items():
            given = dict((options or {}).get(name, {}))
            if spec.state is not None:
                self.states[name] = spec.state(**given)
            elif given:
                raise ValueError(f"{name} remembers nothing: it takes no options")
        self._initial_legacy = frozenset(self._check_vendor(vendor) for vendor in legacy)
        #: Vendors answering their old documented success. Replaced, never mutated,
        #: so request threads read it without a lock.
        self.legacy = self._initial_legacy
        self.max_records = max_records
        self.verbose = verbose
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._records: deque[RecordedRequest] = deque()
        self._counts: Counter[str] = Counter()
        self._dropped = 0
        self._faults: dict[str, deque[Fault]] = {}
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def _check_vendor(self, vendor: str) -> str:
        if vendor not in self.specs:
            raise ValueError(f"unknown vendor {vendor!r}; expected one of {', '.join(self.specs)}")
        return vendor

    def state(self, vendor: str) -> Any:
        """What ``vendor`` remembers between requests (its spec's ``state`` object, e.g. the
        profiles and sessions a vendor hands out); set up tests through it."""
        if self._check_vendor(vendor) not in self.states:
            raise ValueError(f"{vendor} remembers nothing between requests")
        return self.states[vendor]

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> Sandbox:
        """Bind and serve from a daemon thread; ``port=0`` picks a free port."""
        if self._server is not None:
            raise RuntimeError("the sandbox is already running")
        self._server = _Server((self.host, self.port), self)
        self.port = self._server.server_port
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"eventtrack-sandbox-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving, close open connections and wait (bounded) for the thread."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.shutdown()
        server.close_connections()
        server.server_close()
        thread.join(timeout)
        self._server = self._thread = None

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # --- configuration for the library -----------------------------------------------------

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("start the sandbox first; its port is chosen when it binds")
        return f"http://{self.host}:{self.port}"

    def api_url(self, vendor: str) -> str:
        """The base URL to configure as the vendor's ``API_URL``."""
        return f"{self.url}/{self._check_vendor(vendor)}"

    def vendor_settings(self) -> dict[str, dict[str, str]]:
        """Ready for ``EVENTTRACK["VENDORS"]``: credentials plus ``API_URL`` per vendor."""
        return {
            vendor: {**credentials, "API_URL": self.api_url(vendor)}
            for vendor, credentials in self.credentials.items()
        }

    def env(self) -> dict[str, str]:
        """The same as ``EVENTTRACK_<VENDOR>_<SETTING>`` environment variables."""
        return {
            f"EVENTTRACK_{vendor.upper()}_{key}": value
            for vendor, values in self.vendor_settings().items()
            for key, value in values.items()
        }

    # --- recording -------------------------------------------------------------------------

    def _record(self, record: RecordedRequest) -> None:
        with self._changed:
            self._records.append(record)
            self._counts[record.vendor] += 1
            if len(self._records) > self.max_records:
                oldest = self._records.popleft()
                self._counts[oldest.vendor] -= 1
                self._dropped += 1
            self._changed.notify_all()

    def _matching(self, vendor: str | None) -> list[RecordedRequest]:
        if vendor is None:
            return list(self._records)
        return [record for record in self._records if record.vendor == vendor]

    def requests(self, vendor: str | None = None) -> list[RecordedRequest]:
        """Recorded requests, oldest first, including rejected and faulted ones."""
        if vendor is not None:
            self._check_vendor(vendor)
        with self._lock:
            return self._matching(vendor)

    def events(self, vendor: str) -> list[JSONObject]:
        """The event payloads the vendor accepted (batches flattened)."""
        return [
            event for record in self.requests(vendor) if record.accepted for event in record.events
        ]

    @property
    def dropped(self) -> int:
        """How many old records were discarded to stay within ``max_records``."""
        return self._dropped

    def wait_for(
        self, count: int, vendor: str | None = None, timeout: float = 5.0
    ) -> list[RecordedRequest]:
        """Block until at least ``count`` requests are recorded (for ``vendor``), then return them.

        Raises TimeoutError after ``timeout`` seconds, saying what did arrive.
        """
        if vendor is not None:
            self._check_vendor(vendor)

        def seen() -> int:
            return len(self._records) if vendor is None else self._counts[vendor]

        with self._changed:
            if self._changed.wait_for(lambda: seen() >= count, timeout):
                return self._matching(vendor)
            arrived = [f"{r.vendor} {r.method} {r.path} -> {r.status}" for r in self._records]
        raise TimeoutError(
            f"waited {timeout}s for {count} request(s) to {vendor or 'any vendor'}, "
            f"got {seen()}; recorded: {arrived or 'nothing'}"
        )

    # --- faults and modes ------------------------------------------------------------------

    def inject(
        self,
        vendor: str,
        status: int | None = None,
        count: int = 1,
        retry_after: str | int | None = None,
        delay: float = 0.0,
        drop: bool = False,
        body: JSONObject | None = None,
        truncate: bool = False,
    ) -> None:
        """Make the vendor's next ``count`` requests misbehave; rules apply in the order given.

        ``status`` (with optional ``body`` and ``Retry-After`` header value
        ``retry_after``) answers that instead of processing; ``delay`` waits
        first (alone, the request is then processed normally); ``drop``
        closes the connection without an answer (the vendor never processed
        it); ``truncate`` processes the request, then breaks the answer off
        halfway (the vendor has it, the client cannot know).
        """
        fault = _make_fault(status, count, retry_after, delay, drop, body, truncate)
        with self._lock:
            self._faults.setdefault(self._check_vendor(vendor), deque()).append(fault)

    def _take_fault(self, vendor: str) -> Fault | None:
        if not self._faults.get(vendor):  # lock-free fast path for the common case
            return None
        with self._lock:
            rules = self._faults.get(vendor)
            if not rules:
                return None
            fault = rules[0]
            fault.count -= 1
            if fault.count <= 0:
                rules.popleft()
            return fault

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def seed(self, vendor: str, **options: Any) -> None:
        """Tell the running ``vendor`` more of what it knows, by its options' keywords
        (each a list of values, as on the command line): a custom action created, a
        schema registered, a session Hellotext has not seen (``POST /_sandbox/seed``).
        Unlike the constructor's ``options``, a reset forgets it."""
        state = self.state(vendor)
        known = {option.keyword: option for option in self.specs[vendor].options}
        for keyword, values in options.items():
            if keyword not in known:
                raise ValueError(
                    f"{vendor} has no option {keyword!r}; expected some of "
                    f"{', '.join(sorted(known)) or 'none'}"
                )
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                raise ValueError(f"{keyword} must be a list of strings")
        state.seed(**options)

    def set_legacy(self, vendor: str, enabled: bool = True) -> None:
        """Toggle the vendor's old documented success (its endpoints' ``legacy_success``)."""
        self._check_vendor(vendor)
        with self._lock:
            self.legacy = self.legacy | {vendor} if enabled else self.legacy - {vendor}

    def reset(self) -> None:
        """Forget records, faults and what the vendors learnt; restore the constructor's
        legacy modes and ``options``."""
        for state in self.states.values():
            state.clear()
        with self._changed:
            self._records.clear()
            self._counts.clear()
            self._dropped = 0
            self._faults.clear()
            self.legacy = self._initial_legacy
            self._changed.notify_all()

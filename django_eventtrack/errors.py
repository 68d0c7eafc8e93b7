"""The exceptions django-eventtrack raises, so callers can ``except`` precisely.

Every message says what was wrong and what to do about it, and none ever
contains a credential: vendor error bodies are redacted before they are kept.
"""

from __future__ import annotations


class EventTrackError(Exception):
    """Base class of every error this package raises."""


class ConfigurationError(EventTrackError):
    """A setting or environment variable is missing or malformed."""


class InvalidEvent(EventTrackError, ValueError):
    """The event itself is wrong: bad name, unserialisable properties, naive timestamp...

    ``field`` names the offending part (``"name"``, ``"properties.price"``,
    ``"timestamp"``...), so a caller or a form can point at it.
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class PlanError(ConfigurationError):
    """The tracking plan (``EVENTTRACK["PLAN"]``) cannot be loaded, or a schema in it is
    not valid JSON Schema; the message names the file, the event and the property."""


class PlanViolation(InvalidEvent):
    """An event breaks the tracking plan: an undeclared name, a missing required
    property, a value of the wrong type... (``PLAN_MODE = "raise"``).

    ``event`` is the event's name and ``violations`` every problem found, each a
    :class:`str` naming the property and what was expected; ``field`` is the first
    one's property (``"properties.amount"``) or ``"name"``.
    """

    def __init__(
        self, message: str, *, event: str, violations: tuple[str, ...], field: str | None
    ) -> None:
        super().__init__(message, field=field)
        self.event = event
        self.violations = violations


class StorageError(EventTrackError):
    """The database refused to store an event (disk full, read-only, gone).

    The event was not tracked. Inside ``transaction.atomic()`` the caller's
    transaction is broken too, as with any database error. Set
    ``EVENTTRACK["RAISE_ON_STORAGE_ERROR"] = False`` to have ``track()`` log
    it and return ``None`` instead.
    """


class VendorAPIError(EventTrackError):
    """A vendor refused or failed a request.

    ``vendor`` is the vendor's name, ``status`` the HTTP status (``None`` for a
    transport failure) and ``body`` the redacted answer, cut to a sane length.
    """

    def __init__(
        self, message: str, *, vendor: str, status: int | None = None, body: str = ""
    ) -> None:
        super().__init__(message)
        self.vendor = vendor
        self.status = status
        self.body = body

"""The ids a browser brings, as each vendor's adapter declares them (:class:`BrowserId`),
and which of them may stand for the visitor at another vendor (:func:`visitor_ids`).

Foundations: the settings layer, the web side, the outbox and the adapters all read
these declarations; none names a vendor.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

#: The identity key of our own first-party visitor id (not a vendor's).
ANONYMOUS_ID = "anonymous_id"


@dataclass(frozen=True)
class BrowserId:
    """An id a vendor gives the visitor in the browser, declared by its adapter.

    ``name`` is the key everywhere the id travels: the :class:`Identity` key,
    ``track()``'s keyword, ``send_event``'s option (``--device-id`` for
    ``device_id``) and the snapshot key. How the server learns it: a ``query``
    parameter (wins) or a first-party ``cookie`` the vendor's SDK sets, read by
    the middleware; or ``script``, a JavaScript expression that reads it from
    the vendor's SDK, which ``eventtrack.js`` copies into the ids cookie under
    ``script_key``. ``script_ready`` is a JavaScript statement that calls
    ``collect`` once the SDK has the id, ``ready_event`` a ``window`` event
    after which it has. ``visitor="session"`` says the id can stand for the
    visitor when another vendor's own id is unknown (preferred to our anonymous
    id); a person's id (a vendor profile) never does.

    An id the browser brings outlives a sign-out, so one browser can carry it for
    two people. Once it is known to belong to one user, another user's events never
    carry it (:mod:`django_eventtrack.outbox.owners`): ``shared`` says what they
    carry instead. ``"drop"`` (the default), for an id the vendor hands out (its
    SDK's, which it ties to whoever it first saw): nothing. ``"derive"``, for an id
    the vendor lets the client choose (any token grouping a visitor's events): one
    derived from it and the user, so each person of a shared browser has their own.
    """

    name: str
    description: str
    cookie: str | None = None
    query: str | None = None
    script_key: str | None = None
    script: str | None = None
    script_ready: str | None = None
    ready_event: str | None = None
    visitor: Literal["session"] | None = None
    shared: Literal["drop", "derive"] = "drop"

    @property
    def from_browser(self) -> bool:
        """Whether the browser brings it (then the Django session keeps it)."""
        return bool(self.cookie or self.query or self.script)


def visitor_ids(browser_ids: Sequence[BrowserId]) -> tuple[str, ...]:
    """The identity keys that may stand for the visitor, best first (see :class:`BrowserId`):
    browser ids only, never a person's profile id."""
    sessions = [browser_id.name for browser_id in browser_ids if browser_id.visitor == "session"]
    return (*sessions, ANONYMOUS_ID)

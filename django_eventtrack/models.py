"""The outbox: one ``Event`` row per tracked event and one ``Delivery`` row per vendor.

The rows are the source of truth. ``track()`` writes the event with its
``routes`` (the vendors it goes to); the first sender to look writes its
deliveries from them (:mod:`django_eventtrack.outbox.fanout`). Whichever backend
does the sending, it claims due deliveries, sends them outside any transaction
and writes the outcome back here: retries, backoff, dead-lettering and retention
all live in these columns, so every backend behaves the same.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.db import models
from django.db.models import Q, Value
from django.utils import timezone

from django_eventtrack.core import event as normalised


class Event(models.Model):
    """A tracked event as it was when ``track()`` was called (identity snapshot included)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # No index: nothing looks events up by name, and each index is one more write
    # in track().
    name = models.CharField(max_length=128)
    properties = models.JSONField(default=dict, blank=True)
    identity = models.JSONField(default=dict, blank=True)
    vendor_extra = models.JSONField(default=dict, blank=True)
    kind = models.CharField(
        max_length=16,
        choices=[(kind, kind) for kind in normalised.KINDS],
        default=normalised.TRACK,
        help_text="track: an action; identify: ties the visitor to a user (properties are traits).",
    )
    timestamp = models.DateTimeField(help_text="When it happened (UTC).")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    scrubbed_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When SCRUB_DELIVERED / REDACT_KEYS removed its personal data after sending.",
    )
    routes = models.JSONField(
        null=True,
        blank=True,
        editable=False,
        help_text="The vendors it goes to (with why not, for a vendor that skips it) until "
        "a sender has written its deliveries; then empty (NULL).",
    )
    violations = models.JSONField(
        null=True,
        blank=True,
        editable=False,
        help_text="How it broke the tracking plan when tracked (or when last replayed), one "
        "{field, message} each; empty (NULL) when it followed the plan.",
    )
    quarantine = models.JSONField(
        null=True,
        blank=True,
        editable=False,
        help_text="Set while the event is held back for breaking the tracking plan "
        "(PLAN_MODE quarantine): the vendors track() was asked for ({vendors: null} for "
        "all). A replay that finds it valid routes it and empties this (NULL).",
    )

    class Meta:
        db_table = "eventtrack_event"
        ordering = ["-created_at"]
        verbose_name = "tracked event"
        indexes = [
            # Only events still waiting for their deliveries are indexed: finding them
            # stays as fast with a billion routed events as with none.
            models.Index(
                fields=["created_at"],
                condition=Q(routes__isnull=False),
                name="eventtrack_unrouted",
            ),
            # Only quarantined events: listing and replaying them reads nothing else.
            models.Index(
                fields=["created_at"],
                condition=Q(quarantine__isnull=False),
                name="eventtrack_quarantined",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.id})"

    @staticmethod
    def values_of(event: normalised.TrackedEvent) -> dict[str, Any]:
        """The row's values for ``event``, by attribute name (the other fields take
        their defaults)."""
        return {
            "id": event.id,
            "name": event.name,
            "properties": dict(event.properties),
            "identity": event.identity.as_dict(),
            "vendor_extra": dict(event.vendor_extra),
            "timestamp": event.timestamp,
            "kind": event.kind,
        }

    def delivery_statuses(self) -> dict[str, str]:
        """Each vendor the event goes to, with its delivery's status: from its routes
        (``pending``, or ``skipped`` for a vendor with a skip reason) until a sender has
        written its deliveries (prefetch ``deliveries`` when listing many)."""
        if self.routes:
            return {
                vendor: (Delivery.Status.SKIPPED if reason else Delivery.Status.PENDING).value
                for vendor, reason in self.routes.items()
            }
        return {delivery.vendor: delivery.status for delivery in self.deliveries.all()}

    def to_normalised(self) -> normalised.TrackedEvent:
        """The event as adapters read it (trusted: it was validated when tracked)."""
        return normalised.TrackedEvent(
            name=self.name,
            properties=self.properties,
            timestamp=self.timestamp,
            identity=normalised.Identity(**self.identity),
            id=self.id,
            vendor_extra=self.vendor_extra,
            kind=self.kind,
        )


class Delivery(models.Model):
    """One vendor's copy of an event, and everything about getting it there."""

    class Status(models.TextChoices):
        PENDING = "pending"
        DELIVERED = "delivered"
        FAILED = "failed"
        SKIPPED = "skipped"

    # No index of its own: the unique (event, vendor) constraint's index starts with the
    # event and serves every lookup by event, so a second one only cost track() writes.
    event = models.ForeignKey(
        Event, on_delete=models.CASCADE, related_name="deliveries", db_index=False
    )
    vendor = models.CharField(max_length=32)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(
        default=timezone.now,
        help_text="When a pending delivery is next due. A claim moves it to the end of the "
        "lease, so a crashed sender's rows come due again by themselves.",
    )
    claim_token = models.UUIDField(null=True, blank=True, editable=False)
    claimed_until = models.DateTimeField(null=True, blank=True)
    last_status = models.PositiveIntegerField(
        null=True, blank=True, help_text="HTTP status of the last attempt."
    )
    last_error = models.TextField(
        blank=True, help_text="Last error or skip reason, with credentials redacted."
    )
    adjustments = models.JSONField(
        default=list,
        # Also in the database: rows inserted by hand (bulk loaders, our own fast insert)
        # need not name the column.
        db_default=Value([], output_field=models.JSONField()),
        blank=True,
        help_text="What was changed to fit the vendor's limits when it was last built "
        "(dropped or converted properties, a session left out), one short line each.",
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "eventtrack_delivery"
        ordering = ["-created_at"]
        verbose_name_plural = "deliveries"
        constraints = [
            models.UniqueConstraint(fields=["event", "vendor"], name="eventtrack_one_per_vendor")
        ]
        indexes = [
            # Only pending rows are indexed: the claim query stays as fast with a
            # billion delivered rows as with none.
            models.Index(
                fields=["vendor", "next_attempt_at"],
                condition=Q(status="pending"),
                name="eventtrack_due",
            ),
            models.Index(fields=["status", "updated_at"], name="eventtrack_status_age"),
        ]

    def __str__(self) -> str:
        return f"{self.vendor}: {self.event_id} ({self.status})"

    def __repr__(self) -> str:
        return f"<Delivery {self.pk} {self.vendor} {self.status} attempts={self.attempts}>"

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES


#: Statuses that never change again by themselves (nothing retries them): what the
#: monitoring counts as finished and what retention removes.
FINAL_STATUSES = (Delivery.Status.DELIVERED, Delivery.Status.FAILED, Delivery.Status.SKIPPED)


class VendorProfile(models.Model):
    """A vendor's own id for one of our users, learnt when ``identify()`` created it.

    Hellotext returns a profile id from ``POST /v1/profiles``; keeping it lets
    later events for that user name the profile, and later logins attach new
    browser sessions to the same profile instead of creating another.
    """

    vendor = models.CharField(max_length=32)
    user_id = models.CharField(max_length=256)
    profile_id = models.CharField(max_length=256)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "eventtrack_vendor_profile"
        verbose_name = "vendor profile"
        constraints = [
            models.UniqueConstraint(fields=["vendor", "user_id"], name="eventtrack_one_profile")
        ]

    def __str__(self) -> str:
        return f"{self.vendor}: user {self.user_id} = {self.profile_id}"


class VendorSession(models.Model):
    """Which vendor profile a browser session belongs to, as the vendor told us.

    Hellotext attaches a session to one profile for good and refuses an event
    that pairs the session with another profile (``identity_assigned``). Kept
    here, a shared browser's second user gets their events sent with their
    profile alone instead of refused. ``profile_id`` is empty when the vendor
    only said "another profile" without naming it.
    """

    vendor = models.CharField(max_length=32)
    session_id = models.CharField(max_length=256)
    profile_id = models.CharField(max_length=256, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "eventtrack_vendor_session"
        verbose_name = "vendor session"
        constraints = [
            models.UniqueConstraint(fields=["vendor", "session_id"], name="eventtrack_one_owner")
        ]

    def __str__(self) -> str:
        return f"{self.vendor}: session {self.session_id} = {self.profile_id or '(another)'}"


class VendorPause(models.Model):
    """A vendor nobody sends to until ``paused_until``, whichever process noticed.

    A 429 with ``Retry-After`` or an open circuit breaker pauses the vendor for
    every worker through this row, not only for the process that saw it; the
    admin shows it too (:func:`django_eventtrack.outbox.pausing.paused_vendors`).
    """

    vendor = models.CharField(max_length=32, unique=True)
    paused_until = models.DateTimeField()
    reason = models.CharField(max_length=255, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "eventtrack_vendor_pause"
        verbose_name = "vendor pause"

    def __str__(self) -> str:
        return f"{self.vendor} paused until {self.paused_until:%Y-%m-%d %H:%M:%S} ({self.reason})"


class PrivacySubject(models.Model):
    """What a person asked of us, kept under one of their ids, hashed.

    ``forget()`` sets ``forgotten_at`` (a suppression: ``track()`` and
    ``identify()`` store nothing for an event carrying this id, until
    ``unforget()``); ``withdraw_consent()`` adds to ``withdrawn`` (later events
    carrying this id are not sent to vendors serving those purposes, until
    ``grant_consent()``). A row exists only while one of them is set, so for
    everybody else ``track()``'s check finds nothing. The id itself is not
    stored (:mod:`django_eventtrack.core.subject_keys`); ``id_key`` says which kind
    of id it was.
    """

    digest = models.CharField(max_length=64, unique=True, editable=False)
    id_key = models.CharField(
        max_length=64, editable=False, help_text="Which id it is (user_id, anonymous_id...)."
    )
    forgotten_at = models.DateTimeField(
        null=True, blank=True, help_text="Erased: nothing is tracked for this id since."
    )
    withdrawn = models.JSONField(
        default=list, blank=True, help_text="Purposes whose consent was withdrawn."
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "eventtrack_privacy_subject"
        verbose_name = "privacy subject"

    def __str__(self) -> str:
        state = "forgotten" if self.forgotten_at else f"withdrew {', '.join(self.withdrawn)}"
        return f"{self.id_key} {self.digest[:12]}… ({state})"


class ErasureRequest(models.Model):
    """One ``forget()``: what was done here at once, and a task per vendor for what
    staff must delete there (none of the vendors offers a deletion API)."""

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    id_keys = models.CharField(
        max_length=255, help_text="Which ids were given (the ids themselves are not kept)."
    )
    source = models.CharField(
        max_length=64, blank=True, help_text="Who asked: the call, or a note."
    )
    events_scrubbed = models.PositiveIntegerField(default=0)
    deliveries_skipped = models.PositiveIntegerField(default=0)
    profiles_deleted = models.PositiveIntegerField(default=0)

    class Meta:
        db_table = "eventtrack_erasure_request"
        ordering = ["-created_at"]
        verbose_name = "erasure request"

    def __str__(self) -> str:
        return f"erasure of {self.id_keys} on {self.created_at:%Y-%m-%d %H:%M}"


class ErasureTask(models.Model):
    """What staff must do at one vendor for an erasure request, by ``due_at``."""

    class Status(models.TextChoices):
        TODO = "todo"
        DONE = "done"

    request = models.ForeignKey(ErasureRequest, on_delete=models.CASCADE, related_name="tasks")
    vendor = models.CharField(max_length=32)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.TODO)
    instructions = models.TextField(
        blank=True,
        help_text="What to delete where, with the vendor's ids for the person; emptied once done.",
    )
    due_at = models.DateTimeField()
    done_at = models.DateTimeField(null=True, blank=True)
    done_by = models.CharField(max_length=150, blank=True)

    class Meta:
        db_table = "eventtrack_erasure_task"
        ordering = ["due_at", "pk"]
        verbose_name = "erasure task"
        constraints = [
            models.UniqueConstraint(fields=["request", "vendor"], name="eventtrack_one_task")
        ]
        indexes = [models.Index(fields=["status", "due_at"], name="eventtrack_task_due")]

    def __str__(self) -> str:
        return f"{self.vendor}: {self.status}, due {self.due_at:%Y-%m-%d}"


class VendorDroppedName(models.Model):
    """An event name a vendor was seen to drop, as the vendor's answer showed, for every
    process.

    PrimeData answers how many events of a request it processed, not which: one event
    type per request makes a request of which none was processed a type PrimeData has
    no schema for. Kept here, later events of that name are skipped with ``reason``
    instead of sent to be dropped, until ``learned_at`` is a day old (then the vendor is
    asked again) or the row is deleted in the admin.
    """

    vendor = models.CharField(max_length=32)
    #: The vendor's name for the events (after ``EVENT_NAMES``).
    name = models.CharField(max_length=128)
    reason = models.TextField()
    learned_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "eventtrack_vendor_dropped_name"
        verbose_name = "event name a vendor drops"
        constraints = [
            models.UniqueConstraint(fields=["vendor", "name"], name="eventtrack_one_dropped_name")
        ]

    def __str__(self) -> str:
        return f"{self.vendor} drops {self.name!r}"


#: The longest ``Incident.reason``.
REASON_MAX_LENGTH = 64


class Incident(models.Model):
    """A run of one vendor's failures for one reason (``HTTP 503``, ``read timeout``):
    since when, until when, how many, the vendor's latest answer, and when it ended.

    A delivery row keeps only its own last answer, and a retry overwrites it; this
    keeps what an operator asks during an outage (why, since when, is it over) after
    the deliveries themselves are delivered, retried or purged. The senders write it
    (:mod:`django_eventtrack.outbox.incidents`); the dashboard reads it.
    """

    vendor = models.CharField(max_length=32)
    #: ``HTTP 503``, or the transport's words (``read timeout``, ``connection error``).
    reason = models.CharField(max_length=REASON_MAX_LENGTH)
    http_status = models.PositiveIntegerField(null=True, blank=True)
    #: The vendor's latest answer for this reason, with credentials redacted.
    message = models.TextField(blank=True)
    #: Failed attempts (each delivery each time) counted in it.
    count = models.PositiveIntegerField(default=0)
    #: Whether the last of them will be retried (``False``: they failed for good).
    retrying = models.BooleanField(default=True)
    first_seen = models.DateTimeField(default=timezone.now)
    last_seen = models.DateTimeField(default=timezone.now)
    #: When the vendor next accepted a delivery; ``None`` while it goes on.
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "eventtrack_incident"
        ordering = ["-last_seen"]
        constraints = [
            models.UniqueConstraint(
                fields=["vendor", "reason"],
                condition=Q(resolved_at__isnull=True),
                name="eventtrack_one_open_incident",
            )
        ]
        indexes = [models.Index(fields=["last_seen"], name="eventtrack_incident_seen")]

    def __str__(self) -> str:
        state = "open" if self.resolved_at is None else "resolved"
        return f"{self.vendor}: {self.reason} x{self.count} ({state})"

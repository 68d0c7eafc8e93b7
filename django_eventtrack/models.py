"""The outbox: one ``Event`` row per tracked event and one ``Delivery`` row per vendor.

The rows are the source of truth. Whichever backend does the sending, it
claims due deliveries, sends them outside any transaction and writes the
outcome back here: retries, backoff, dead-lettering and retention all live in
these columns, so every backend behaves the same.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.db import models
from django.db.models import Q
from django.utils import timezone

from django_eventtrack import event as normalised


class Event(models.Model):
    """A tracked event as it was when ``track()`` was called (identity snapshot included)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=128, db_index=True)
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

    class Meta:
        db_table = "eventtrack_event"
        ordering = ["-created_at"]
        verbose_name = "tracked event"

    def __str__(self) -> str:
        return f"{self.name} ({self.id})"

    @classmethod
    def from_normalised(cls, event: normalised.Event) -> Event:
        return cls(
            id=event.id,
            name=event.name,
            properties=dict(event.properties),
            identity=event.identity.as_dict(),
            vendor_extra=dict(event.vendor_extra),
            timestamp=event.timestamp,
            kind=event.kind,
        )

    def to_normalised(self) -> normalised.Event:
        """The event as adapters read it (trusted: it was validated when tracked)."""
        return normalised.Event(
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

    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="deliveries")
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
        return self.status != self.Status.PENDING

    def summary(self) -> dict[str, Any]:
        return {
            "vendor": self.vendor,
            "status": self.status,
            "attempts": self.attempts,
            "last_status": self.last_status,
            "last_error": self.last_error,
        }


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

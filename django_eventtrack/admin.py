"""The outbox in Django's admin: read-only events and deliveries, with two actions.

Nothing here can add or edit an event, and no page shows vendor settings; a
delivery's ``last_error`` is shown as stored, which is already redacted. The
lists stay cheap on a large outbox: filters list their choices without a
query, the full result count is not computed, and related rows are fetched
with the page.

Search matches an event id exactly, an event name by substring, and an
identity value (user id, anonymous id, Hellotext profile or session, Hackle
device id, Browsee or PrimeData id) exactly, ignoring case. Identity values
are looked up per key in the JSON (``identity__user_id__iexact``...), which
works on every database Django's ``JSONField`` supports, SQLite and
PostgreSQL included, and never matches a key name by accident.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.contrib.admin.utils import model_ngettext
from django.contrib.auth import get_permission_codename
from django.db import transaction
from django.db.models import Exists, OuterRef, QuerySet
from django.http import HttpRequest
from django.utils import timezone

from django_eventtrack import backends, outbox
from django_eventtrack.event import Identity
from django_eventtrack.models import Delivery, Event, VendorProfile
from django_eventtrack.vendors import ADAPTERS

Status = Delivery.Status

if TYPE_CHECKING:  # django-stubs makes these generic; Django itself does not
    EventAdminBase = admin.ModelAdmin[Event]
    DeliveryAdminBase = admin.ModelAdmin[Delivery]
    VendorProfileAdminBase = admin.ModelAdmin[VendorProfile]
    DeliveryInlineBase = admin.TabularInline[Delivery, Event]
else:
    EventAdminBase = DeliveryAdminBase = VendorProfileAdminBase = admin.ModelAdmin
    DeliveryInlineBase = admin.TabularInline


def _event_search_fields(path: str = "") -> tuple[str, ...]:
    identity = (f"={path}identity__{key}" for key in Identity.field_names())
    return (f"={path}id", f"{path}name", *identity)


def _vendor_choices() -> list[tuple[str, str]]:
    return [(name, adapter.display_name) for name, adapter in ADAPTERS.items()]


class ReadOnlyAdminMixin:
    """View permission is enough to look; nobody adds, edits or deletes rows here."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class VendorFilter(admin.SimpleListFilter):
    """Vendors from the registry, so listing them costs no SELECT DISTINCT over the outbox."""

    title = "vendor"
    parameter_name = "vendor"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return _vendor_choices()

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        return queryset.filter(vendor=value) if value else queryset


class HasDeliveryFilter(admin.SimpleListFilter):
    """Events with at least one delivery whose ``field`` has the chosen value.

    One EXISTS subquery: no join, so no duplicate events and no DISTINCT.
    Two such filters are independent conditions (a delivery to Hackle, and a
    failed delivery); the deliveries list answers "failed to Hackle".
    """

    field = ""

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if not value:
            return queryset
        matching = Delivery.objects.filter(event=OuterRef("pk"), **{self.field: value})
        return queryset.filter(Exists(matching))


class HasDeliveryToFilter(HasDeliveryFilter):
    title = "has a delivery to"
    parameter_name = "vendor"
    field = "vendor"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return _vendor_choices()


class HasDeliveryInStatusFilter(HasDeliveryFilter):
    title = "has a delivery that is"
    parameter_name = "status"
    field = "status"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return list(Status.choices)


class DeliveryInline(ReadOnlyAdminMixin, DeliveryInlineBase):
    model = Delivery
    fields = (
        "vendor",
        "status",
        "attempts",
        "last_status",
        "last_error",
        "next_attempt_at",
        "delivered_at",
    )
    readonly_fields = fields
    extra = 0
    show_change_link = True


@admin.register(Event)
class EventAdmin(ReadOnlyAdminMixin, EventAdminBase):
    list_display = ("name", "kind", "id", "timestamp", "created_at", "deliveries_column")
    list_filter = (HasDeliveryToFilter, HasDeliveryInStatusFilter, "kind", "created_at")
    search_fields = _event_search_fields()
    fields = (
        "id",
        "name",
        "kind",
        "timestamp",
        "created_at",
        "properties",
        "identity",
        "vendor_extra",
    )
    readonly_fields = fields
    inlines = (DeliveryInline,)
    show_full_result_count = False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Event]:
        return super().get_queryset(request).prefetch_related("deliveries")

    @admin.display(description="deliveries")
    def deliveries_column(self, event: Event) -> str:
        deliveries = sorted(event.deliveries.all(), key=lambda delivery: delivery.vendor)
        return ", ".join(f"{d.vendor}: {d.status}" for d in deliveries) or "-"


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdminMixin, DeliveryAdminBase):
    list_display = (
        "id",
        "event_name",
        "vendor",
        "status",
        "attempts",
        "last_status",
        "next_attempt_at",
        "created_at",
        "delivered_at",
    )
    list_filter = (VendorFilter, "status", "created_at", "next_attempt_at")
    list_select_related = ("event",)
    search_fields = _event_search_fields("event__")
    fields = (
        "event",
        "vendor",
        "status",
        "attempts",
        "last_status",
        "last_error",
        "adjustments",
        "next_attempt_at",
        "claimed_until",
        "created_at",
        "updated_at",
        "delivered_at",
    )
    readonly_fields = fields
    # The primary key follows insertion order and is indexed; created_at is not.
    ordering = ("-pk",)
    show_full_result_count = False
    actions = ("retry_now", "mark_skipped")

    def has_manage_permission(self, request: HttpRequest) -> bool:
        """The actions need the change permission, although no form edits a delivery."""
        codename = get_permission_codename("change", self.opts)
        return request.user.has_perm(f"{self.opts.app_label}.{codename}")

    @admin.display(description="event", ordering="event__name")
    def event_name(self, delivery: Delivery) -> str:
        return delivery.event.name

    @admin.action(description="Retry now", permissions=["manage"])
    def retry_now(self, request: HttpRequest, queryset: QuerySet[Delivery]) -> None:
        """Due again now, whatever the status; attempts are kept. A delivery a sender
        holds at this moment is left to finish, so it is never sent twice at once."""
        now = timezone.now()
        scrubbed = queryset.filter(event__scrubbed_at__isnull=False).count()
        idle = queryset.exclude(claimed_until__gt=now).filter(event__scrubbed_at__isnull=True)
        event_ids = list(set(idle.values_list("event_id", flat=True)))
        retried = idle.update(
            status=Status.PENDING,
            next_attempt_at=now,
            claim_token=None,
            claimed_until=None,
            updated_at=now,
        )
        transaction.on_commit(lambda: backends.notify(event_ids))
        message = f"{retried} {model_ngettext(self.opts, retried)} due now."
        if busy := queryset.count() - retried - scrubbed:
            message += f" {busy} being sent right now, left alone."
        if scrubbed:
            message += (
                f" {scrubbed} not retried: their event's properties were scrubbed after it "
                "was sent (SCRUB_DELIVERED / REDACT_KEYS), so resending would send less."
            )
        self.message_user(request, message)

    @admin.action(description="Mark skipped", permissions=["manage"])
    def mark_skipped(self, request: HttpRequest, queryset: QuerySet[Delivery]) -> None:
        """Stop trying. Delivered rows keep their status, and a send in flight still
        records its real outcome (its claim is left as it is)."""
        event_ids = set(queryset.values_list("event_id", flat=True))
        skipped = queryset.exclude(status=Status.DELIVERED).update(
            status=Status.SKIPPED,
            last_error=f"skipped by {request.user.get_username()} in admin",
            updated_at=timezone.now(),
        )
        outbox.scrub_finished(event_ids)  # skipped by hand is final too
        self.message_user(request, f"{skipped} {model_ngettext(self.opts, skipped)} skipped.")


@admin.register(VendorProfile)
class VendorProfileAdmin(ReadOnlyAdminMixin, VendorProfileAdminBase):
    """Profile ids vendors returned for our users (Hellotext), kept by ``identify()``."""

    list_display = ("user_id", "vendor", "profile_id", "created_at")
    list_filter = ("vendor",)
    search_fields = ("user_id", "profile_id")
    fields = list_display
    readonly_fields = fields

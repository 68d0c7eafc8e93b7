"""The outbox in Django's admin: read-only events and deliveries, two actions, and the
delivery dashboard (``admin:eventtrack_dashboard``).

Nothing here can add or edit an event, and no page shows vendor settings; a
delivery's ``last_error`` is shown as stored, which is already redacted. The
lists stay cheap on a large outbox: filters list their choices without a
query, the full result count is not computed, and related rows are fetched
with the page. The views here check permissions and render: the dashboard's page
comes from :mod:`django_eventtrack.monitoring.dashboard` (read-only), and the
actions' writes are :mod:`django_eventtrack.outbox.manual`'s.

Search matches an event id exactly, an event name by substring, and an
identity value (user id, anonymous id, Hellotext profile or session, Hackle
device id, Browsee or PrimeData id) exactly, ignoring case. Identity values
are looked up per key in the JSON (``identity__user_id__iexact``...), which
works on every database Django's ``JSONField`` supports, SQLite and
PostgreSQL included, and never matches a key name by accident.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import display_for_value, model_ngettext
from django.contrib.auth import get_permission_codename
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from django_eventtrack import api
from django_eventtrack.conf import get_config
from django_eventtrack.core.event import CORE_KEYS
from django_eventtrack.core.redaction import truncate
from django_eventtrack.delivery import backends
from django_eventtrack.errors import ConfigurationError
from django_eventtrack.models import (
    Delivery,
    ErasureRequest,
    ErasureTask,
    Event,
    PrivacySubject,
    VendorDroppedName,
    VendorPause,
    VendorProfile,
    VendorSession,
)
from django_eventtrack.monitoring import coverage, dashboard
from django_eventtrack.outbox import erasure, manual, quarantine
from django_eventtrack.plan import render

if TYPE_CHECKING:  # django-stubs makes these generic; Django itself does not
    EventAdminBase = admin.ModelAdmin[Event]
    DeliveryAdminBase = admin.ModelAdmin[Delivery]
    VendorProfileAdminBase = admin.ModelAdmin[VendorProfile]
    VendorSessionAdminBase = admin.ModelAdmin[VendorSession]
    VendorPauseAdminBase = admin.ModelAdmin[VendorPause]
    PrivacySubjectAdminBase = admin.ModelAdmin[PrivacySubject]
    ErasureRequestAdminBase = admin.ModelAdmin[ErasureRequest]
    ErasureTaskAdminBase = admin.ModelAdmin[ErasureTask]
    VendorDroppedNameAdminBase = admin.ModelAdmin[VendorDroppedName]
    DeliveryInlineBase = admin.TabularInline[Delivery, Event]
    ErasureTaskInlineBase = admin.TabularInline[ErasureTask, ErasureRequest]
else:
    EventAdminBase = DeliveryAdminBase = VendorProfileAdminBase = admin.ModelAdmin
    VendorSessionAdminBase = VendorPauseAdminBase = VendorDroppedNameAdminBase = admin.ModelAdmin
    PrivacySubjectAdminBase = ErasureRequestAdminBase = ErasureTaskAdminBase = admin.ModelAdmin
    DeliveryInlineBase = ErasureTaskInlineBase = admin.TabularInline


def _event_search_fields(path: str = "") -> tuple[str, ...]:
    """The event id, its name, and every identity key: the core ones and the registry's."""
    keys = (*CORE_KEYS, *get_config().vendor_id_names)
    return (f"={path}id", f"{path}name", *(f"={path}identity__{key}" for key in keys))


def _vendor_choices() -> list[tuple[str, str]]:
    return [(name, adapter.display_name) for name, adapter in get_config().adapters.items()]


class ReadOnlyAdminMixin:
    """View permission is enough to look; nobody adds, edits or deletes rows here."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class DeletableAdminMixin(ReadOnlyAdminMixin):
    """Read-only but for deleting, with the user's ``delete`` permission: for rows that
    hold something back (a pause, a dropped name), which deleting ends."""

    #: The model's options (set by ``ModelAdmin``).
    opts: Any

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Django's own check (ModelAdmin.has_delete_permission), past the read-only mixin.
        codename = get_permission_codename("delete", self.opts)
        return bool(request.user.has_perm(f"{self.opts.app_label}.{codename}"))


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
    failed delivery); the deliveries list answers "failed to Hackle". An event
    whose deliveries no sender has written yet matches by its routes.
    """

    field = ""

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if not value:
            return queryset
        matching = Q(Exists(Delivery.objects.filter(event=OuterRef("pk"), **{self.field: value})))
        return queryset.filter(matching | self.routed_to_have(value))

    def routed_to_have(self, value: str) -> Q:
        """Events not yet routed that will have such a delivery."""
        return Q(pk__in=[])


class HasDeliveryToFilter(HasDeliveryFilter):
    title = "has a delivery to"
    parameter_name = "vendor"
    field = "vendor"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return _vendor_choices()

    def routed_to_have(self, value: str) -> Q:
        return Q(routes__has_key=value)


class HasDeliveryInStatusFilter(HasDeliveryFilter):
    title = "has a delivery that is"
    parameter_name = "status"
    field = "status"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return list(Delivery.Status.choices)

    def routed_to_have(self, value: str) -> Q:
        return (
            Q(routes__isnull=False)
            if value == Delivery.Status.PENDING
            else super().routed_to_have(value)
        )


#: Characters of a failure or skip reason shown in a list column (all of it on the page).
REASON_CHARS = 90
#: What the columns below show for "nothing" (the admin's own default); they return
#: text because a change page prints a callable's None as "None".
EMPTY = "-"


class DeliveryColumnsMixin:
    """Delivery columns shown the same in the deliveries list, a delivery's page and an
    event's deliveries."""

    @admin.display(description="next attempt at", ordering="next_attempt_at")
    def next_attempt(self, delivery: Delivery) -> str:
        """Only a pending delivery has one: nothing tries a final row again by itself."""
        return EMPTY if delivery.is_final else display_for_value(delivery.next_attempt_at, EMPTY)

    @admin.display(description="last HTTP status", ordering="last_status")
    def last_answer(self, delivery: Delivery) -> str:
        """The HTTP status of the last request, saying so when a 2xx did not deliver.

        Such a row is not a contradiction: the vendor answered 2xx but what it
        answered was a refusal (Browsee's ``"status": "failure"``, a Hellotext profile
        created without an id), or, for ``identify()`` to Hellotext, the last of its
        requests (``PATCH /v1/sessions``) answered 200 with the session still bound to
        another profile, which Hellotext never moves: the delivery failed, with that
        reason (in the next column). Shown alone, "200" read as a success.
        """
        code = delivery.last_status
        if code is None:
            return EMPTY
        if 200 <= code < 300 and delivery.status != Delivery.Status.DELIVERED:
            return f"{code}, but {delivery.status}"
        return str(code)

    @admin.display(description="reason", ordering="last_error")
    def reason(self, delivery: Delivery) -> SafeString | str:
        """Why it failed or was skipped (or the last retryable error), cut to fit the list;
        the whole text is in the tooltip and on the delivery's page."""
        if not delivery.last_error:
            return EMPTY
        return format_html(
            '<span title="{}">{}</span>',
            delivery.last_error,
            truncate(delivery.last_error, REASON_CHARS),
        )


class DeliveryInline(DeliveryColumnsMixin, ReadOnlyAdminMixin, DeliveryInlineBase):
    model = Delivery
    fields = (
        "vendor",
        "status",
        "attempts",
        "last_answer",
        "last_error",
        "next_attempt",
        "delivered_at",
    )
    readonly_fields = fields
    extra = 0
    show_change_link = True


class PlanFilter(admin.SimpleListFilter):
    """Events by what the tracking plan said: quarantined, sent though they broke it, or
    followed it (the first served by the partial index on quarantined events)."""

    title = "tracking plan"
    parameter_name = "plan"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [
            ("quarantined", "quarantined"),
            ("flagged", "sent, breaking it"),
            ("followed", "followed it"),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if value == "quarantined":
            return queryset.filter(quarantine__isnull=False)
        if value == "flagged":
            return queryset.filter(quarantine__isnull=True, violations__isnull=False)
        if value == "followed":
            return queryset.filter(violations__isnull=True)
        return queryset


def _violations_text(event: Event) -> str:
    return "; ".join(
        f"{item.get('field')} {item.get('message')}"
        for item in event.violations or ()
        if isinstance(item, dict)
    )


@admin.register(Event)
class EventAdmin(ReadOnlyAdminMixin, EventAdminBase):
    # What fits a laptop's list beside the filters with the deliveries readable; the id is
    # on the event's page and found by the search box, the storing time is a filter.
    list_display = ("name", "kind", "timestamp", "deliveries_column", "consent", "plan_column")
    list_filter = (
        HasDeliveryToFilter,
        HasDeliveryInStatusFilter,
        PlanFilter,
        "kind",
        "created_at",
    )
    #: The real list comes from the registry (:meth:`get_search_fields`).
    search_fields = ("=id",)
    fields = (
        "id",
        "name",
        "kind",
        "timestamp",
        "created_at",
        "consent",
        "properties",
        "identity",
        "vendor_extra",
        "routes",
        "violations",
        "quarantine",
        "scrubbed_at",
    )
    readonly_fields = fields
    inlines = (DeliveryInline,)
    show_full_result_count = False
    actions = ("replay_quarantined",)

    class Media:
        css = {"all": ["django_eventtrack/admin.css"]}

    def get_urls(self) -> list[URLPattern]:
        """The plan page, before the model's own URLs (whose last one takes any path)."""
        view = self.admin_site.admin_view
        return [
            path("plan/", view(self.plan_view), name="eventtrack_plan"),
            *super().get_urls(),
        ]

    def has_manage_permission(self, request: HttpRequest) -> bool:
        """Replaying needs the change permission, although no form edits an event."""
        codename = get_permission_codename("change", self.opts)
        return request.user.has_perm(f"{self.opts.app_label}.{codename}")

    def get_search_fields(self, request: HttpRequest) -> tuple[str, ...]:
        return _event_search_fields()

    @admin.display(description="tracking plan")
    def plan_column(self, event: Event) -> SafeString | str:
        """Quarantined, or sent though it broke the plan, with the violations in the tooltip."""
        if not event.violations:
            return EMPTY
        label = "quarantined" if event.quarantine is not None else "broke the plan"
        return format_html('<span title="{}">{}</span>', _violations_text(event), label)

    @admin.action(description="Replay against the tracking plan", permissions=["manage"])
    def replay_quarantined(self, request: HttpRequest, queryset: QuerySet[Event]) -> None:
        """Validate the selected quarantined events again; route those that now pass (once,
        even with another replay running)."""
        ids = list(queryset.filter(quarantine__isnull=False).values_list("pk", flat=True))
        try:
            released = api.replay_quarantined(ids)
        except ConfigurationError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return
        message = (
            f"{len(released.routed)} released and routed to their vendors; "
            f"{released.still_invalid} still break the plan."
        )
        skipped = queryset.count() - len(ids)
        if skipped:
            message += f" {skipped} not quarantined, left alone."
        complete = not released.still_invalid and not skipped
        self.message_user(request, message, messages.SUCCESS if complete else messages.WARNING)

    def plan_view(self, request: HttpRequest) -> HttpResponse:
        """Each declared event with its description, properties, volume over the last 7
        days, violations and last time seen; the quarantined events with their violations.
        Needs the view permission."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        compiled = get_config().plan
        context = {
            **self.admin_site.each_context(request),
            "title": "Tracking plan",
            "opts": self.opts,
            "plan": compiled.plan if compiled else None,
        }
        if compiled is not None:
            plan = compiled.plan
            seen = coverage.coverage(plan, PLAN_PAGE_DAYS)
            by_name = {row.name: row for row in seen.events}
            context |= {
                "days": PLAN_PAGE_DAYS,
                "events": [
                    {
                        "event": event,
                        "rows": list(render.rows(event, plan)),
                        "seen": by_name[event.name],
                    }
                    for event in plan
                ],
                "undeclared": [row for row in seen.events if not row.declared],
                "quarantined": [
                    (event, _violations_text(event))
                    for event in quarantine.quarantined().only(
                        "id", "name", "created_at", "violations", "quarantine"
                    )[:QUARANTINE_SHOWN]
                ],
                "quarantined_total": quarantine.quarantined().count(),
                "quarantined_url": reverse("admin:django_eventtrack_event_changelist")
                + "?plan=quarantined",
            }
        return TemplateResponse(request, "admin/django_eventtrack/plan.html", context)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Event]:
        return super().get_queryset(request).prefetch_related("deliveries")

    @admin.display(description="consent")
    def consent(self, event: Event) -> str:
        """The purposes the visitor had granted when it was tracked (the routes' and the
        deliveries' skip reasons say which vendor that left out)."""
        return consent_label(event.identity)

    @admin.display(description="deliveries")
    def deliveries_column(self, event: Event) -> str:
        statuses = sorted(event.delivery_statuses().items())
        return ", ".join(f"{vendor}: {status}" for vendor, status in statuses) or "-"


#: The plan page's window, in days, and how many quarantined events it lists.
PLAN_PAGE_DAYS = 7
QUARANTINE_SHOWN = 50


class RetryFailedForm(forms.Form):
    """The dashboard's "retry the failed deliveries of this vendor since ..."."""

    vendor = forms.ChoiceField(choices=lambda: [(name, name) for name in get_config().adapters])
    since = forms.DateTimeField(
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        help_text="deliveries that failed at or after this time",
    )


@admin.register(Delivery)
class DeliveryAdmin(DeliveryColumnsMixin, ReadOnlyAdminMixin, DeliveryAdminBase):
    # Seven columns fit a laptop's list beside the filters with the reason readable; the
    # delivery's id and times are on its page (and created_at is a filter).
    list_display = (
        "event_name",
        "vendor",
        "status",
        "attempts",
        "last_answer",
        "reason",
        "next_attempt",
    )
    list_display_links = ("event_name",)
    list_filter = (VendorFilter, "status", "created_at", "next_attempt_at")
    list_select_related = ("event",)
    #: The real list comes from the registry (:meth:`get_search_fields`).
    search_fields = ("=event__id",)
    fields = (
        "event",
        "vendor",
        "status",
        "attempts",
        "last_answer",
        "last_error",
        "changed_to_fit",
        "next_attempt",
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

    class Media:
        css = {"all": ["django_eventtrack/admin.css"]}

    def get_urls(self) -> list[URLPattern]:
        """The dashboard, before the model's own URLs (whose last one takes any path)."""
        view = self.admin_site.admin_view
        return [
            path("dashboard/", view(self.dashboard_view), name="eventtrack_dashboard"),
            path("dashboard/retry/", view(self.retry_failed_view), name="eventtrack_retry_failed"),
            *super().get_urls(),
        ]

    def has_manage_permission(self, request: HttpRequest) -> bool:
        """The actions need the change permission, although no form edits a delivery."""
        codename = get_permission_codename("change", self.opts)
        return request.user.has_perm(f"{self.opts.app_label}.{codename}")

    def get_search_fields(self, request: HttpRequest) -> tuple[str, ...]:
        return _event_search_fields("event__")

    @admin.display(description="event", ordering="event__name")
    def event_name(self, delivery: Delivery) -> str:
        return delivery.event.name

    @admin.display(description="changed to fit the vendor")
    def changed_to_fit(self, delivery: Delivery) -> SafeString | str:
        """What the adapter changed to fit the vendor's limits, one line each."""
        if not delivery.adjustments:
            return "-"
        return format_html_join("", "<p>{}</p>", ([line] for line in delivery.adjustments))

    @admin.action(description="Retry now", permissions=["manage"])
    def retry_now(self, request: HttpRequest, queryset: QuerySet[Delivery]) -> None:
        """Due again now, whatever the status; attempts are kept."""
        self.retry(request, queryset)

    def retry(self, request: HttpRequest, deliveries: QuerySet[Delivery]) -> None:
        """Make ``deliveries`` due now (:func:`django_eventtrack.outbox.manual.retry_deliveries`),
        wake the delivery backend for them once that commits, and say what was done."""
        retried = manual.retry_deliveries(deliveries)
        transaction.on_commit(lambda: backends.notify(list(retried.event_ids)))
        message = f"{retried.due} {model_ngettext(self.opts, retried.due)} due now."
        if retried.busy:
            message += f" {retried.busy} being sent right now, left alone."
        if retried.scrubbed:
            message += (
                f" {retried.scrubbed} not retried: their event's properties were scrubbed after "
                "it was sent (SCRUB_DELIVERED / REDACT_KEYS), so resending would send less."
            )
        if retried.private:
            message += (
                f" {retried.private} not retried: skipped for the person's privacy (no consent "
                "for the vendor's purpose, consent withdrawn, or erased)."
            )
        complete = retried.due and not (retried.busy or retried.scrubbed or retried.private)
        self.message_user(request, message, messages.SUCCESS if complete else messages.WARNING)

    @admin.action(description="Mark skipped", permissions=["manage"])
    def mark_skipped(self, request: HttpRequest, queryset: QuerySet[Delivery]) -> None:
        """Stop trying; delivered rows and sends in flight are left alone (see
        :func:`~django_eventtrack.outbox.manual.mark_skipped`)."""
        reason = f"skipped by {request.user.get_username()} in admin"
        done = manual.mark_skipped(queryset, reason)
        message = f"{done.skipped} {model_ngettext(self.opts, done.skipped)} skipped."
        if done.delivered:
            message += f" {done.delivered} already delivered, left alone."
        complete = done.skipped and not done.delivered
        self.message_user(request, message, messages.SUCCESS if complete else messages.WARNING)

    # -- the dashboard --------------------------------------------------------------------

    def dashboard_view(self, request: HttpRequest) -> HttpResponse:
        """Per vendor: the backlog, what finished in the last hour, day and week, a chart
        over the chosen window and the failures by reason. Needs the view permission."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        page = dashboard.context(
            request.GET.get("window"),
            deliveries_url=reverse("admin:django_eventtrack_delivery_changelist"),
            retry_url=reverse("admin:eventtrack_retry_failed"),
        )
        context = {
            **self.admin_site.each_context(request),
            "title": "Delivery dashboard",
            "opts": self.opts,
            **page,
            "retry_form": RetryFailedForm(initial={"since": timezone.localtime(page["since"])}),
            "can_retry": self.has_manage_permission(request),
        }
        return TemplateResponse(request, "admin/django_eventtrack/dashboard.html", context)

    def retry_failed_view(self, request: HttpRequest) -> HttpResponse:
        """GET: how many failed deliveries would be retried, and why they failed; POST (the
        confirmation, with its CSRF token): retry them. Needs the change permission."""
        if not self.has_manage_permission(request):
            raise PermissionDenied
        form = RetryFailedForm(request.POST if request.method == "POST" else request.GET)
        context = {
            **self.admin_site.each_context(request),
            "title": "Retry failed deliveries",
            "opts": self.opts,
            "form": form,
        }
        if not form.is_valid():
            return TemplateResponse(
                request, "admin/django_eventtrack/retry_failed.html", context, status=400
            )
        vendor, since = form.cleaned_data["vendor"], form.cleaned_data["since"]
        failed = manual.failed_since(vendor, since)
        if request.method == "POST":
            self.retry(request, failed)
            return HttpResponseRedirect(reverse("admin:eventtrack_dashboard"))
        context |= {
            "vendor": vendor,
            "since": since,
            "count": failed.count(),
            "reasons": dashboard.failure_reasons(since, vendor=vendor, limit=10),
        }
        return TemplateResponse(request, "admin/django_eventtrack/retry_failed.html", context)


@admin.register(VendorProfile)
class VendorProfileAdmin(ReadOnlyAdminMixin, VendorProfileAdminBase):
    """Profile ids vendors returned for our users (Hellotext), kept by ``identify()``."""

    list_display = ("user_id", "vendor", "profile_id", "created_at")
    list_filter = ("vendor",)
    search_fields = ("user_id", "profile_id")
    fields = list_display
    readonly_fields = fields


@admin.register(VendorSession)
class VendorSessionAdmin(ReadOnlyAdminMixin, VendorSessionAdminBase):
    """Whose browser session is whose, as the vendor said (Hellotext's ``identity_assigned``):
    a session listed here is left out of other profiles' events."""

    list_display = ("session_id", "vendor", "profile_id", "created_at")
    list_filter = ("vendor",)
    search_fields = ("=session_id", "=profile_id")
    fields = list_display
    readonly_fields = fields


@admin.register(VendorPause)
class VendorPauseAdmin(DeletableAdminMixin, VendorPauseAdminBase):
    """Vendors nobody sends to until a time (a 429's ``Retry-After``, an open circuit).

    Read-only but for deleting: a deleted pause ends it, and every process sends to the
    vendor again at its next round (with the ``delete`` permission).
    """

    list_display = ("vendor", "paused_until", "reason", "updated_at")
    fields = list_display
    readonly_fields = fields


def consent_label(identity: Any) -> str:
    """An event's stored consent, in words."""
    if not isinstance(identity, dict) or not identity:
        return "-"
    if identity.get("opted_out"):
        return "none (opted out)"
    granted = identity.get("consent")
    if granted is None:
        return "every purpose"
    return ", ".join(granted) or "none"


@admin.register(PrivacySubject)
class PrivacySubjectAdmin(ReadOnlyAdminMixin, PrivacySubjectAdminBase):
    """Who asked what, under one of their ids, hashed: the ids themselves are not kept."""

    list_display = ("id_key", "digest", "forgotten_at", "withdrawn", "updated_at")
    list_filter = ("id_key",)
    fields = list_display
    readonly_fields = fields
    show_full_result_count = False


class ErasureTaskInline(ReadOnlyAdminMixin, ErasureTaskInlineBase):
    model = ErasureTask
    fields = ("vendor", "status", "due_at", "instructions", "done_at", "done_by")
    readonly_fields = fields
    extra = 0
    show_change_link = True


@admin.register(ErasureRequest)
class ErasureRequestAdmin(ReadOnlyAdminMixin, ErasureRequestAdminBase):
    """Each ``forget()``: what it did here, and its tasks at the vendors."""

    list_display = (
        "created_at",
        "id_keys",
        "source",
        "events_scrubbed",
        "deliveries_skipped",
        "profiles_deleted",
        "tasks_column",
    )
    fields = list_display[:-1]
    readonly_fields = fields
    inlines = (ErasureTaskInline,)

    def get_queryset(self, request: HttpRequest) -> QuerySet[ErasureRequest]:
        return super().get_queryset(request).prefetch_related("tasks")

    @admin.display(description="vendor tasks")
    def tasks_column(self, request: ErasureRequest) -> str:
        return ", ".join(f"{task.vendor}: {task.status}" for task in request.tasks.all()) or "-"


@admin.register(ErasureTask)
class ErasureTaskAdmin(ReadOnlyAdminMixin, ErasureTaskAdminBase):
    """What staff must delete at each vendor, due a month after the request; "Mark done"
    once done (it empties the instructions: the vendor's ids are no longer needed)."""

    list_display = ("vendor", "status", "due", "instructions", "request", "done_at", "done_by")
    list_filter = ("status", "vendor", "due_at")
    fields = ("request", "vendor", "status", "due_at", "instructions", "done_at", "done_by")
    readonly_fields = fields
    actions = ("mark_done",)

    def has_manage_permission(self, request: HttpRequest) -> bool:
        codename = get_permission_codename("change", self.opts)
        return request.user.has_perm(f"{self.opts.app_label}.{codename}")

    @admin.display(description="due", ordering="due_at")
    def due(self, task: ErasureTask) -> SafeString | str:
        when = display_for_value(task.due_at, "-")
        if task.status == ErasureTask.Status.TODO and task.due_at < timezone.now():
            return format_html('<strong class="errornote">{} (overdue)</strong>', when)
        return str(when)

    @admin.action(description="Mark done", permissions=["manage"])
    def mark_done(self, request: HttpRequest, queryset: QuerySet[ErasureTask]) -> None:
        done = erasure.mark_done(list(queryset), request.user.get_username())
        message = f"{done.done} {model_ngettext(self.opts, done.done)} marked done."
        if done.already:
            message += f" {done.already} already done, left alone."
        level = messages.SUCCESS if done.done and not done.already else messages.WARNING
        self.message_user(request, message, level)


@admin.register(VendorDroppedName)
class VendorDroppedNameAdmin(DeletableAdminMixin, VendorDroppedNameAdminBase):
    """Event names a vendor was seen to drop (PrimeData: a type without a schema), whose
    later events are skipped with the reason for a day.

    Read-only but for deleting: delete one once the vendor takes the name (its schema
    registered), and every process sends events of that name again at its next claim.
    """

    list_display = ("name", "vendor", "reason", "learned_at")
    list_filter = ("vendor",)
    fields = list_display
    readonly_fields = fields

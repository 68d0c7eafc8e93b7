"""The numbers and the chart of the admin's delivery dashboard: :func:`context` is the
page's data, which the admin view renders.

Every figure is aggregated by the database, in a fixed number of queries
whatever the outbox holds: the backlog and what became final in the last hour,
day and week (:func:`django_eventtrack.monitoring.status.overview`), deliveries and
failures over time (:func:`timeline`, grouped by truncated time) and failures by reason
(:func:`failure_reasons`). The chart is an inline SVG drawn here, so the page
needs no script, no CDN and no network.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.db.models import Count, Max
from django.db.models.functions import TruncHour, TruncMinute
from django.utils import timezone
from django.utils.dateformat import format as format_date
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from django_eventtrack.models import Delivery
from django_eventtrack.monitoring import incidents, status


@dataclass(frozen=True)
class Period:
    """A span of time the dashboard looks back over, and how its chart is cut."""

    label: str
    length: timedelta
    #: Width of one bar of the chart...
    step: timedelta
    #: ...in words.
    step_label: str
    #: How the database truncates a time before grouping (finer than ``step``).
    trunc: type[TruncMinute] | type[TruncHour]
    #: How the chart labels a bar's start (Django's date format).
    time_format: str


WINDOWS: dict[str, Period] = {
    "hour": Period(
        "last hour", timedelta(hours=1), timedelta(minutes=5), "5 minutes", TruncMinute, "H:i"
    ),
    "day": Period("last day", timedelta(days=1), timedelta(hours=1), "hour", TruncHour, "H:i"),
    "week": Period(
        "last week", timedelta(days=7), timedelta(hours=6), "6 hours", TruncHour, "D H:i"
    ),
}
DEFAULT_WINDOW = "day"
QUANTILES = {"p50": 0.5, "p95": 0.95}


@dataclass(frozen=True)
class Timeline:
    """Deliveries and failures per bar of a window's chart, per vendor."""

    window: Period
    #: The start of each bar, oldest first; the last one holds ``now``.
    starts: list[datetime]
    delivered: dict[str, list[int]]
    failed: dict[str, list[int]]

    def counts(self, vendor: str) -> tuple[list[int], list[int]]:
        zeros = [0] * len(self.starts)
        return self.delivered.get(vendor, zeros), self.failed.get(vendor, zeros)


def timeline(window: Period, now: datetime | None = None) -> Timeline:
    """Deliveries that became delivered or failed in ``window`` before ``now``, per vendor
    and bar, in one query (grouped by the time truncated to the minute or hour, then
    added up per bar). Bars start on whole steps, so the first is partly outside the
    window; only rows inside it are counted, as in :func:`overview`."""
    now = now or timezone.now()
    since = now - window.length
    first = _floor(since, window.step)
    bars = (_floor(now, window.step) - first) // window.step + 1
    rows = (
        Delivery.objects.filter(
            status__in=(Delivery.Status.DELIVERED, Delivery.Status.FAILED), updated_at__gte=since
        )
        .order_by()
        .annotate(at=window.trunc("updated_at", tzinfo=UTC if settings.USE_TZ else None))
        .values("vendor", "status", "at")
        .annotate(count=Count("pk"))
    )
    series: dict[str, dict[str, list[int]]] = {
        Delivery.Status.DELIVERED: {},
        Delivery.Status.FAILED: {},
    }
    for row in rows:
        index = min((row["at"] - first) // window.step, bars - 1)
        series[row["status"]].setdefault(row["vendor"], [0] * bars)[index] += row["count"]
    starts = [first + index * window.step for index in range(bars)]
    return Timeline(
        window, starts, series[Delivery.Status.DELIVERED], series[Delivery.Status.FAILED]
    )


def context(
    window_name: str | None,
    *,
    deliveries_url: str,
    retry_url: str,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The dashboard's template variables for the window called ``window_name`` (the day's
    when it names none of :data:`WINDOWS`), in seven queries.

    ``vendors``: per vendor its :class:`~.status.VendorOverview`, its numbers per window,
    its chart, its ongoing incident (why it is retrying, in its own words) and a link to
    ``retry_url`` (the retry form) for its failures in the window; ``incidents``: the
    open ones and those seen in the window, each with its advice
    (:class:`~.incidents.IncidentView`); ``reasons``: each :class:`FailureReason` with a
    link to ``deliveries_url`` (the deliveries list) filtered to exactly those deliveries.
    """
    now = now or timezone.now()
    if window_name not in WINDOWS:
        window_name = DEFAULT_WINDOW
    window = WINDOWS[window_name]
    since = now - window.length
    overviews = status.overview({name: w.length for name, w in WINDOWS.items()}, now)
    bars = timeline(window, now)
    seen = incidents.recent(since, now)
    ongoing = incidents.latest_open(seen)
    return {
        "windows": WINDOWS,
        "window_name": window_name,
        "window": window,
        "since": since,
        "incidents": seen,
        "vendors": [
            {
                "overview": row,
                "oldest_pending": _age(row.backlog.oldest_pending_seconds),
                "windows": [
                    {"label": WINDOWS[name].label, **window_cells(stats)}
                    for name, stats in row.finished.items()
                ],
                "chart": chart(bars, row.vendor),
                "incident": ongoing.get(row.vendor),
                "charted": [sum(counts) for counts in bars.counts(row.vendor)],
                "retry_url": _link(
                    retry_url, vendor=row.vendor, since=timezone.localtime(since).isoformat()
                ),
            }
            for row in overviews
        ],
        "reasons": [
            (
                failure,
                _link(
                    deliveries_url,
                    vendor=failure.vendor,
                    status=Delivery.Status.FAILED,
                    last_error=failure.reason,
                    updated_at__gte=since.isoformat(),
                ),
            )
            for failure in failure_reasons(since)
        ],
    }


def _age(seconds: float | None) -> str:
    return "-" if seconds is None else status.format_duration(seconds)


def _link(url: str, **query: str) -> str:
    return f"{url}?{urlencode(query)}"


def _floor(moment: datetime, step: timedelta) -> datetime:
    """``moment`` rounded down to a whole number of ``step`` since the epoch (UTC)."""
    epoch = moment.replace(year=1970, month=1, day=1, hour=0, minute=0, second=0, microsecond=0)
    return moment - (moment - epoch) % step


@dataclass(frozen=True)
class FailureReason:
    """Failed deliveries of one vendor sharing one stored reason."""

    vendor: str
    reason: str
    count: int
    latest: datetime


def failure_reasons(
    since: datetime, vendor: str | None = None, limit: int = 20
) -> list[FailureReason]:
    """The most frequent reasons among deliveries that failed since ``since`` (one query)."""
    failed = Delivery.objects.filter(status=Delivery.Status.FAILED, updated_at__gte=since)
    if vendor is not None:
        failed = failed.filter(vendor=vendor)
    rows = (
        failed.order_by()
        .values("vendor", "last_error")
        .annotate(count=Count("pk"), latest=Max("updated_at"))
        .order_by("-count", "vendor", "last_error")[:limit]
    )
    return [
        FailureReason(row["vendor"], row["last_error"], row["count"], row["latest"]) for row in rows
    ]


def window_cells(finished: status.Finished) -> dict[str, int | str]:
    """One window's numbers as the dashboard's table shows them."""
    rate = finished.retry_rate
    return {
        "delivered": finished.delivered,
        "failed": finished.failed,
        "skipped": finished.skipped,
        "retry_rate": "-" if rate is None else f"{rate:.1%}",
        **{name: _latency(finished.latency_quantile(q)) for name, q in QUANTILES.items()},
    }


def _latency(bound: float | None) -> str:
    """A percentile as its histogram bucket tells it: at most the bucket's bound."""
    if bound is None:
        return "-"
    if bound == math.inf:
        return f"> {status.format_duration(status.LATENCY_BUCKETS[-1])}"
    if bound < 1:
        return f"≤ {bound * 1000:.0f} ms"
    return f"≤ {bound:g} s" if bound < 60 else f"≤ {status.format_duration(bound)}"


# -- the chart ------------------------------------------------------------------------------

WIDTH, HEIGHT = 420, 150
LEFT, RIGHT, TOP, BOTTOM = 40, 8, 10, 22


def chart(timeline: Timeline, vendor: str) -> SafeString:
    """A bar chart (SVG) of ``vendor``'s deliveries per bar of the timeline: delivered in
    green, failed stacked above in red, each bar titled with its numbers."""
    window, starts = timeline.window, timeline.starts
    delivered, failed = timeline.counts(vendor)
    top = _nice_ceiling(max((d + f for d, f in zip(delivered, failed, strict=True)), default=0))
    plot_width, plot_height = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_width / len(starts)

    def y(value: float) -> float:
        return TOP + plot_height * (1 - value / top)

    bars = []
    for index, (start, ok, bad) in enumerate(zip(starts, delivered, failed, strict=True)):
        x = LEFT + index * slot + slot * 0.1
        title = (
            f"{_when(start, window)} to {_when(start + window.step, window)}: "
            f"{ok} delivered, {bad} failed"
        )
        bars.append(
            format_html(
                '<g class="bar"><title>{}</title>'
                '<rect class="delivered" x="{}" y="{}" width="{}" height="{}"></rect>'
                '<rect class="failed" x="{}" y="{}" width="{}" height="{}"></rect></g>',
                title,
                _number(x),
                _number(y(ok)),
                _number(slot * 0.8),
                _number(y(0) - y(ok)),
                _number(x),
                _number(y(ok + bad)),
                _number(slot * 0.8),
                _number(y(ok) - y(ok + bad)),
            )
        )
    grid = format_html_join(
        "",
        '<line class="grid" x1="{}" x2="{}" y1="{}" y2="{}"></line>'
        '<text class="axis" x="{}" y="{}" text-anchor="end">{}</text>',
        (
            (LEFT, WIDTH - RIGHT, _number(y(v)), _number(y(v)), LEFT - 4, _number(y(v) + 4), v)
            for v in (0, top // 2, top)
        ),
    )
    ticks = format_html_join(
        "",
        '<text class="axis" x="{}" y="{}" text-anchor="{}">{}</text>',
        (
            (
                _number(LEFT + (index + shift) * slot),
                HEIGHT - 6,
                anchor,
                _when(starts[index], window),
            )
            for index, shift, anchor in (
                (0, 0, "start"),
                (len(starts) // 2, 0.5, "middle"),
                (len(starts) - 1, 1, "end"),
            )
        ),
    )
    total_delivered, total_failed = sum(delivered), sum(failed)
    return format_html(
        '<svg class="eventtrack-chart" viewBox="0 0 {} {}" role="img" aria-label="{}">{}{}{}</svg>',
        WIDTH,
        HEIGHT,
        f"{vendor}: {total_delivered} delivered and {total_failed} failed in the {window.label}",
        grid,
        SafeString("".join(bars)),
        ticks,
    )


def _nice_ceiling(value: int) -> int:
    """The smallest of 2, 4, 10, 20, 40, 100, ... at least ``value``: an even axis top."""
    ceiling = 2
    while ceiling < value:
        ceiling = ceiling * 5 // 2 if str(ceiling).startswith("4") else ceiling * 2
    return ceiling


def _when(moment: datetime, window: Period) -> str:
    local = timezone.localtime(moment) if settings.USE_TZ else moment
    return format_date(local, window.time_format)


def _number(value: float) -> str:
    return f"{value:.1f}"

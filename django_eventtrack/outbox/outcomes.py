"""Recording what the vendors answered: delivered, retried later, or final."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import random
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

from django.db import router
from django.db.models import F
from django.utils import timezone

from django_eventtrack import signals
from django_eventtrack.conf import DeliveryOptions, VendorConfig
from django_eventtrack.models import Delivery
from django_eventtrack.outbox import incidents
from django_eventtrack.outbox.group_commit import sender_write, write_together
from django_eventtrack.outbox.leases import Claim, lock_in_key_order, release, update
from django_eventtrack.outbox.retention import scrub_finished
from django_eventtrack.vendors import Outcome, OutcomeKind
from django_eventtrack.vendors.base import Reshaped

logger = logging.getLogger("django_eventtrack.outbox")


@dataclass(frozen=True)
class Result:
    """What became of one request's deliveries (several requests' with the same
    outcome); ``outcome`` None: not sent, to be given back."""

    claim: Claim
    deliveries: Sequence[Delivery]
    outcome: Outcome | None
    vendor: VendorConfig


def record_results(results: Sequence[Result], options: DeliveryOptions) -> None:
    """Write ``results`` in one transaction, whatever their vendors and outcomes, then
    tell the signal listeners.

    One commit for every request that finished meanwhile, instead of one per vendor
    and outcome: the senders' writes are what competes with ``track()`` for the
    database (on SQLite for its one write lock), so they are as few as the answers
    allow. The rows are locked by primary key first, as every writer of a claim's
    rows locks them (:mod:`.leases`). The listeners hear of outcomes only once they
    are committed, and never while the transaction holds the database.
    """
    with _announcing_after():
        write_together(router.db_for_write(Delivery), partial(_write_results, results, options))


def together(results: Sequence[Result]) -> list[Result]:
    """``results`` with those of one claim and vendor whose outcomes differ only in what was
    changed per event merged: one UPDATE for their outcome, however many events had
    something changed (the second user of a shared browser's, each event its own)."""
    merged: dict[tuple[uuid.UUID, str, Outcome], Result] = {}
    given_back = [result for result in results if result.outcome is None]
    for result in results:
        if result.outcome is None:
            continue
        plain = dataclasses.replace(result.outcome, adjustments=())
        key = (result.claim.token, result.vendor.name, plain)
        known = merged.setdefault(key, result)
        if known is not result and known.outcome is not None:
            outcome = known.outcome.adjusted(dict(result.outcome.adjustments))
            deliveries = [*known.deliveries, *result.deliveries]
            merged[key] = Result(known.claim, deliveries, outcome, known.vendor)
    return [*given_back, *merged.values()]


def _write_results(results: Sequence[Result], options: DeliveryOptions) -> int:
    # Several statements: their rows' locks first, all of them, in the one order.
    lock_in_key_order([delivery for result in results for delivery in result.deliveries])
    results = together(results)
    for result in results:
        if result.outcome is None:
            release(result.claim, result.deliveries)
            continue
        record_adjustments(result.claim, result.deliveries, dict(result.outcome.adjustments))
        record_outcome(result.claim, result.deliveries, result.outcome, result.vendor, options)
    incidents.record(
        (
            incidents.Answer(result.vendor.name, result.outcome, len(result.deliveries))
            for result in results
            if result.outcome is not None
        ),
        timezone.now(),
    )
    return len(results)


def record_outcome(
    claim: Claim,
    deliveries: Sequence[Delivery],
    outcome: Outcome,
    config: VendorConfig,
    options: DeliveryOptions,
    *,
    attempted: bool = True,
) -> None:
    """Write ``outcome`` for ``deliveries`` (one request's worth) and tell listeners.

    Updates are conditional on the claim token: a sender whose lease ran out
    and whose rows another sender took over cannot overwrite that sender's result.
    ``attempted=False`` records a verdict reached without sending (no attempt counted).
    """
    now = timezone.now()
    if outcome.kind is OutcomeKind.RETRY:
        for delivery in deliveries:
            _reschedule(claim, delivery, outcome, config, options, now)
        scrub_finished(d.event_id for d in deliveries if d.status == Delivery.Status.FAILED)
        return
    status = Delivery.Status.DELIVERED if outcome.ok else Delivery.Status.FAILED
    if outcome.kind is OutcomeKind.SKIPPED:
        status = Delivery.Status.SKIPPED
    counted = int(attempted and outcome.kind is not OutcomeKind.SKIPPED)
    update(
        claim,
        deliveries,
        status=status,
        attempts=F("attempts") + counted,
        last_status=outcome.http_status,
        last_error=outcome.message,
        delivered_at=now if outcome.ok else None,
    )
    for delivery in deliveries:
        _refresh(delivery, status, outcome, now, counted)
        _announce(delivery, outcome)
    scrub_finished(delivery.event_id for delivery in deliveries)


def _reschedule(
    claim: Claim,
    delivery: Delivery,
    outcome: Outcome,
    config: VendorConfig,
    options: DeliveryOptions,
    now: datetime,
) -> None:
    # Refused credentials are no attempt of the event's: its deliveries wait, paused.
    attempts = delivery.attempts + (0 if outcome.credentials_refused else 1)
    age = (now - delivery.created_at).total_seconds()
    give_up = None
    if attempts >= config.max_attempts:
        give_up = f"gave up after {attempts} attempts"
    elif age >= config.max_age:
        give_up = f"gave up: not delivered within MAX_AGE ({config.max_age:g}s)"
    if give_up:
        message = f"{give_up}; last: {outcome.message}" if outcome.message else give_up
        failed = Outcome(OutcomeKind.FAILED, outcome.http_status, message)
        update(
            claim,
            [delivery],
            status=Delivery.Status.FAILED,
            attempts=attempts,
            last_status=outcome.http_status,
            last_error=message,
        )
        _refresh(delivery, Delivery.Status.FAILED, failed, now)
        _announce(delivery, failed)
        return
    wait = max(backoff(attempts, options), outcome.retry_after or 0.0)
    if outcome.credentials_refused:
        wait = 0.0  # due again when the vendor's pause ends
    update(
        claim,
        [delivery],
        attempts=attempts,
        next_attempt_at=now + timedelta(seconds=wait),
        last_status=outcome.http_status,
        last_error=outcome.message,
    )
    delivery.attempts = attempts
    delivery.last_error = outcome.message
    logger.info(
        "event=%s vendor=%s attempt=%d status=%s: retrying in %.1fs",
        delivery.event_id,
        delivery.vendor,
        attempts,
        outcome.http_status,
        wait,
    )


def backoff(attempts: int, options: DeliveryOptions) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(cap, base * 2**(n-1))].

    Jitter spreads a burst of failed deliveries so they do not all come back at
    the same instant and knock the recovering vendor over again.
    """
    ceiling = min(options.retry_backoff_max, options.retry_backoff_base * math.pow(2, attempts - 1))
    return random.uniform(0, ceiling)  # noqa: S311 - jitter, not cryptography


def _refresh(
    delivery: Delivery, status: str, outcome: Outcome, now: datetime, counted: int = 1
) -> None:
    delivery.status = status
    delivery.attempts += counted
    delivery.last_status = outcome.http_status
    delivery.last_error = outcome.message
    if outcome.ok:
        delivery.delivered_at = now


#: Per thread, the signals held back by :func:`_announcing_after` (None: send at once).
_held_back = threading.local()


@contextlib.contextmanager
def _announcing_after() -> Iterator[None]:
    """Hold back the signals :func:`record_outcome` sends inside the block; send them once the
    block succeeded, and none if it failed (its outcomes were not written)."""
    held: list[tuple[Delivery, Outcome]] = []
    _held_back.signals = held
    try:
        yield
    finally:
        _held_back.signals = None
    for delivery, outcome in held:
        _announce(delivery, outcome)


def _announce(delivery: Delivery, outcome: Outcome) -> None:
    held: list[tuple[Delivery, Outcome]] | None = getattr(_held_back, "signals", None)
    if held is not None:
        held.append((delivery, outcome))
        return
    if outcome.kind is OutcomeKind.FAILED:
        _log_final_failure(delivery, outcome)
    signal = signals.delivery_succeeded if outcome.ok else signals.delivery_failed
    if outcome.kind is OutcomeKind.SKIPPED or not signal.has_listeners(Delivery):
        return
    for receiver, result in signal.send_robust(sender=Delivery, delivery=delivery, outcome=outcome):
        if isinstance(result, Exception):
            logger.error(
                "event=%s vendor=%s: signal receiver %r raised %r",
                delivery.event_id,
                delivery.vendor,
                receiver,
                result,
            )


def _log_final_failure(delivery: Delivery, outcome: Outcome) -> None:
    """WARNING, once per delivery, when it is written: nothing retries it any more, so
    someone must look. The reason is the stored one (credentials already redacted)."""
    name = delivery.event.name if Delivery.event.is_cached(delivery) else None
    logger.warning(
        "event=%s name=%s vendor=%s status=%s: failed for good: %s",
        delivery.event_id,
        name or "?",
        delivery.vendor,
        outcome.http_status,
        outcome.message or "(no reason given)",
    )


def record_adjustments(
    claim: Claim, deliveries: Sequence[Delivery], adjustments: Mapping[str, Sequence[str]]
) -> None:
    """Keep on each delivery what its request changed to fit the vendor
    (``adjustments``: event id -> lines), and log it: at WARNING when the vendor gets
    less than was tracked, at INFO when every value is there in another form
    (:class:`~django_eventtrack.vendors.base.Reshaped`); once per delivery, since a
    retry that changes the same things writes and logs nothing."""
    changed: dict[tuple[str, ...], list[Delivery]] = {}
    for delivery in deliveries:
        lines = list(adjustments.get(str(delivery.event_id), ()))
        if lines != delivery.adjustments:
            changed.setdefault(tuple(lines), []).append(delivery)
    for lines_changed, rows_changed in changed.items():  # one UPDATE per set of lines
        rows = Delivery.objects.filter(pk__in=[d.pk for d in rows_changed], claim_token=claim.token)
        update = partial(rows.update, adjustments=list(lines_changed))
        sender_write(router.db_for_write(Delivery), update)
    for delivery in (delivery for group in changed.values() for delivery in group):
        lines = list(adjustments.get(str(delivery.event_id), ()))
        delivery.adjustments = lines
        if lines:
            lossless = all(isinstance(line, Reshaped) for line in lines)
            logger.log(
                logging.INFO if lossless else logging.WARNING,
                "event=%s vendor=%s: changed to fit the vendor: %s",
                delivery.event_id,
                delivery.vendor,
                "; ".join(lines),
            )

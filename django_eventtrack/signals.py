"""Signals sent as events are tracked and as deliveries finish, for metrics, alerting,
test coverage or follow-up work.

``event_tracked`` is sent by ``track()`` and ``identify()`` once the event is stored
(in the caller's transaction, which may still roll back), with ``sender=TrackedEvent``
and keyword arguments ``event`` (the :class:`~django_eventtrack.core.event.TrackedEvent`)
and ``violations`` (how it broke the tracking plan: empty when it followed it).

Both are sent with ``sender=Delivery`` and keyword arguments ``delivery`` (the
:class:`~django_eventtrack.models.Delivery`, already updated) and ``outcome``
(an :class:`~django_eventtrack.vendors.Outcome`). They are sent from whatever
process delivers (a web process, the worker, a Celery task), outside any
transaction; a receiver that raises is logged and does not affect delivery.
"""

from __future__ import annotations

from django.dispatch import Signal

#: track() or identify() stored an event (see the module docstring).
event_tracked = Signal()
#: A vendor accepted the event.
delivery_succeeded = Signal()
#: A delivery failed for good: a permanent refusal, or retries exhausted.
delivery_failed = Signal()

"""Signals sent as deliveries finish, for metrics, alerting or follow-up work.

Both are sent with ``sender=Delivery`` and keyword arguments ``delivery`` (the
:class:`~django_eventtrack.models.Delivery`, already updated) and ``outcome``
(an :class:`~django_eventtrack.vendors.Outcome`). They are sent from whatever
process delivers (a web process, the worker, a Celery task), outside any
transaction; a receiver that raises is logged and does not affect delivery.
"""

from __future__ import annotations

from django.dispatch import Signal

#: A vendor accepted the event.
delivery_succeeded = Signal()
#: A delivery failed for good: a permanent refusal, or retries exhausted.
delivery_failed = Signal()

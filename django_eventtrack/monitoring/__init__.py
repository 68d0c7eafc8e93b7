"""The operator's view: outbox status and health, the admin dashboard, Prometheus metrics.

Everything here reads; what changes rows (retention, the admin's retry and skip) is in
:mod:`django_eventtrack.outbox`.
"""

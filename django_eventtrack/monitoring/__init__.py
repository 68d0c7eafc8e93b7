"""The operator's view: outbox status and health, the admin dashboard, Prometheus metrics."""

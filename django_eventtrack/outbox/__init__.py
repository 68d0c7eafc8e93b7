"""The outbox in the database: an event and its routes written in the caller's
transaction (:mod:`.inserts`, routed by :mod:`.routing`), its deliveries written
(:mod:`.fanout`) and claimed by a sender (:mod:`.leases`), answered
(:mod:`.outcomes`), retried or skipped by hand (:mod:`.manual`), scrubbed once final
and purged after the retention period (:mod:`.retention`), vendors paused for every
process (:mod:`.pausing`) and the vendors' own ids for our users (:mod:`.vendor_profiles`).
Every write to the outbox's tables is in this package; the operator's view
(:mod:`django_eventtrack.monitoring`) only reads them.

Everything here is database work and nothing here talks HTTP, so a caller's
transaction never waits on a vendor, and a sender never holds a transaction open
while it waits on one. On SQLite a process's sender writes share transactions
(:mod:`.group_commit`).
"""

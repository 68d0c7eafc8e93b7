"""On PostgreSQL, the privacy check ``track()`` makes in the statement that stores an event,
as a function (:mod:`django_eventtrack.outbox.inserts`): a PL/pgSQL function's query is
planned once per session, where the same check as a subquery was planned with every
INSERT. ``STABLE``: it reads the calling statement's snapshot, as the subquery did.
Nothing on other databases."""

from typing import Any

from django.db import migrations

# As django_eventtrack.outbox.inserts names it (kept here: a migration does not change
# with the code).
FORWARDS = """
CREATE FUNCTION eventtrack_privacy_state(digests text[]) RETURNS boolean LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN EXISTS (SELECT 1 FROM eventtrack_privacy_subject WHERE digest = ANY(digests));
END
$$
"""
BACKWARDS = "DROP FUNCTION IF EXISTS eventtrack_privacy_state(text[])"


def on_postgresql(statement: str) -> Any:
    def run(apps: Any, schema_editor: Any) -> None:
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(statement)

    return run


class Migration(migrations.Migration):
    dependencies = [
        ("django_eventtrack", "0010_identity_per_person_and_refused_credentials"),
    ]

    operations = [
        migrations.RunPython(on_postgresql(FORWARDS), on_postgresql(BACKWARDS), elidable=False),
    ]

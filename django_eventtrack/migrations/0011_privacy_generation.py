"""On PostgreSQL, a generation of the privacy subjects: a sequence that every write to
them advances in the writing transaction, under an advisory lock held until it ends
(:mod:`django_eventtrack.outbox.known_subjects`). Nothing on other databases."""

from typing import Any

from django.db import migrations

# As django_eventtrack.outbox.known_subjects names them (kept here: a migration does not
# change with the code).
GENERATION = "eventtrack_privacy_generation"
LOCK = 7311142570157175393
CHANGED = "eventtrack.privacy_changed"
TABLE = "eventtrack_privacy_subject"
FUNCTION = "eventtrack_privacy_changed"

FORWARDS = [
    f"CREATE SEQUENCE {GENERATION}",
    f"SELECT nextval('{GENERATION}')",
    f"""
    CREATE FUNCTION {FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_advisory_xact_lock({LOCK});
        PERFORM set_config('{CHANGED}', 'on', true);
        PERFORM nextval('{GENERATION}');
        RETURN NULL;
    END
    $$
    """,
    f"""
    CREATE TRIGGER {FUNCTION} AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {TABLE}
    FOR EACH STATEMENT EXECUTE FUNCTION {FUNCTION}()
    """,
]
BACKWARDS = [
    f"DROP TRIGGER IF EXISTS {FUNCTION} ON {TABLE}",
    f"DROP FUNCTION IF EXISTS {FUNCTION}()",
    f"DROP SEQUENCE IF EXISTS {GENERATION}",
]


def on_postgresql(statements: list[str]) -> Any:
    def run(apps: Any, schema_editor: Any) -> None:
        if schema_editor.connection.vendor == "postgresql":
            for statement in statements:
                schema_editor.execute(statement)

    return run


class Migration(migrations.Migration):
    dependencies = [
        ("django_eventtrack", "0010_identity_per_person_and_refused_credentials"),
    ]

    operations = [
        migrations.RunPython(on_postgresql(FORWARDS), on_postgresql(BACKWARDS), elidable=False),
    ]

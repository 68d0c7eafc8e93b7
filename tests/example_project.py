"""Running the example project's ``manage.py`` as a user would: a subprocess with a clean
environment (no ``EVENTTRACK_*`` or settings module of the test run) and its own database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

MANAGE = Path(__file__).resolve().parent.parent / "example_project" / "manage.py"


def environment(database: Path, **variables: str) -> dict[str, str]:
    """This process's environment without its django-eventtrack and Django settings, with
    the example project's ``DATABASE_URL`` pointing at the SQLite file ``database``."""
    clean = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("EVENTTRACK_", "DJANGO_SETTINGS_MODULE"))
    }
    return clean | {"DATABASE_URL": f"sqlite:///{database}"} | variables


def manage(
    *args: str, env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``python example_project/manage.py ARGS``, to completion, its output captured."""
    return subprocess.run(  # noqa: S603 - our own manage.py
        [sys.executable, str(MANAGE), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )

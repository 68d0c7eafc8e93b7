"""Each optional extra, installed from this working tree into a fresh virtualenv, gives
what it promises: ``[celery]`` a Celery whose Redis transport loads, ``[postgres]`` a
working psycopg, ``[tasks]`` the Tasks framework. Needs pip to reach a package index.

One virtualenv serves every extra (installing Celery's dependencies is most of the
time): each extra is checked right after it is installed, and the first one checked
is ``[celery]``, the one that once shipped broken, on a bare install.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: What a source checkout may hold besides the source.
NOT_SOURCE = (".git", ".tox", ".venv", "build", "dist", "*.egg-info", "__pycache__", "*.sqlite3")

#: What each extra promises, as a script that fails (non-zero) when it is not so.
PROMISES = {
    # kombu's Redis transport imports redis and packaging when a connection uses it.
    "celery": (
        "import celery, kombu\n"
        "transport = kombu.Connection('redis://127.0.0.1:1/0').transport\n"
        "assert type(transport).__module__ == 'kombu.transport.redis', transport\n"
    ),
    "postgres": "import psycopg\nassert psycopg.pq.version() > 0\n",
    "tasks": (
        "try:\n"
        "    from django.tasks import task\n"
        "except ImportError:\n"
        "    from django_tasks import task\n"
    ),
}


def run(*command: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - a virtualenv of our own making
        [str(part) for part in command],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.mark.integration
@pytest.mark.slow
def test_every_extra_installs_what_it_promises(tmp_path: Path) -> None:
    # Built from a copy: a build leaves build/ behind, which the next build would reuse.
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*NOT_SOURCE))
    environment = tmp_path / "venv"
    venv.create(environment, with_pip=True)
    python = environment / "bin" / "python"

    def install(requirement: str) -> None:
        result = run(python, "-m", "pip", "install", "--quiet", requirement)
        assert result.returncode == 0, result.stderr

    install(str(source))
    bare = run(python, "-c", PROMISES["celery"])
    assert bare.returncode != 0  # the base install has no Celery: the extra must bring it
    for extra, promise in PROMISES.items():
        install(f"{source}[{extra}]")
        kept = run(python, "-c", promise)
        assert kept.returncode == 0, f"[{extra}]: {kept.stderr}"
    imported = run(python, "-c", "import django_eventtrack; print(django_eventtrack.__version__)")
    assert (
        imported.stdout.strip()
        == run(
            sys.executable, "-c", "import django_eventtrack; print(django_eventtrack.__version__)"
        ).stdout.strip()
    )

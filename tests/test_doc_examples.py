"""Every shell and Python example in the README and the docs runs as printed, against the
vendor sandbox started as docs/sandbox.md says, in a scratch copy of the example project.

The blocks are found mechanically: each fenced ``sh`` and ``python`` block of README.md and
docs/**/*.md is one test. A block that cannot run here says so in the page itself, on the
line before its fence: ``<!-- example: not run: REASON -->`` (installing from PyPI, cloning,
a server that runs until stopped, the test suite itself); it is reported as skipped with that
reason, never left out silently.

- The example project runs without its tracking plan (the pages' events are anyone's),
  except for docs/plan.md's examples, which are about it.
- A shell block runs in bash (``set -e``) in the project's directory, with the sandbox's
  ``EVENTTRACK_*`` variables exported and the test run's Python first on ``PATH``.
- A Python block runs in the project's ``manage.py shell`` (Django set up, the sandbox
  configured), in a namespace holding the example's settings module (``BASE_DIR``, ``env``,
  ``EVENTTRACK``...), since most blocks are what a settings module or a views module holds.
  Every name its functions use must be defined by then too: a view that calls
  ``authenticate`` without importing it fails here, not when someone copies it.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.example_project import MANAGE, environment
from tests.processes.helpers import free_port, wait_until

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"^```(\S*)(?:\s.*)?$")
NOT_RUN = re.compile(r"^<!-- example: not run: (.+) -->$")
LANGUAGES = ("sh", "python")
#: The pages' examples are about any project: they run without the example shop's own
#: tracking plan, except the tracking plan's page.
WITHOUT_PLAN = {"EVENTTRACK_PLAN": ""}


@dataclass(frozen=True)
class Example:
    page: Path
    line: int
    language: str
    code: str
    #: Why it does not run here (the page's marker), or None.
    not_run: str | None

    @property
    def id(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def examples() -> list[Example]:
    found = []
    for page in PAGES:
        lines = page.read_text().splitlines()
        index = 0
        while index < len(lines):
            opened = FENCE.match(lines[index])
            if not opened:
                index += 1
                continue
            end = next(i for i in range(index + 1, len(lines)) if lines[i].startswith("```"))
            if opened[1] in LANGUAGES:
                before = [line for line in lines[:index] if line.strip()][-1:]
                marker = NOT_RUN.match(before[0]) if before else None
                code = "\n".join(lines[index + 1 : end]) + "\n"
                found.append(
                    Example(page, index + 1, opened[1], code, marker[1] if marker else None)
                )
            index = end + 1
    return found


EXAMPLES = examples()


@dataclass(frozen=True)
class Project:
    directory: Path
    env: dict[str, str]


def sandbox_command() -> list[str]:
    """docs/sandbox.md's command, as printed, on a free port (tests run side by side)."""
    (block,) = [e for e in EXAMPLES if e.page.name == "sandbox.md" and e.language == "sh"]
    words = shlex.split(block.code.replace("\\\n", " "))  # as a shell reads it: quotes too
    assert words[:3] == ["python", "-m", "django_eventtrack.sandbox"], words
    port = words.index("--port") + 1
    words[port] = str(free_port())
    return [sys.executable, *words[1:]]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    """A scratch copy of the example project, migrated, pointed at a sandbox started as
    docs/sandbox.md says."""
    base = tmp_path_factory.mktemp("docs")
    directory = base / "example_project"
    shutil.copytree(MANAGE.parent, directory, ignore=shutil.ignore_patterns("*.sqlite3*", ".env"))
    log = base / "sandbox.log"
    with log.open("w") as sink:
        sandbox = subprocess.Popen(  # noqa: S603 - our own sandbox, as docs/sandbox.md runs it
            sandbox_command(), stdout=sink, stderr=subprocess.STDOUT, text=True
        )
    try:
        wait_until(
            lambda: "export " in log.read_text() or sandbox.poll() is not None, 30, "sandbox"
        )
        exported = dict(
            line.removeprefix("export ").split("=", 1)
            for line in log.read_text().splitlines()
            if line.startswith("export ")
        )
        assert exported, log.read_text()
        env = environment(base / "shop.sqlite3", **exported)
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        env["PYTHONPATH"] = str(directory)
        migrated = subprocess.run(
            [sys.executable, "manage.py", "migrate", "-v0"],
            cwd=directory,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert migrated.returncode == 0, migrated.stderr
        yield Project(directory, env)
    finally:
        sandbox.terminate()
        sandbox.wait(10)


#: Run in the example project's shell: the block in its settings' namespace, then every
#: global name its functions use looked up (symtable: the names a function reads that no
#: scope of the block binds).
PYTHON_RUNNER = """
import builtins, symtable, sys
import config.settings as settings_module
code = sys.stdin.read()
namespace = dict(vars(settings_module))
exec(compile(code, "<example>", "exec"), namespace)
def free(table):
    for child in table.get_children():
        for symbol in child.get_symbols():
            if symbol.is_global() and symbol.is_referenced():
                yield symbol.get_name()
        yield from free(child)
missing = sorted(
    {name for name in free(symtable.symtable(code, "<example>", "exec"))}
    - set(namespace) - set(dir(builtins))
)
if missing:
    sys.exit(f"names used but never defined or imported: {', '.join(missing)}")
"""


def run(example: Example, project: Project) -> subprocess.CompletedProcess[str]:
    env = project.env if example.page.name == "plan.md" else project.env | WITHOUT_PLAN
    if example.language == "sh":
        command = ["bash", "-e", "-c", example.code]  # bash from PATH, as a reader runs it
        given = None
    else:
        command = [sys.executable, "manage.py", "shell", "-c", PYTHON_RUNNER]
        given = example.code
    return subprocess.run(  # noqa: S603 - the docs' own examples
        command,
        cwd=project.directory,
        env=env,
        input=given,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.id for e in EXAMPLES])
def test_the_example_runs_as_printed(example: Example, project: Project) -> None:
    if example.not_run is not None:
        pytest.skip(f"{example.id} is marked not run: {example.not_run}")
    result = run(example, project)
    assert result.returncode == 0, f"{example.id}\n{example.code}\n{result.stdout}{result.stderr}"


def test_the_readmes_first_send_event_exits_0_with_every_vendor_delivered(
    project: Project,
) -> None:
    (first,) = [e for e in EXAMPLES if e.page.name == "README.md" and "send_event" in e.code][:1]
    lines = first.code.splitlines()
    # The block up to its first send_event (the lines before it set its variables).
    command = "\n".join(
        lines[: next(i for i, line in enumerate(lines) if "send_event" in line) + 1]
    )
    result = subprocess.run(  # noqa: S603 - the README's own example
        ["bash", "-e", "-c", command],  # noqa: S607 - bash from PATH, as a reader runs it
        cwd=project.directory,
        env=project.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines() == readme_output_after(first)
    assert [line for line in result.stdout.splitlines() if not line.startswith(" ")] == [
        f"{vendor}: delivered (HTTP 200)"
        for vendor in ("hellotext", "hackle", "browsee", "primedata")
    ]


def readme_output_after(example: Example) -> list[str]:
    """The lines of the README's first plain (output) block after ``example``'s block."""
    text = example.page.read_text()
    after = text[text.index(example.code) + len(example.code) :].split("```\n", 1)[1]
    match = re.search(r"^```\n(.*?)^```", after, re.M | re.S)
    assert match, "the README shows no output after its first send_event example"
    return match.group(1).splitlines()


def test_every_marker_says_why() -> None:
    """A marker with an empty reason would skip a block without saying why."""
    assert all(e.not_run is None or len(e.not_run.split()) >= 3 for e in EXAMPLES)

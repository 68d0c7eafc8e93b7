"""The example project's ``manage.py demo``, end to end in a subprocess, as a user runs it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.example_project import environment, manage

ROOT = Path(__file__).resolve().parent.parent
#: The pages that show the demo's report, in a code block that starts with its first vendor.
SHOWN_IN = (ROOT / "README.md", ROOT / "docs" / "quickstart.md")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def normalised(text: str) -> list[str]:
    """``text``'s lines with each id replaced by its rank among the ids (``<id1>``...), so
    the same journey reads the same whatever ids a run drew."""
    ranks: dict[str, str] = {}
    for found in UUID.findall(text):
        ranks.setdefault(found, f"<id{len(ranks) + 1}>")
    return UUID.sub(lambda match: ranks[match[0]], text).splitlines()


def shown_report(page: Path) -> str:
    """The demo's report as ``page`` shows it: its code block starting ``hellotext (``, up
    to a closing ``...`` if it shows only the start."""
    (block,) = re.findall(r"```\n(hellotext \(.*?)```", page.read_text(), re.S)
    return block.removesuffix("...\n")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> subprocess.CompletedProcess[str]:
    database = tmp_path_factory.mktemp("demo") / "shop.sqlite3"
    return manage("demo", env=environment(database))


@pytest.mark.slow
@pytest.mark.parametrize("page", SHOWN_IN, ids=lambda page: page.name)
def test_the_docs_show_what_the_demo_prints(
    demo: subprocess.CompletedProcess[str], page: Path
) -> None:
    assert demo.returncode == 0, demo.stderr
    assert demo.stderr == ""  # no warning: the checks run with the vendors configured
    report = demo.stdout[demo.stdout.index("\nhellotext (") + 1 :]
    shown = normalised(shown_report(page))
    assert normalised(report)[: len(shown)] == shown


@pytest.mark.slow
def test_demo_attributes_every_event_to_the_landing_session(
    demo: subprocess.CompletedProcess[str],
) -> None:
    result = demo
    assert result.returncode == 0, result.stderr
    output = result.stdout
    session = re.search(r"hello_session=([0-9a-f-]{36})", output)
    assert session is not None
    for vendor in ("hellotext", "hackle", "browsee", "primedata"):
        assert f"\n{vendor} (" in output
    lines = [line for line in output.splitlines() if line.startswith(("  200  ", "  201  "))]
    tracked = [line for line in lines if "identify" not in line]
    assert len(tracked) == 16  # 4 events x 4 vendors, all accepted
    assert all(f"={session.group(1)}*" in line for line in tracked)
    shipped = [line for line in tracked if "order.shipped" in line]
    assert len(shipped) == 4  # sent outside any request, still the visitor's session
    # Signing in identified the visitor to every vendor (Hellotext: profile, then session;
    # PrimeData: the browser's session and the customer's server session)...
    identified = [line for line in lines if "identify" in line]
    assert len(identified) == 6
    profile = re.search(r"identify \(session\) +session=[^,]+\*, profile=(\w+)", output)
    assert profile is not None
    # ...and the order shipped the next day carries the customer's Hellotext profile.
    (hellotext_shipped,) = [line for line in shipped if "profile=" in line]
    assert f"profile={profile.group(1)}," in hellotext_shipped
    assert "'pending': 0, 'delivered': 20, 'failed': 0" in output
    # Every event followed the shop's tracking plan (under DEBUG a violation would raise).
    assert (
        "Tracking plan tracking_plan.json: 4 events declared; 0 tracked this run broke it."
        in output
    )

"""The example project's ``manage.py demo``, end to end in a subprocess, as a user runs it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.example_project import environment, manage


@pytest.mark.slow
def test_demo_attributes_every_event_to_the_landing_session(tmp_path: Path) -> None:
    result = manage("demo", env=environment(tmp_path / "shop.sqlite3"))
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

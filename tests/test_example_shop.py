"""The example shop behaves like a shop: sign-up, sign-out (the next shopper is someone
else), Global Privacy Control, the consent banner and "Forget me" honoured, a favicon.

It runs the example project's own settings in a subprocess, as ``manage.py`` would,
with Django's test client (the real browser journey is tests/integration/test_browser.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from django_eventtrack.sandbox import Sandbox
from django_eventtrack.vendors import BUILT_IN
from tests.example_project import MANAGE, environment, manage

JOURNEY = """
import json
from django.test import Client
from django_eventtrack.models import Event
from shop.seed import seed

seed()
browser = Client()
report = {"favicon": browser.get("/favicon.ico")["Location"]}
browser.get("/?hello_session=S-first")
browser.post("/sign-in/", {"username": "ada", "password": "demo-only-password"})
browser.post("/cart/add/TEE-1/")
first = browser.cookies["eventtrack_aid"].value
signed_out = browser.post("/sign-out/")
report["sign_out"] = [signed_out.status_code, signed_out.cookies["eventtrack_aid"]["max-age"]]
report["after_sign_out"] = "Sign in" in browser.get("/").content.decode()
form = {"username": "grace", "email": "grace@example.com"}
form |= {"password1": "a-long-pass-phrase-1", "password2": "a-long-pass-phrase-1"}
report["sign_up"] = browser.post("/sign-up/", form).status_code
signed_in = 'Signed in as <a href="/account/">grace</a>'
report["signed_up_as"] = signed_in in browser.get("/").content.decode()
browser.post("/cart/add/MUG-1/")
second = browser.cookies["eventtrack_aid"].value
report["new_visitor"] = bool(second) and second != first
carts = Event.objects.filter(name="cart.added").order_by("created_at")
report["carts"] = [
    [e.identity.get("session"), e.identity.get("anonymous_id") == aid]
    for e, aid in zip(carts, [first, second])
]

gpc = Client(headers={"sec-gpc": "1"})
gpc.post("/cart/add/TEE-1/")
declined = Client()
declined.post("/privacy/", {"next": "/cart/"})  # the banner saved with nothing ticked
declined.post("/cart/add/MUG-1/")
# No worker runs: each event waits with its routes (each vendor's skip reason).
report["opted_out"] = sorted(
    {reason for e in Event.objects.filter(identity__opted_out=True) for reason in e.routes.values()}
)
report["opted_out_events"] = Event.objects.filter(identity__opted_out=True).count()
report["cookies_for_opted_out"] = [  # a deleted cookie stays in the jar, empty
    getattr(jar.get("eventtrack_aid"), "value", "") for jar in (gpc.cookies, declined.cookies)
]

analytics = Client()
analytics.post("/privacy/", {"purpose": "analytics", "next": "/"})
report["banner"] = 'value="analytics" checked' in analytics.get("/").content.decode()
analytics.post("/cart/add/TEE-1/")
chosen = Event.objects.filter(identity__consent=["analytics"]).get()
report["analytics_only"] = sorted(reason or "sent" for reason in chosen.routes.values())

browser.post("/cart/add/TEE-1/")  # grace, signed in
from django.contrib.auth.models import User
def of(name):
    return Event.objects.filter(identity__user_id=str(User.objects.get(username=name).pk))
grace = list(of("grace").values_list("pk", flat=True))
report["account"] = "Forget me" in browser.get("/account/").content.decode()
forgotten = browser.post("/account/forget-me/")
report["forgotten"] = [forgotten.status_code, "We have forgotten you" in forgotten.content.decode()]
report["grace_events"] = sorted(
    {json.dumps([e.properties, e.identity]) for e in Event.objects.filter(pk__in=grace)}
)
report["grace_count"] = len(grace)
report["ada_kept"] = all(e.properties for e in of("ada").filter(name="cart.added"))
wrong = Client().post("/sign-in/", {"username": "ada", "password": "not-hers"})
report["wrong_password"] = [wrong.status_code, wrong.content.decode()]
report["gpc_footer"] = gpc.get("/").content.decode().split("<footer>")[1]
report["declined_footer"] = declined.get("/").content.decode().split("<footer>")[1]
scrape = Client().get("/eventtrack/metrics")
report["metrics"] = [scrape.status_code, scrape.content.decode()]
report["metrics"].append("eventtrack_aid" in scrape.cookies)
print(json.dumps(report))
"""


@pytest.mark.slow
def test_the_example_shop_signs_up_signs_out_and_honours_privacy(tmp_path: Path) -> None:
    # A vendor configured but the worker backend: every delivery is stored, nothing is sent.
    env = environment(
        tmp_path / "shop.sqlite3", EVENTTRACK_DELIVERY="worker", EVENTTRACK_HACKLE_API_KEY="k"
    )
    for command in (["migrate", "-v0"], ["shell", "-c", JOURNEY]):
        result = manage(*command, env=env)
        assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["favicon"] == "/static/shop/favicon.svg"
    assert report["sign_out"] == [302, 0]  # the anonymous id cookie expires
    assert report["after_sign_out"] is True
    assert report["sign_up"] == 302
    assert report["signed_up_as"] is True
    assert report["new_visitor"] is True
    # The first shopper's cart carries the short link's session; the second's does not.
    assert report["carts"] == [["S-first", True], [None, True]]
    assert report["opted_out"] == ["visitor opted out of tracking"]
    assert report["opted_out_events"] == 2  # stored for the audit trail, sent nowhere
    assert report["cookies_for_opted_out"] == ["", ""]
    # The banner's analytics-only choice: Hackle gets the event, the marketing vendor's
    # route (none configured here but Hackle) would say why not.
    assert report["banner"] is True
    assert report["analytics_only"] == ["sent"]
    # "Forget me" on the account page: grace's events are scrubbed, ada's kept.
    assert report["account"] is True
    assert report["forgotten"] == [200, True]
    assert report["grace_events"] == ["[{}, {}]"]
    assert report["grace_count"] >= 3  # identify, two carts
    assert report["ada_kept"] is True
    # A wrong password gets the shop's page, with the form and what went wrong.
    status, page = report["wrong_password"]
    assert status == 200
    assert "<h1>Sign in</h1>" in page
    assert "<!doctype html>" in page
    assert "Wrong username or password." in page
    assert 'name="password"' in page
    # A GPC browser is told why no choice turns tracking on; a visitor who said no has the
    # banner to change their mind.
    assert "it sends Global Privacy Control" in report["gpc_footer"]
    assert "turn that off in your browser" in report["gpc_footer"]
    assert "Save my choices" not in report["gpc_footer"]
    assert "you said no" in report["declined_footer"]
    assert "Save my choices</button>" in report["declined_footer"]
    # The metrics view the monitoring docs describe is routed (not public; no visitor id).
    assert report["metrics"] == [
        403,
        "Forbidden: send Authorization: Bearer <METRICS_TOKEN>.",
        False,
    ]


def test_the_example_project_with_every_vendor_configured_passes_its_checks(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    """What people copy raises no warning of ours: its SQLite options are the ones the
    installation page gives."""
    built_in = {  # the test suite's sandbox also serves its fifth vendor
        name: value
        for name, value in sandbox.env().items()
        if name.split("_")[1].lower() in BUILT_IN or name == "EVENTTRACK_DELIVERY"
    }
    assert len({name.split("_")[1] for name in built_in} - {"DELIVERY"}) == len(BUILT_IN)
    env = environment(tmp_path / "shop.sqlite3", **built_in)
    result = manage("check", env=env)
    assert result.returncode == 0, result.stderr
    # Nothing silenced: its plan says, per event, why it accepts what Hackle and PrimeData
    # do with its objects (JSON strings), so a new event that does not is still warned of.
    assert result.stdout.strip() == "System check identified no issues (0 silenced)."
    settings = (MANAGE.parent / "config" / "settings.py").read_text()
    assert "SILENCED_SYSTEM_CHECKS" not in settings
    assert result.stderr == ""

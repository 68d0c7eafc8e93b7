"""``manage.py send_event``: sends to every vendor, prints one line each, exits honestly."""

from __future__ import annotations

import io
import socket
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone
from pytest_django import Settings

from django_eventtrack import conf
from django_eventtrack.models import Delivery, Event
from django_eventtrack.sandbox import Sandbox
from tests.example_project import environment, manage
from tests.processes.helpers import VENDORS

#: A purchase by Hellotext profile P1 during PrimeData session PD1 (PrimeData ties every
#: event to a session, and a profile is a person, not a visit).
PURCHASE = [
    "product.purchased",
    *("--profile", "P1", "--primedata-session-id", "PD1"),
    *("--property", "product=vxqQJ3Yg"),
]

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _hellotext_knows_the_customer(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    """Profile P1 and product vxqQJ3Yg exist at Hellotext (its catalogue synced with our
    reference and the default source, as PRODUCTS_SYNCED declares), so a bare reference
    finds the product."""
    monkeypatch.setenv("EVENTTRACK_HELLOTEXT_PRODUCTS_SYNCED", "true")
    sandbox.state("hellotext").add_profile("P1")
    sandbox.state("hellotext").add_object(
        "product", reference="vxqQJ3Yg", source="django", name="Tee"
    )


def run(*args: str) -> str:
    """``send_event --sync ARGS`` (``--dry-run`` instead of ``--sync`` when asked)."""
    out = io.StringIO()
    mode = [] if "--dry-run" in args else ["--sync"]
    call_command("send_event", *args, *mode, stdout=out, no_color=True)
    return out.getvalue()


def test_purchase_reaches_every_vendor_as_documented(vendors: Sandbox) -> None:
    output = run(*PURCHASE, "--property", "amount:=89.90", "--property", "currency=USD")
    assert output.splitlines() == [f"{vendor}: delivered (HTTP 200)" for vendor in VENDORS]
    hellotext = vendors.requests("hellotext")[0].body
    assert hellotext is not None
    assert hellotext["action"] == "product.purchased"
    assert hellotext["profile"] == "P1"
    assert hellotext["object_parameters"] == {"source": "django", "reference": "vxqQJ3Yg"}
    assert (hellotext["amount"], hellotext["currency"]) == (89.9, "USD")
    assert hellotext["tracked_at"].endswith("Z")
    assert not {"profile_id", "session_id", "product"} & set(hellotext)

    hackle = vendors.requests("hackle")[0].body
    assert hackle is not None
    assert hackle["event"]["key"] == "product.purchased"
    assert hackle["event"]["properties"]["product"] == "vxqQJ3Yg"
    assert hackle["user"]["identifiers"] == {"anonymousId": "P1"}

    browsee = vendors.requests("browsee")[0].body
    assert browsee is not None
    assert (browsee["event"], browsee["anonymousId"]) == ("product.purchased", "P1")
    assert browsee["properties"]["product"] == "vxqQJ3Yg"
    assert browsee["timestamp"].endswith("Z")

    primedata = vendors.requests("primedata")[0].body
    assert primedata is not None
    [event] = primedata["events"]
    assert event["sessionId"] == "PD1"
    assert event["eventType"] == "product.purchased"
    assert event["scope"] == vendors.vendor_settings()["primedata"]["CLIENT_ID"]
    assert event["target"]["itemId"] == "vxqQJ3Yg"
    assert event["source"] == {"itemId": "_", "itemType": "_", "scope": event["scope"]}


@pytest.mark.parametrize("vendor", VENDORS)
def test_auth_failure_is_permanent_and_exits_non_zero(
    settings: Settings, sandbox: Sandbox, vendor: str
) -> None:
    vendor_settings = sandbox.vendor_settings()
    credential = next(key for key in vendor_settings[vendor] if key != "API_URL")
    vendor_settings[vendor][credential] = "wrong-credential"
    settings.EVENTTRACK = {"VENDORS": vendor_settings}
    out = io.StringIO()
    with pytest.raises(CommandError) as caught:
        call_command("send_event", *PURCHASE, "--sync", stdout=out, no_color=True)
    assert caught.value.returncode == 2
    assert f"1 of {len(VENDORS)} vendors did not accept it" in str(caught.value)
    line = next(line for line in out.getvalue().splitlines() if line.startswith(vendor))
    assert line.startswith(f"{vendor}: failed (HTTP 4")
    assert "wrong-credential" not in out.getvalue()
    assert len(sandbox.requests(vendor)) == 1  # permanent: never retried


def test_vendor_option_limits_targets_and_skip_is_not_success(vendors: Sandbox) -> None:
    assert run(*PURCHASE, "--vendor", "primedata").splitlines() == [
        "primedata: delivered (HTTP 200)"
    ]
    with pytest.raises(CommandError, match="1 of 1 vendors did not accept it"):
        run("product.purchased", "--user-id", "7", "--vendor", "hellotext")
    assert vendors.requests("hellotext") == []


def test_transient_failure_exits_non_zero(vendors: Sandbox) -> None:
    vendors.inject("hackle", status=503, count=1)
    out = io.StringIO()
    with pytest.raises(CommandError):
        call_command(
            "send_event", *PURCHASE, "--vendor", "hackle", "--sync", stdout=out, no_color=True
        )
    assert out.getvalue().startswith("hackle: not delivered yet, will retry (HTTP 503)")
    delivery = Delivery.objects.get(vendor="hackle")
    assert (delivery.status, delivery.attempts) == (Delivery.Status.PENDING, 1)
    assert delivery.next_attempt_at > timezone.now()


@pytest.mark.parametrize("delivery", ["sync", "thread"])
def test_without_flags_an_in_process_backend_reports_each_vendor(
    settings: Settings, sandbox: Sandbox, delivery: str
) -> None:
    settings.EVENTTRACK = {"VENDORS": sandbox.vendor_settings(), "DELIVERY": delivery}
    out = io.StringIO()
    call_command("send_event", *PURCHASE, stdout=out, no_color=True)
    assert out.getvalue().splitlines() == [f"{vendor}: delivered (HTTP 200)" for vendor in VENDORS]
    event = Event.objects.get()
    assert event.identity == {"profile": "P1", "primedata_session_id": "PD1"}
    statuses = dict(event.deliveries.values_list("vendor", "status"))
    assert statuses == dict.fromkeys(VENDORS, "delivered")
    assert len(sandbox.requests()) == len(VENDORS)


def test_without_flags_an_in_process_backend_exits_non_zero_when_a_vendor_refuses(
    settings: Settings, sandbox: Sandbox
) -> None:
    vendor_settings = sandbox.vendor_settings()
    vendor_settings["hackle"]["API_KEY"] = "wrong-credential"
    settings.EVENTTRACK = {"VENDORS": vendor_settings, "DELIVERY": "thread"}
    out = io.StringIO()
    with pytest.raises(CommandError) as caught:
        call_command("send_event", *PURCHASE, stdout=out, no_color=True)
    assert caught.value.returncode == 2
    assert "hackle: failed (HTTP 401)" in out.getvalue()


def test_without_flags_a_queueing_backend_prints_the_event_id_queued(
    settings: Settings, sandbox: Sandbox
) -> None:
    settings.EVENTTRACK = {"VENDORS": sandbox.vendor_settings(), "DELIVERY": "worker"}
    out = io.StringIO()
    call_command("send_event", *PURCHASE, stdout=out, no_color=True)
    event = Event.objects.get()
    assert out.getvalue() == f"{event.id} queued for the 'worker' delivery\n"
    assert event.name == "product.purchased"
    assert sandbox.requests() == []


def test_dry_run_prints_masked_requests_and_never_connects(
    vendors: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_connections(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("--dry-run opened a connection")

    monkeypatch.setattr(socket, "create_connection", no_connections)
    monkeypatch.setattr(socket.socket, "connect", no_connections)
    output = run(*PURCHASE, "--dry-run")
    assert vendors.requests() == []
    assert not Event.objects.exists()
    for vendor, vendor_settings in vendors.vendor_settings().items():
        assert f"# {vendor}\nPOST {vendor_settings['API_URL']}" in output
        for key, value in vendor_settings.items():
            if key != "API_URL" and len(value) >= 4:
                assert value not in output, f"{vendor} {key} leaked into --dry-run"
    assert "Authorization: Bearer ********" in output
    assert "X-HACKLE-API-KEY: ********" in output
    assert '"apiKey": "********"' in output
    assert "X-Client-Access-Token: ********" in output
    assert "User-Agent: django-eventtrack/" in output
    assert '"reference": "vxqQJ3Yg"' in output


def test_what_is_changed_to_fit_is_printed_by_dry_run_and_sync(vendors: Sandbox) -> None:
    args = ["signed.up", "--user-id", "7", "--vendor", "hackle", "--property", "gone:=null"]
    dry = run(*args, "--dry-run")
    assert dry.startswith("# hackle\n# changed to fit: properties: dropped null values: gone\n")
    assert run(*args).splitlines() == [
        "hackle: delivered (HTTP 200)",
        "  changed to fit: properties: dropped null values: gone",
    ]


def test_dry_run_names_the_name_a_nameless_product_needs(
    vendors: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("EVENTTRACK_HELLOTEXT_PRODUCTS_SYNCED")
    conf.reload()
    output = run("product.viewed", "--session", "S1", "--property", "product=TEE-1", "--dry-run")
    assert "# hellotext: skipped: Hellotext's product.viewed: the product 'TEE-1' has no name" in (
        output
    )
    assert "give the event a 'name' property" in output


def test_dry_run_shows_skips(vendors: Sandbox) -> None:
    output = run("signed.up", "--user-id", "7", "--dry-run", "--vendor", "hellotext")
    assert output.startswith("# hellotext: skipped: Hellotext needs a profile or session")


def test_timestamp_and_json_properties(vendors: Sandbox) -> None:
    an_hour_ago = (timezone.now() - timedelta(hours=1)).replace(microsecond=0)
    run(
        *PURCHASE,
        "--properties",
        '{"amount": 10, "tags": ["a"]}',
        "--timestamp",
        an_hour_ago.astimezone(timezone.get_fixed_timezone(120)).isoformat(),
        "--vendor",
        "browsee",
    )
    body = vendors.requests("browsee")[0].body
    assert body is not None
    assert body["timestamp"] == an_hour_ago.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    assert body["properties"] == {"amount": 10, "tags": ["a"], "product": "vxqQJ3Yg"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--properties", "{not json"], "--properties is not valid JSON"),
        (["--properties", "[1, 2]"], "--properties must be a JSON object"),
        (["--property", "novalue"], "--property 'novalue' is not KEY=VALUE"),
        (["--property", "n:=nope"], "the value after := is not valid JSON"),
        (["--vendor", "mixpanel"], "unknown vendor mixpanel"),
        (["--timestamp", "2026-11-23T10:00:00"], "has no timezone"),
        (["--timestamp", "yesterday"], "is not ISO-8601"),
        (["--session", "bad value"], "identity.session must be"),
    ],
)
def test_bad_input_is_a_clear_error(vendors: Sandbox, args: list[str], message: str) -> None:
    with pytest.raises(CommandError) as caught:
        run(*PURCHASE, *args)
    assert message in str(caught.value)
    assert caught.value.returncode == 1
    assert vendors.requests() == []


@pytest.mark.parametrize("depth", [2_000, 100_000])
@pytest.mark.parametrize("flag", ["--properties", "--property"])
def test_json_nested_thousands_of_levels_deep_is_a_clear_error(
    vendors: Sandbox, flag: str, depth: int
) -> None:
    deep = '{"a": ' * depth + "1" + "}" * depth
    with pytest.raises(CommandError) as caught:
        run(*PURCHASE, flag, deep if flag == "--properties" else f"doc:={deep}")
    message = str(caught.value)
    assert "nested too deeply to read" in message or "nested deeper than 8 levels" in message
    assert len(message) < 300
    assert caught.value.returncode == 1
    assert vendors.requests() == []


def test_bad_event_name(vendors: Sandbox) -> None:
    with pytest.raises(CommandError, match="may only contain"):
        run("product purchased", "--profile", "P1")


def test_no_active_vendor(settings: Settings) -> None:
    settings.EVENTTRACK = {}
    with pytest.raises(CommandError, match="no vendor is configured"):
        run(*PURCHASE)


def test_inactive_vendor_named_explicitly(settings: Settings, sandbox: Sandbox) -> None:
    settings.EVENTTRACK = {"VENDORS": {"hackle": sandbox.vendor_settings()["hackle"]}}
    with pytest.raises(CommandError) as caught:
        run(*PURCHASE, "--vendor", "browsee")
    assert "Browsee is not configured" in str(caught.value)
    assert "EVENTTRACK_BROWSEE_API_KEY" in str(caught.value)


def test_configuration_from_environment_only(
    settings: Settings, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django_eventtrack import conf

    settings.EVENTTRACK = {}
    for name, value in sandbox.env().items():
        monkeypatch.setenv(name, value)
    conf.reload()
    assert len(run(*PURCHASE).splitlines()) == len(VENDORS)
    assert len(sandbox.requests()) == len(VENDORS)


def test_secrets_from_the_environment_reach_the_vendors_literally(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key django-environ would have expanded ($HOME) or that carries backslashes,
    quotes and spaces authenticates as set."""
    from django_eventtrack import conf

    secrets = {"hackle": {"API_KEY": r"""$HOME \"q' s"""}, "browsee": {"API_KEY": r"$X\y 'z'"}}
    settings.EVENTTRACK = {"DELIVERY": "sync"}
    with Sandbox(credentials=secrets) as sandbox:
        for name, value in sandbox.env().items():
            if name.startswith(("EVENTTRACK_HACKLE_", "EVENTTRACK_BROWSEE_")):
                monkeypatch.setenv(name, value)
        conf.reload()
        out = io.StringIO()
        call_command("send_event", *PURCHASE, "--sync", stdout=out, no_color=True)
    assert out.getvalue().splitlines() == [
        "hackle: delivered (HTTP 200)",
        "browsee: delivered (HTTP 200)",
    ]


def test_a_broken_setting_is_a_check_error_not_a_traceback(tmp_path: Path) -> None:
    """The options come from the settings, which Django reads before it catches a
    command's errors: the command reports the setting as the system checks do."""
    env = environment(tmp_path / "shop.sqlite3", EVENTTRACK_BATCH_SIZE="lots")
    result = manage("send_event", *PURCHASE, env=env)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "(eventtrack.E001)" in result.stderr
    assert "EVENTTRACK_BATCH_SIZE" in result.stderr
    assert "'lots'" in result.stderr

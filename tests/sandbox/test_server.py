"""The vendor sandbox, exercised over real loopback HTTP as the library and the demo use it:
every vendor's documented success and refusals, routing, legacy modes, recording, faults,
the control API and the Python API. Each vendor's own rules are tested in
``tests/vendors/test_<vendor>.py``."""

from __future__ import annotations

import json
import logging
import threading
import time
from http.client import HTTPConnection

import pytest
import requests

from django_eventtrack.sandbox import Sandbox
from django_eventtrack.sandbox.hellotext import HELLOTEXT
from tests.sandbox.helpers import (
    ACCESS_TOKEN,
    AUTH_HEADERS,
    BROWSEE_KEY,
    CLIENT_ID,
    HACKLE_KEY,
    MISSING,
    NOW,
    PATHS,
    TOKEN,
    VALID_BODIES,
    browsee_event,
    hackle_event,
    hellotext_event,
    primedata_batch,
    primedata_event,
)

# --- success ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("vendor", "status", "answer"),
    [
        ("hellotext", 200, {"status": "received"}),
        ("hackle", 200, {}),
        ("browsee", 200, {"status": "success"}),
        ("primedata", 200, {"processedEvents": 1, "profileId": None}),
    ],
)
def test_valid_request_gets_documented_success(sandbox, send, vendor, status, answer):
    sandbox.state("primedata").register("purchase")  # its body's type
    response = send(vendor, VALID_BODIES[vendor])

    assert (response.status_code, response.json()) == (status, answer)
    assert response.headers["Content-Type"] == "application/json"


@pytest.mark.parametrize(
    ("vendor", "body"),
    [
        ("hellotext", hellotext_event(tracked_at=1786104000)),
        ("hellotext", hellotext_event(tracked_at="2026-08-07T12:30:00+02:00")),
        ("hellotext", hellotext_event(profile=MISSING, session="SESSION")),
        (
            "hellotext",
            {
                "action": "order.placed",
                "session": "S",
                "profile": "PROFILE_ID",
                "object_parameters": {"reference": "O-1", "source": "shop"},
            },
        ),
        ("hellotext", {"action": "subscribed", "profile": "PROFILE_ID"}),
        (
            "hellotext",
            hellotext_event(amount=89.9, currency="USD", metadata={"a": 1}, object_type="product"),
        ),
        ("hellotext", {"action": "page.viewed", "session": "S", "url": "https://x.test/"}),
        ("hackle", hackle_event(user={"deviceId": "d"})),
        ("hackle", hackle_event(user={"identifiers": {"sessionId": "s"}, "properties": {"a": 1}})),
        ("hackle", hackle_event(event={"key": "k", "properties": {"tags": ["a", 1, 2.5]}})),
        ("browsee", browsee_event(userId=MISSING, anonymousId="anon")),
        ("browsee", browsee_event(timestamp="2021-12-02T00:30:08.276Z", properties={"p": 1})),
        ("primedata", primedata_batch(primedata_event(sessionId="s", sendAt=NOW))),
        ("primedata", {"events": [primedata_event(sessionId="s")]}),
        ("primedata", {"events": [primedata_event(eventType="SaveEntity")]}),
    ],
)
def test_documented_variants_are_accepted(send, vendor, body):
    response = send(vendor, body)

    assert response.status_code == 200, response.text


# --- authentication ---------------------------------------------------------------------------

HELLOTEXT_401 = {"errors": [{"type": "unauthorized", "message": "Invalid or missing token"}]}
HACKLE_401 = {"message": "Unauthorized"}
BROWSEE_BAD_KEY = {"status": "failure", "message": "Invalid apiKey"}
PRIMEDATA_401 = {"error": {"message": "client: unauthorized"}}


@pytest.mark.parametrize(
    ("vendor", "headers", "body", "status", "answer"),
    [
        ("hellotext", {}, hellotext_event(), 401, HELLOTEXT_401),
        ("hellotext", {"Authorization": "Bearer wrong"}, hellotext_event(), 401, HELLOTEXT_401),
        ("hellotext", {"Authorization": TOKEN}, hellotext_event(), 401, HELLOTEXT_401),
        ("hackle", {}, hackle_event(), 401, HACKLE_401),
        ("hackle", {"X-HACKLE-API-KEY": "wrong"}, hackle_event(), 401, HACKLE_401),
        ("browsee", {}, browsee_event(apiKey="wrong"), 400, BROWSEE_BAD_KEY),
        ("browsee", {}, {"event": "E", "userId": "u"}, 400, BROWSEE_BAD_KEY),
        ("primedata", {}, primedata_batch(), 401, PRIMEDATA_401),
        ("primedata", {"X-Client-ID": CLIENT_ID}, primedata_batch(), 401, PRIMEDATA_401),
        (
            "primedata",
            {"X-Client-ID": "other", "X-Client-Access-Token": ACCESS_TOKEN},
            primedata_batch(),
            401,
            PRIMEDATA_401,
        ),
    ],
)
def test_bad_credentials_get_documented_answer(send, vendor, headers, body, status, answer):
    response = send(vendor, body, headers=headers)

    assert (response.status_code, response.json()) == (status, answer)


def test_header_names_are_case_insensitive(send):
    headers = {"x-client-id": CLIENT_ID, "X-CLIENT-ACCESS-TOKEN": ACCESS_TOKEN}

    assert send("primedata", primedata_batch(), headers=headers).status_code == 200


def test_credentials_can_be_overridden():
    with (
        Sandbox(credentials={"hackle": {"API_KEY": "mine"}}) as sandbox,
        requests.Session() as client,
    ):
        url = sandbox.api_url("hackle") + PATHS["hackle"]
        mine = client.post(
            url, json=hackle_event(), headers={"X-HACKLE-API-KEY": "mine"}, timeout=2
        )
        default = client.post(url, json=hackle_event(), headers=AUTH_HEADERS["hackle"], timeout=2)

        assert (mine.status_code, default.status_code) == (200, 401)
        assert sandbox.vendor_settings()["hackle"]["API_KEY"] == "mine"
        assert sandbox.credentials["hellotext"] == HELLOTEXT.credentials


# --- malformed bodies -------------------------------------------------------------------------


@pytest.mark.parametrize("vendor", PATHS)
@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        ("{not json", "application/json"),
        ("[1, 2]", "application/json"),
        ('{"a": NaN}', "application/json"),
        ('{"a": 1}', "text/plain"),
        ('{"a": 1}', None),
    ],
)
def test_malformed_body_is_400(sandbox, client, vendor, data, content_type):
    headers = dict(AUTH_HEADERS[vendor])
    if content_type:
        headers["Content-Type"] = content_type
    url = sandbox.api_url(vendor) + PATHS[vendor]

    response = client.post(url, data=data.encode(), headers=headers, timeout=2)

    assert response.status_code == 400
    assert response.json()


def test_content_type_with_charset_is_fine(sandbox, client):
    headers = {**AUTH_HEADERS["hackle"], "Content-Type": "application/json; charset=utf-8"}
    url = sandbox.api_url("hackle") + PATHS["hackle"]

    response = client.post(url, data=json.dumps(hackle_event()), headers=headers, timeout=2)

    assert response.status_code == 200


# --- what the vendors remember, across a reset ---------------------------------------------------


def test_reset_keeps_the_constructors_custom_actions_and_schemas():
    with Sandbox(
        options={
            "hellotext": {"actions": ["appointment.booked"]},
            "primedata": {"aliases": ["purchase"]},
        }
    ) as box:
        box.state("hellotext").add_action("visit.made")
        box.state("primedata").register("refund")
        box.reset()
        assert box.state("hellotext").custom_actions == {"appointment.booked"}
        assert box.state("primedata").registered == frozenset({"purchase"})


# --- routing ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/", "/nowhere", "/hackle/v2/track", "/hellotext/v1/track/events", "/primedata"]
)
def test_unknown_path_is_404(sandbox, client, path):
    response = client.post(sandbox.url + path, json={}, timeout=2)

    assert (response.status_code, response.json()) == (404, {"error": "not found"})


def test_wrong_method_is_405(sandbox, client):
    response = client.get(sandbox.api_url("hackle") + "/v1/track", timeout=2)

    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"


def test_keep_alive_serves_many_requests_on_one_connection(sandbox):
    connection = HTTPConnection("127.0.0.1", sandbox.port, timeout=2)
    body = json.dumps(hackle_event())
    headers = {**AUTH_HEADERS["hackle"], "Content-Type": "application/json"}
    try:
        for _ in range(3):
            connection.request("POST", "/hackle/v1/track", body=body, headers=headers)
            response = connection.getresponse()
            assert (response.status, response.read()) == (200, b"{}")
            assert response.getheader("Content-Length") == "2"
    finally:
        connection.close()


def test_chunked_body_is_refused_cleanly(sandbox, client):
    url = sandbox.api_url("hackle") + PATHS["hackle"]

    response = client.post(url, data=iter([b"{}"]), headers=AUTH_HEADERS["hackle"], timeout=2)

    assert response.status_code == 411


# --- legacy modes -----------------------------------------------------------------------------


def test_legacy_modes_answer_the_old_documented_success(sandbox, send):
    sandbox.set_legacy("hellotext")
    sandbox.set_legacy("primedata", True)

    hellotext = send("hellotext", hellotext_event())
    primedata = send("primedata", primedata_batch())

    assert (hellotext.status_code, hellotext.json()) == (201, {"state": "ok"})
    assert (primedata.status_code, primedata.json()) == (200, {"updated": 0})


def test_legacy_mode_still_validates(sandbox, send):
    sandbox.set_legacy("hellotext")

    assert send("hellotext", {"profile": "P"}).status_code == 422


def test_legacy_mode_can_be_switched_off_and_reset_restores_constructor_modes(send, sandbox):
    sandbox.set_legacy("hellotext")
    sandbox.set_legacy("hellotext", False)
    assert send("hellotext", hellotext_event()).status_code == 200

    with Sandbox(legacy=["hellotext"]) as legacy_sandbox:
        legacy_sandbox.set_legacy("hellotext", False)
        legacy_sandbox.reset()
        assert legacy_sandbox.legacy == {"hellotext"}


def test_unknown_vendor_is_refused():
    with pytest.raises(ValueError, match="unknown vendor"):
        Sandbox(legacy=["mixpanel"])


# --- recording --------------------------------------------------------------------------------


def test_every_vendor_request_is_recorded_with_what_was_answered(sandbox, send):
    send("hackle", hackle_event())
    send("hackle", {"event": {"key": "k"}})
    send("hellotext", hellotext_event(), headers={})

    first, second, third = sandbox.requests()
    assert (first.vendor, first.method, first.path) == ("hackle", "POST", "/hackle/v1/track")
    assert first.headers["x-hackle-api-key"] == HACKLE_KEY
    assert first.body == hackle_event()
    assert json.loads(first.raw) == hackle_event()
    assert (first.status, first.accepted, first.faulted) == (200, True, False)
    assert (second.status, second.accepted) == (400, False)
    assert (third.vendor, third.status) == ("hellotext", 401)
    assert first.received_at <= second.received_at <= time.time()
    assert [record.vendor for record in sandbox.requests("hackle")] == ["hackle", "hackle"]


def test_events_flattens_primedata_batches_and_skips_rejected(sandbox, send):
    send("primedata", primedata_batch(primedata_event(eventType="a"), primedata_event()))
    send("primedata", primedata_batch(primedata_event(eventType="c")))
    send("primedata", primedata_batch(primedata_event(eventType="")))

    assert [event["eventType"] for event in sandbox.events("primedata")] == ["a", "purchase", "c"]
    assert [record.event_count for record in sandbox.requests("primedata")] == [2, 1, 1]


def test_records_are_capped(client):
    with Sandbox(max_records=2) as sandbox:
        url = sandbox.api_url("hackle") + PATHS["hackle"]
        for index in range(3):
            event = hackle_event(event={"key": f"k{index}"})
            client.post(url, json=event, headers=AUTH_HEADERS["hackle"], timeout=2)

        assert [event["event"]["key"] for event in sandbox.events("hackle")] == ["k1", "k2"]
        assert sandbox.dropped == 1
        assert len(sandbox.wait_for(2, vendor="hackle", timeout=0.1)) == 2


def test_wait_for_returns_once_requests_arrive(sandbox, send):
    sender = threading.Thread(target=lambda: [send("browsee", browsee_event()) for _ in range(2)])
    sender.start()

    records = sandbox.wait_for(2, vendor="browsee", timeout=2)

    sender.join(2)
    assert [record.status for record in records] == [200, 200]


def test_wait_for_times_out_with_a_clear_message(sandbox, send):
    send("hackle", hackle_event())
    started = time.monotonic()

    with pytest.raises(TimeoutError, match=r"1 request\(s\) to browsee, got 0.*hackle"):
        sandbox.wait_for(1, vendor="browsee", timeout=0.1)

    assert time.monotonic() - started < 1


# --- faults -----------------------------------------------------------------------------------


def test_status_fault_applies_to_next_count_requests_then_normal(sandbox, send):
    sandbox.inject("hackle", status=503, count=2)

    statuses = [send("hackle", hackle_event()).status_code for _ in range(3)]

    assert statuses == [503, 503, 200]
    assert [record.faulted for record in sandbox.requests()] == [True, True, False]
    assert sandbox.events("hackle") == [hackle_event()]


def test_fault_only_touches_its_vendor(sandbox, send):
    sandbox.inject("hackle", status=500)

    assert send("browsee", browsee_event()).status_code == 200
    assert send("hackle", hackle_event()).status_code == 500


def test_fault_sends_retry_after_and_vendor_shaped_body(sandbox, send):
    sandbox.inject("primedata", status=429, retry_after="2")
    sandbox.inject("hellotext", status=503, retry_after="Wed, 21 Oct 2026 07:28:00 GMT")

    primedata = send("primedata", primedata_batch())
    hellotext = send("hellotext", hellotext_event())

    assert (primedata.status_code, primedata.headers["Retry-After"]) == (429, "2")
    assert "message" in primedata.json()["error"]
    assert hellotext.headers["Retry-After"] == "Wed, 21 Oct 2026 07:28:00 GMT"
    assert hellotext.json()["errors"]


def test_fault_body_override_makes_a_200_failure(sandbox, send):
    sandbox.inject("browsee", status=200, body={"status": "failure", "message": "x"})

    response = send("browsee", browsee_event())

    assert (response.status_code, response.json()) == (200, {"status": "failure", "message": "x"})
    assert sandbox.requests()[0].accepted is False


def test_faults_apply_in_order(sandbox, send):
    sandbox.inject("hackle", status=500)
    sandbox.inject("hackle", status=429, count=2)

    statuses = [send("hackle", hackle_event()).status_code for _ in range(4)]

    assert statuses == [500, 429, 429, 200]


def test_delay_fault_slows_the_answer_then_processes_normally(sandbox, send):
    sandbox.inject("hackle", delay=0.2)
    started = time.monotonic()

    response = send("hackle", hackle_event())

    assert time.monotonic() - started >= 0.2
    assert response.status_code == 200
    assert sandbox.requests()[0].accepted


def test_delay_combines_with_status(sandbox, send):
    sandbox.inject("browsee", status=502, delay=0.1)
    started = time.monotonic()

    assert send("browsee", browsee_event()).status_code == 502
    assert time.monotonic() - started >= 0.1


def test_delay_longer_than_client_timeout_times_out(sandbox, send):
    sandbox.inject("hackle", delay=0.3)

    with pytest.raises(requests.exceptions.Timeout):
        send("hackle", hackle_event(), timeout=0.1)

    # The server finishes the slow request on its own; let it land before the reset.
    assert sandbox.wait_for(1, vendor="hackle", timeout=1)[0].status == 200


def test_drop_fault_closes_the_connection_without_answer(sandbox, send):
    sandbox.inject("hellotext", drop=True)

    with pytest.raises(requests.exceptions.ConnectionError):
        send("hellotext", hellotext_event())

    assert send("hellotext", hellotext_event()).status_code == 200
    dropped, answered = sandbox.requests()
    assert (dropped.status, dropped.faulted) == (None, True)
    assert answered.status == 200


def test_clear_faults(sandbox, send):
    sandbox.inject("hackle", status=500, count=5)
    sandbox.clear_faults()

    assert send("hackle", hackle_event()).status_code == 200


@pytest.mark.parametrize(
    "kwargs",
    [
        {"vendor": "nope", "status": 500},
        {"vendor": "hackle"},
        {"vendor": "hackle", "status": 99},
        {"vendor": "hackle", "status": 500, "count": 0},
        {"vendor": "hackle", "delay": -1},
        {"vendor": "hackle", "drop": True, "status": 500},
        {"vendor": "hackle", "retry_after": "1"},
        {"vendor": "hackle", "status": 500, "body": [1]},
    ],
)
def test_inject_refuses_meaningless_faults(sandbox, kwargs):
    with pytest.raises(ValueError):  # noqa: PT011 (the messages differ per case)
        sandbox.inject(**kwargs)


# --- control API ------------------------------------------------------------------------------


def control(client, sandbox, method, action, payload=None, **params):
    url = f"{sandbox.url}/_sandbox/{action}"
    return client.request(method, url, json=payload, params=params, timeout=2)


def test_control_health(sandbox, client):
    response = control(client, sandbox, "GET", "health")

    assert (response.status_code, response.json()) == (200, {"ok": True})


def test_control_requests_lists_records_as_json(sandbox, client, send):
    send("hackle", hackle_event())
    send("primedata", primedata_batch())

    everything = control(client, sandbox, "GET", "requests").json()
    hackle = control(client, sandbox, "GET", "requests", vendor="hackle").json()

    assert [record["vendor"] for record in everything["requests"]] == ["hackle", "primedata"]
    [record] = hackle["requests"]
    assert record["body"] == hackle_event()
    assert (record["status"], record["event_count"], record["accepted"]) == (200, 1, True)
    assert everything["dropped"] == 0


def test_control_faults_and_reset(sandbox, client, send):
    fault = {"vendor": "hackle", "status": 503, "count": 2, "retry_after": "1", "delay": 0}
    fault |= {"drop": False, "body": None}

    assert control(client, sandbox, "POST", "faults", fault).status_code == 200
    first = send("hackle", hackle_event())
    assert (first.status_code, first.headers["Retry-After"]) == (503, "1")

    assert control(client, sandbox, "POST", "reset").status_code == 200
    assert sandbox.requests() == []
    assert send("hackle", hackle_event()).status_code == 200


def test_control_drop_fault(sandbox, client, send):
    control(client, sandbox, "POST", "faults", {"vendor": "browsee", "drop": True})

    with pytest.raises(requests.exceptions.ConnectionError):
        send("browsee", browsee_event())


def test_control_legacy(sandbox, client, send):
    enabled = control(client, sandbox, "POST", "legacy", {"vendor": "hellotext", "enabled": True})
    assert enabled.status_code == 200
    assert send("hellotext", hellotext_event()).status_code == 201

    control(client, sandbox, "POST", "legacy", {"vendor": "hellotext", "enabled": False})
    assert send("hellotext", hellotext_event()).status_code == 200


@pytest.mark.parametrize(
    ("method", "action", "payload", "status"),
    [
        ("POST", "faults", {"vendor": "hackle", "status": 500, "colour": "red"}, 400),
        ("POST", "faults", {"vendor": "nope", "status": 500}, 400),
        ("POST", "faults", [1], 400),
        ("POST", "legacy", {"enabled": True}, 400),
        ("POST", "legacy", {"vendor": "nope"}, 400),
        ("POST", "seed", {"unseen_sessions": ["S"]}, 400),
        ("POST", "seed", {"vendor": "nope", "unseen_sessions": ["S"]}, 400),
        ("POST", "seed", {"vendor": "hackle", "actions": ["a.b"]}, 400),
        ("POST", "seed", {"vendor": "hellotext", "sessions": ["S"]}, 400),
        ("POST", "seed", {"vendor": "hellotext", "unseen_sessions": "S"}, 400),
        ("POST", "seed", {"vendor": "hellotext", "actions": ["order.placed"]}, 400),
        ("POST", "seed", {"vendor": "primedata", "aliases": ['{"required": []}']}, 400),
        ("GET", "seed", None, 405),
        ("GET", "faults", None, 405),
        ("POST", "health", None, 405),
        ("GET", "nothing", None, 404),
    ],
)
def test_control_refuses_bad_calls(sandbox, client, method, action, payload, status):
    response = control(client, sandbox, method, action, payload)

    assert response.status_code == status
    assert "error" in response.json()
    assert sandbox.requests() == []


def test_control_seed_registers_primedata_schemas(sandbox, client, send):
    schema = '{"alias": "purchase", "required": ["total"]}'
    sandbox.state("primedata").any_type = False
    seeded = control(client, sandbox, "POST", "seed", {"vendor": "primedata", "aliases": [schema]})
    assert seeded.json() == {"ok": True}
    batch = primedata_batch(primedata_event(), primedata_event(properties={"other": 1}))
    assert send("primedata", batch).json()["processedEvents"] == 1


# --- Python API -------------------------------------------------------------------------------


def test_settings_for_the_library(sandbox):
    settings = sandbox.vendor_settings()
    env = sandbox.env()

    assert settings["hackle"] == {"API_KEY": HACKLE_KEY, "API_URL": f"{sandbox.url}/hackle"}
    assert settings["primedata"]["CLIENT_ID"] == CLIENT_ID
    assert sandbox.url == f"http://127.0.0.1:{sandbox.port}"
    assert env["EVENTTRACK_HELLOTEXT_API_TOKEN"] == TOKEN
    assert env["EVENTTRACK_HELLOTEXT_API_URL"] == sandbox.api_url("hellotext")
    assert env["EVENTTRACK_PRIMEDATA_ACCESS_TOKEN"] == ACCESS_TOKEN
    # credentials and API_URL per vendor
    assert len(env) == sum(len(spec.credentials) + 1 for spec in sandbox.specs.values())


def test_stop_really_stops(client):
    sandbox = Sandbox().start()
    url = sandbox.url + "/_sandbox/health"
    assert client.get(url, timeout=2).status_code == 200

    sandbox.stop()

    with pytest.raises(requests.exceptions.ConnectionError):
        client.get(url, timeout=2)
    with pytest.raises(RuntimeError):
        _ = sandbox.url


def test_verbose_log_names_requests_without_secrets(caplog, client):
    with (
        caplog.at_level(logging.INFO, logger="django_eventtrack.sandbox"),
        Sandbox(verbose=True) as sandbox,
    ):
        for vendor, body in VALID_BODIES.items():
            url = sandbox.api_url(vendor) + PATHS[vendor]
            client.post(url, json=body, headers=AUTH_HEADERS[vendor], timeout=2)
        client.post(sandbox.api_url("hackle") + PATHS["hackle"], json={}, timeout=2)

    assert "hackle POST /v1/track -> 200" in caplog.text
    assert "-> 401" in caplog.text
    for secret in (TOKEN, HACKLE_KEY, BROWSEE_KEY, ACCESS_TOKEN):
        assert secret not in caplog.text


def test_quiet_by_default(caplog, sandbox, send):
    with caplog.at_level(logging.DEBUG, logger="django_eventtrack.sandbox"):
        send("hackle", hackle_event())

    assert caplog.records == []

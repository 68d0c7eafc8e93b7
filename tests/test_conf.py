"""Settings resolution: the EVENTTRACK dict, then EVENTTRACK_* variables, then defaults."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from typing import Any

import pytest
from pytest_django import Settings

from django_eventtrack import conf
from django_eventtrack.conf import get_config
from django_eventtrack.errors import ConfigurationError
from django_eventtrack.vendors import BUILT_IN, VendorAdapter
from django_eventtrack.vendors.base import BrowserId
from tests.processes.helpers import VENDORS


def configure(settings: Settings, vendors: dict[str, Any], **top: Any) -> None:
    settings.EVENTTRACK = {"VENDORS": vendors, **top}


def test_nothing_configured_means_no_active_vendor_and_thread_delivery(
    settings: Settings,
) -> None:
    settings.EVENTTRACK = {}
    config = get_config()
    assert config.active_vendors == {}
    assert tuple(config.vendors) == VENDORS
    assert config.delivery == "thread"


def test_settings_dict_activates_a_vendor_with_its_default_url(settings: Settings) -> None:
    configure(settings, {"hackle": {"API_KEY": "hk-secret"}})
    hackle = get_config().vendors["hackle"]
    assert hackle.active
    assert hackle.credentials == {"API_KEY": "hk-secret"}
    assert hackle.api_url == "https://api.hackle.io"
    assert list(get_config().active_vendors) == ["hackle"]


def test_environment_activates_a_vendor(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.EVENTTRACK = {}
    monkeypatch.setenv("EVENTTRACK_PRIMEDATA_CLIENT_ID", "client-1")
    monkeypatch.setenv("EVENTTRACK_PRIMEDATA_ACCESS_TOKEN", "pd-secret")
    monkeypatch.setenv("EVENTTRACK_PRIMEDATA_API_URL", "https://eu.primedata.example/")
    monkeypatch.setenv("EVENTTRACK_DELIVERY", "sync")
    conf.reload()
    primedata = get_config().vendors["primedata"]
    assert primedata.active
    assert primedata.credentials == {"CLIENT_ID": "client-1", "ACCESS_TOKEN": "pd-secret"}
    assert primedata.api_url == "https://eu.primedata.example"
    assert get_config().delivery == "sync"


def test_explicit_settings_win_over_the_environment(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVENTTRACK_HELLOTEXT_API_TOKEN", "from-env")
    monkeypatch.setenv("EVENTTRACK_HELLOTEXT_API_URL", "http://127.0.0.1:1/env")
    configure(settings, {"hellotext": {"API_TOKEN": "from-settings"}})
    hellotext = get_config().vendors["hellotext"]
    assert hellotext.credentials["API_TOKEN"] == "from-settings"
    assert hellotext.api_url == "http://127.0.0.1:1/env"  # not in the dict: env fills it


def test_settings_change_is_picked_up_without_restart(settings: Settings) -> None:
    configure(settings, {})
    assert get_config().active_vendors == {}
    configure(settings, {"browsee": {"API_KEY": "br-key"}})
    assert list(get_config().active_vendors) == ["browsee"]


def test_per_vendor_options(settings: Settings) -> None:
    configure(
        settings,
        {
            "hackle": {
                "API_KEY": "k",
                "EVENTS": ["product.purchased", "user.signed_up"],
                "EVENT_NAMES": {"product.purchased": "purchase"},
                "TIMEOUT": 2.5,
                "CONNECT_TIMEOUT": "1",
                "MAX_ATTEMPTS": 3,
            }
        },
    )
    hackle = get_config().vendors["hackle"]
    assert hackle.events == frozenset({"product.purchased", "user.signed_up"})
    assert hackle.event_names == {"product.purchased": "purchase"}
    assert (hackle.connect_timeout, hackle.read_timeout, hackle.max_attempts) == (1.0, 2.5, 3)


def test_per_vendor_options_from_the_environment(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(settings, {"browsee": {"API_KEY": "k"}})
    monkeypatch.setenv("EVENTTRACK_BROWSEE_EVENTS", "a.b, c.d")
    monkeypatch.setenv("EVENTTRACK_BROWSEE_EVENT_NAMES", "a.b=A_B,c.d=C_D")
    monkeypatch.setenv("EVENTTRACK_BROWSEE_TIMEOUT", "4")
    conf.reload()
    browsee = get_config().vendors["browsee"]
    assert browsee.events == frozenset({"a.b", "c.d"})
    assert browsee.event_names == {"a.b": "A_B", "c.d": "C_D"}
    assert browsee.read_timeout == 4.0


def test_enabled_false_turns_a_configured_vendor_off(settings: Settings) -> None:
    configure(settings, {"hackle": {"API_KEY": "k", "ENABLED": False}})
    assert get_config().active_vendors == {}


@pytest.mark.parametrize(
    ("vendors", "top", "expected"),
    [
        ({"mixpanel": {}}, {}, "unknown vendors ['mixpanel']"),
        ({"hackle": {"API_KEY": "k", "APIKEY": "x"}}, {}, "unknown keys ['APIKEY']"),
        ({}, {"VENDOR": {}}, "EVENTTRACK has unknown keys ['VENDOR']"),
        (
            {"hackle": {"API_KEY": "k", "API_URL": "api.hackle.io"}},
            {},
            'EVENTTRACK["VENDORS"]["hackle"]["API_URL"] (or environment variable '
            "EVENTTRACK_HACKLE_API_URL) must be an http(s) URL",
        ),
        (
            {"hackle": {"API_KEY": "k", "TIMEOUT": "soon"}},
            {},
            "EVENTTRACK_HACKLE_TIMEOUT) must be a number of seconds",
        ),
        ({"hackle": {"API_KEY": "k", "TIMEOUT": 0}}, {}, "between 0 and 300 seconds"),
        (
            {"hackle": {"API_KEY": "k", "API_URL": "https://me:hunter22@api.hackle.io"}},
            {},
            "must not contain credentials",
        ),
        ({"hackle": {"API_KEY": "k", "MAX_ATTEMPTS": 0}}, {}, "must be at least 1"),
        ({"hackle": {"API_KEY": 42}}, {}, "must be a string, got int"),
        ({"hackle": {"API_KEY": "a\tkey"}}, {}, "contains a control character"),
        ({"hackle": {"API_KEY": "k", "EVENT_NAMES": ["x"]}}, {}, "must map our event names"),
        ({"hackle": {"API_KEY": "k", "EVENTS": 3}}, {}, "must be a list of event names"),
        ({"hackle": {"API_KEY": "k", "ENABLED": "maybe"}}, {}, "must be true or false"),
        ({}, {"DELIVERY": ""}, "must name a delivery backend"),
    ],
)
def test_malformed_settings_name_the_setting_and_variable(
    settings: Settings, vendors: dict[str, Any], top: dict[str, Any], expected: str
) -> None:
    configure(settings, vendors, **top)
    with pytest.raises(ConfigurationError) as caught:
        get_config()
    assert expected in str(caught.value)
    assert "hunter22" not in str(caught.value)


def test_half_configured_vendor_names_what_is_missing(settings: Settings) -> None:
    configure(settings, {"primedata": {"CLIENT_ID": "client-1"}})
    with pytest.raises(ConfigurationError) as caught:
        get_config()
    message = str(caught.value)
    assert "PrimeData is half configured" in message
    assert 'EVENTTRACK["VENDORS"]["primedata"]["ACCESS_TOKEN"]' in message
    assert "EVENTTRACK_PRIMEDATA_ACCESS_TOKEN" in message


def test_malformed_environment_value_is_an_error(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(settings, {"hellotext": {"API_TOKEN": "t"}})
    monkeypatch.setenv("EVENTTRACK_HELLOTEXT_API_URL", "ftp://files.example.com")
    conf.reload()
    with pytest.raises(ConfigurationError, match="EVENTTRACK_HELLOTEXT_API_URL"):
        get_config()


def test_secrets_stay_out_of_repr_and_errors(settings: Settings) -> None:
    configure(settings, {"hackle": {"API_KEY": "hk-very-secret", "TIMEOUT": "x"}})
    with pytest.raises(ConfigurationError) as caught:
        get_config()
    assert "hk-very-secret" not in str(caught.value)
    configure(settings, {"hackle": {"API_KEY": "hk-very-secret"}})
    hackle = get_config().vendors["hackle"]
    assert "hk-very-secret" not in repr(hackle)
    assert hackle.secrets == ("hk-very-secret",)


@pytest.mark.parametrize(
    ("url", "loopback"),
    [
        ("http://127.0.0.1:8900/hackle", True),
        ("http://localhost:8900", True),
        ("http://[::1]:80", True),
        ("https://api.hackle.io", False),
    ],
)
def test_is_loopback_url(url: str, loopback: bool) -> None:
    assert conf.is_loopback_url(url) is loopback


def test_vendor_specific_settings_come_from_settings_or_the_environment(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.EVENTTRACK = {
        "VENDORS": {
            "hellotext": {"API_TOKEN": "t", "ACTIONS": ["appointment.booked"]},
            "primedata": {"CLIENT_ID": "c", "ACCESS_TOKEN": "a"},
        }
    }
    monkeypatch.setenv("EVENTTRACK_PRIMEDATA_EVENT_TYPES", "order.placed, cart.added")
    monkeypatch.setenv("EVENTTRACK_HELLOTEXT_OBJECT_SOURCE", "my-shop")
    monkeypatch.setenv("EVENTTRACK_HELLOTEXT_PRODUCTS_SYNCED", "yes")
    conf.reload()
    vendors = conf.get_config().vendors
    assert vendors["hellotext"].options == {
        "ACTIONS": frozenset({"appointment.booked"}),
        "OBJECT_SOURCE": "my-shop",
        "OBJECTS": {},
        "PRODUCTS_SYNCED": True,
    }
    assert vendors["primedata"].options == {
        "EVENT_TYPES": frozenset({"order.placed", "cart.added"})
    }
    assert vendors["hackle"].options == {}


def test_max_lateness_defaults_per_vendor_and_turns_off(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.EVENTTRACK = {"VENDORS": {"browsee": {"API_KEY": "k", "MAX_LATENESS": 60}}}
    monkeypatch.setenv("EVENTTRACK_HACKLE_MAX_LATENESS", "off")
    conf.reload()
    vendors = conf.get_config().vendors
    assert vendors["hackle"].max_lateness is None  # its default, an hour, turned off
    assert vendors["browsee"].max_lateness == 60.0
    assert vendors["hellotext"].max_lateness is None
    monkeypatch.delenv("EVENTTRACK_HACKLE_MAX_LATENESS")
    conf.reload()
    assert conf.get_config().vendors["hackle"].max_lateness == 3600.0


def test_a_vendor_specific_setting_belongs_to_its_vendor_only(settings: Settings) -> None:
    settings.EVENTTRACK = {"VENDORS": {"hackle": {"API_KEY": "k", "ACTIONS": ["a.b"]}}}
    with pytest.raises(ConfigurationError, match=r"unknown keys \['ACTIONS'\]"):
        conf.get_config()


def test_identify_staff_is_read_like_every_setting(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.EVENTTRACK = {}
    assert conf.get_config().identify_staff is False
    monkeypatch.setenv("EVENTTRACK_IDENTIFY_STAFF", "yes")
    conf.reload()
    assert conf.get_config().identify_staff is True


#: Secrets as vendors hand them out or password managers generate them; each must reach
#: the vendor exactly as set in the environment.
LITERAL_SECRETS = {
    "a proxy-looking dollar": "$HOME",
    "a dollar naming no variable": "$NO_SUCH_VARIABLE_HERE",
    "an escaped dollar": r"\$abc",
    "a dollar inside": "ab$cd$",
    "backslashes": r"a\b\\c\n",
    "quotes": """a'b"c`d""",
    "inner spaces": "pass phrase with spaces",
    "everything": r"""$x \"y' z""",
}


@pytest.mark.parametrize("secret", LITERAL_SECRETS.values(), ids=LITERAL_SECRETS.keys())
def test_a_secret_is_read_literally_from_the_environment(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, secret: str
) -> None:
    settings.EVENTTRACK = {}
    monkeypatch.setenv("HOME", "/root-of-someone")
    monkeypatch.setenv("EVENTTRACK_HACKLE_API_KEY", secret)
    monkeypatch.setenv("EVENTTRACK_PRIMEDATA_CLIENT_ID", secret)
    monkeypatch.setenv("EVENTTRACK_PRIMEDATA_ACCESS_TOKEN", f"  {secret}\n")
    conf.reload()
    config = get_config()
    assert config.vendors["hackle"].credentials == {"API_KEY": secret}
    assert config.vendors["primedata"].credentials == {
        "CLIENT_ID": secret,
        "ACCESS_TOKEN": secret,  # surrounding whitespace (a pasted line end) is not the secret's
    }


def test_django_environ_still_reads_the_other_values(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Non-secret values go through django-environ (what a project's .env holds)."""
    settings.EVENTTRACK = {}
    monkeypatch.setenv("EVENTTRACK_HACKLE_API_KEY", "k")
    monkeypatch.setenv("EVENTTRACK_HACKLE_TIMEOUT", "2.5")
    monkeypatch.setenv("EVENTTRACK_HACKLE_EVENTS", "a.b,c.d")
    monkeypatch.setenv("EVENTTRACK_DELIVERY", "worker")
    conf.reload()
    config = get_config()
    assert config.vendors["hackle"].read_timeout == 2.5
    assert config.vendors["hackle"].events == frozenset({"a.b", "c.d"})
    assert config.delivery == "worker"


def test_the_registry_defaults_to_the_built_in_vendors_in_order(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("EVENTTRACK_ADAPTERS")
    settings.EVENTTRACK = {}
    assert tuple(get_config().adapters) == tuple(BUILT_IN)


@pytest.mark.parametrize(
    ("adapters", "message"),
    [
        ("hellotext,nowhere.Adapter", r"ADAPTERS.*cannot import 'nowhere.Adapter'"),
        (["tests.test_conf.NOT_AN_ADAPTER"], "is not a VendorAdapter subclass"),
        (["hackle", "hackle"], "names the vendor 'hackle' twice"),
        (["tests.test_conf.Unnamed"], "must set name to a lowercase word"),
        (["hackle", "tests.test_conf.Squatter"], "browser id 'device_id' is already hackle's"),
        (["tests.test_conf.Escaping"], "browser script contains '</'"),
        (7, "must be a list of vendor names"),
    ],
)
def test_a_bad_registry_is_a_configuration_error(
    settings: Settings, adapters: object, message: str
) -> None:
    settings.EVENTTRACK = {"ADAPTERS": adapters}
    with pytest.raises(ConfigurationError, match=message):
        get_config()


NOT_AN_ADAPTER = object()


class Unnamed(VendorAdapter):
    name = "Not A Word"


class Squatter(VendorAdapter):
    name = "squatter"
    browser_ids = (BrowserId("device_id", "someone else's device id"),)


class Escaping(VendorAdapter):
    name = "escaping"
    browser_ids = (BrowserId("escaping_id", "x", script_key="x", script="'</script>'"),)


def test_identity_and_model_events_read_dotted_paths_with_the_same_parser() -> None:
    """One resolver: IDENTITY's USER_ID and a hook's properties say the same thing."""
    where = 'EVENTTRACK["MODEL_EVENTS"][0]["properties"]'
    with pytest.raises(ConfigurationError) as from_conf:
        conf.parse_callable("tests.test_conf.NOT_AN_ADAPTER", where)
    assert str(from_conf.value) == f"{where}: 'tests.test_conf.NOT_AN_ADAPTER' is a object, " + (
        "not a callable"
    )
    with pytest.raises(ConfigurationError, match=r'\["USER_ID"\]: .* is a object, not a callable'):
        conf.parse_identity({"USER_ID": "tests.test_conf.NOT_AN_ADAPTER"})


def test_the_tasks_module_reads_no_setting_when_imported(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not any(importlib.util.find_spec(name) for name in ("django.tasks", "django_tasks")):
        pytest.skip("needs the Tasks framework: Django 6.0+, or the django-tasks backport")
    monkeypatch.delitem(sys.modules, "django_eventtrack.delivery.tasks_backend", raising=False)
    settings.EVENTTRACK = {"TASKS_QUEUE": "not a queue"}  # would fail the resolver
    module = importlib.import_module("django_eventtrack.delivery.tasks_backend")
    with pytest.raises(ConfigurationError, match="TASKS_QUEUE"):
        module.TasksBackend.check_settings()

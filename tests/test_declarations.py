"""Settings are declared once (``core.settings``): a field says its parser and default, and the
resolver derives the keys, the lookups and the environment variables from it. One list rule
and one boolean rule serve every setting."""

from __future__ import annotations

import ast
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import pytest
from pytest_django import Settings

from django_eventtrack import conf
from django_eventtrack.conf import Config, DeliveryOptions, IdentitySettings, get_config
from django_eventtrack.core.settings import (
    declared,
    groups_of,
    parse_bool,
    parse_list,
    parse_names,
    parse_seconds,
    setting,
)
from django_eventtrack.errors import ConfigurationError
from django_eventtrack.vendors.base import VendorConfig
from tests.fifthvendor.adapter import AcmeAdapter
from tests.settings import TEST_ADAPTERS
from tests.test_architecture import PACKAGE


def text(value: object, where: str) -> str:
    return str(value)


@dataclass(frozen=True)
class Example:
    """A dataclass of settings the way the package declares its own."""

    speed: float = setting(parse_seconds, 1.5)
    tags: frozenset[str] = setting(parse_names, frozenset(), key="LABELS")
    handler: str = setting(text, "", env=False)
    token: str = setting(text, "", literal=True, secret=True)


def test_one_field_declares_key_variable_parser_and_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert [(each.name, each.key, each.default) for each in declared(Example)] == [
        ("speed", "SPEED", 1.5),
        ("tags", "LABELS", frozenset()),
        ("handler", "HANDLER", ""),
        ("token", "TOKEN", ""),
    ]
    assert conf.resolve(Example, {}) == Example()
    monkeypatch.setenv("EVENTTRACK_SPEED", "2")
    monkeypatch.setenv("EVENTTRACK_LABELS", "a, b,")
    monkeypatch.setenv("EVENTTRACK_HANDLER", "from the environment")  # settings only: unread
    monkeypatch.setenv("EVENTTRACK_TOKEN", "$HOME")  # read literally
    resolved = conf.resolve(Example, {"HANDLER": "from settings"})
    assert resolved == Example(2.0, frozenset({"a", "b"}), "from settings", "$HOME")
    assert "$HOME" not in repr(resolved)
    with pytest.raises(ConfigurationError) as caught:
        conf.resolve(Example, {"SPEED": "fast"})
    assert str(caught.value) == (
        'EVENTTRACK["SPEED"] (or environment variable EVENTTRACK_SPEED) must be a number, '
        "got 'fast'"
    )


def test_every_field_of_the_configuration_is_the_registry_or_a_declared_setting() -> None:
    """A plain field added to Config would never be read: declare it with setting(). The
    registry and the tracking plan (which may fill vendor settings) are read by hand."""
    names = {each.name for each in declared(Config, groups=False)} | set(groups_of(Config))
    assert {each.name for each in fields(Config)} - names == {"adapters", "vendors", "plan"}
    hand_read = {"ADAPTERS", "VENDORS", conf.PLAN_KEY}
    assert hand_read | {each.key for each in declared(Config)} == conf.TOP_LEVEL_KEYS
    assert {each.key for each in declared(DeliveryOptions)} <= conf.TOP_LEVEL_KEYS


def test_the_known_keys_and_variables_come_from_the_declarations(settings: Settings) -> None:
    settings.EVENTTRACK = {}
    variables = conf.environment_variables(get_config())
    for each in declared(Config):
        assert (conf.env_name(each.key) in variables) is each.setting.env, each.key
    assert {each.key for each in declared(VendorConfig)} == conf.VENDOR_OPTIONS
    assert {conf.env_name("acme", key) for key in conf.VENDOR_OPTIONS} <= variables
    assert tuple(each.key for each in declared(IdentitySettings)) == conf.IDENTITY_KEYS
    assert not any(each.setting.env for each in declared(IdentitySettings))


BOOLEANS = [
    *(("", each) for each in declared(Config)),
    *(("VENDORS", each) for each in declared(VendorConfig)),
    *(("IDENTITY", each) for each in declared(IdentitySettings)),
]


@pytest.mark.parametrize(
    ("scope", "each"),
    [(scope, each) for scope, each in BOOLEANS if isinstance(each.default, bool)],
    ids=lambda value: getattr(value, "key", value),
)
def test_every_boolean_setting_follows_the_one_rule(scope: str, each: Any) -> None:
    assert each.setting.parse is parse_bool


@pytest.mark.parametrize(
    "value",
    [["a", " b ", ""], ("a", "b"), "a, b,,", " a ,b"],
)
def test_the_one_list_rule(value: object) -> None:
    assert parse_list(value, "X", "a list") == ("a", "b")


@pytest.mark.parametrize("value", [7, ["a", 1], {"a": 1}, None])
def test_the_one_list_rule_refuses_what_is_not_a_list_of_strings(value: object) -> None:
    with pytest.raises(ConfigurationError, match=r"^X must be a list of things$"):
        parse_list(value, "X", "a list of things")


@pytest.mark.parametrize(
    ("key", "value"),
    [("ADAPTERS", frozenset(TEST_ADAPTERS)), ("IDENTIFY_TRAITS", {"email", "first_name"})],
)
def test_a_list_whose_order_matters_is_not_a_set(
    settings: Settings, key: str, value: object
) -> None:
    settings.EVENTTRACK = {key: value}
    with pytest.raises(ConfigurationError, match=rf'EVENTTRACK\["{key}"\].* must be a list'):
        get_config()


def test_only_the_one_list_rule_splits_a_comma_separated_setting() -> None:
    splitting = [
        f"{path.relative_to(PACKAGE).as_posix()}:{node.lineno}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "split"
        and [getattr(arg, "value", None) for arg in node.args] == [","]
    ]
    assert [where.partition(":")[0] for where in splitting] == ["core/settings.py"], splitting


class SlowAcme(AcmeAdapter):
    """Acme with defaults of its own for two options every vendor has."""

    default_max_attempts: ClassVar[int] = 3
    default_read_timeout: ClassVar[float] = 30.0


def test_an_adapters_default_field_is_its_vendors_default(settings: Settings) -> None:
    settings.EVENTTRACK = {"ADAPTERS": ["tests.test_declarations.SlowAcme"]}
    acme = get_config().vendors["acme"]
    assert (acme.max_attempts, acme.read_timeout, acme.api_url) == (
        3,
        30.0,
        "https://api.acme.example",
    )
    settings.EVENTTRACK = {
        "ADAPTERS": ["tests.test_declarations.SlowAcme"],
        "VENDORS": {"acme": {"MAX_ATTEMPTS": 5}},
    }
    assert get_config().vendors["acme"].max_attempts == 5

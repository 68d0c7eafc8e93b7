"""The documentation cannot drift: the settings reference against the resolver, the README's size
and links.

The known settings come from the resolver itself: the key sets it validates against
(``conf.TOP_LEVEL_KEYS``, ``conf.VENDOR_OPTIONS``, each adapter's ``credential_settings``,
``conf.IDENTITY_KEYS``) and, for environment variables and defaults, every ``lookup()`` it
makes while resolving an empty configuration. A setting added to the code but not to
``docs/settings.md``, or documented but gone, fails here.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import pytest
from pytest_django import Settings

from django_eventtrack import conf
from django_eventtrack.conf import get_config
from django_eventtrack.vendors import BUILT_IN

ROOT = Path(__file__).resolve().parent.parent
SETTINGS_PAGE = ROOT / "docs" / "settings.md"
README = ROOT / "README.md"
README_LIMIT = 15 * 1024

VENDOR_PLACEHOLDER = "<VENDOR>"


@dataclass(frozen=True)
class Row:
    """One row of a settings table, with the section heading it sits under."""

    section: str
    cells: dict[str, str]

    @property
    def key(self) -> str:
        return code_spans(self.cells["Key"])[0]

    @property
    def scope(self) -> str:
        """``VENDORS``, ``IDENTITY`` or ``""`` (top level), from the section heading."""
        for scope in ("VENDORS", "IDENTITY"):
            if f'EVENTTRACK["{scope}"]' in self.section:
                return scope
        return ""

    def env_names(self) -> set[str]:
        """The environment variables the row names, ``<VENDOR>`` expanded for every vendor."""
        names = {
            span
            for span in code_spans(self.cells.get("Environment variable", ""))
            if span.startswith("EVENTTRACK_")
        }
        return {
            name.replace(VENDOR_PLACEHOLDER, vendor.upper()) if VENDOR_PLACEHOLDER in name else name
            for name in names
            for vendor in get_config().adapters
        }


def code_spans(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def table_rows(text: str) -> Iterator[Row]:
    """Every body row of every Markdown table, its cells named by the table's header."""
    section = ""
    header: list[str] | None = None
    for line in text.splitlines():
        if line.startswith("## "):
            section, header = line, None
        elif not line.startswith("|"):
            header = None
        elif header is None:
            header = split_row(line)
        elif not set(line) <= set("|-: "):
            yield Row(section, dict(zip(header, split_row(line), strict=True)))


def split_row(line: str) -> list[str]:
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip()[1:-1])]


def literals(cell: str) -> list[Any]:
    """The Python literals among a cell's code spans (``"thread"``, ``10.0``, ``None``...)."""
    values = []
    for span in code_spans(cell):
        try:
            values.append(ast.literal_eval(span))
        except (ValueError, SyntaxError):
            continue
    return values


def comparable(value: Any) -> Any:
    if isinstance(value, set | frozenset):
        return sorted(value)
    if isinstance(value, tuple):
        return list(value)
    return value


@dataclass(frozen=True)
class Lookup:
    scope: str
    key: str
    default: Any
    #: The vendor whose setting it is ("" outside ``VENDORS``).
    vendor: str = ""


@pytest.fixture(autouse=True)
def _built_in_vendors(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """The reference documents the built-in vendors, not the test suite's fifth one."""
    monkeypatch.setenv("EVENTTRACK_ADAPTERS", ",".join(BUILT_IN))
    settings.EVENTTRACK = {}


@pytest.fixture
def rows() -> list[Row]:
    return list(table_rows(SETTINGS_PAGE.read_text(encoding="utf-8")))


@pytest.fixture
def lookups(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> dict[str, list[Lookup]]:
    """Environment variable -> the resolver's lookups of it, for an empty configuration."""
    settings.EVENTTRACK = {}
    recorded: dict[str, list[Lookup]] = {}
    original = conf.lookup

    def recording_lookup(section: Any, key: str, *, path: tuple[str, ...], **kwargs: Any) -> Any:
        scope = path[0] if path else ""
        name = conf.env_name(*path[1:], key)
        vendor = path[1] if len(path) > 1 else ""
        recorded.setdefault(name, []).append(Lookup(scope, key, kwargs["default"], vendor))
        return original(section, key, path=path, **kwargs)

    monkeypatch.setattr(conf, "lookup", recording_lookup)
    conf.reload()
    conf.get_config()
    conf.reload()
    return recorded


def documented(rows: list[Row], scope: str) -> set[str]:
    return {row.key for row in rows if row.scope == scope and "Vendor" not in row.cells}


def credential_rows(rows: list[Row]) -> set[tuple[str, str]]:
    """(vendor name, key) of each credential row."""
    names = {adapter.display_name: name for name, adapter in get_config().adapters.items()}
    return {(names[row.cells["Vendor"]], row.key) for row in rows if "Vendor" in row.cells}


def test_every_top_level_key_is_documented_and_nothing_else(rows: list[Row]) -> None:
    assert documented(rows, "") == conf.TOP_LEVEL_KEYS


def test_every_vendor_option_and_credential_is_documented_and_nothing_else(
    rows: list[Row],
) -> None:
    assert credential_rows(rows) == {
        (name, key)
        for name, adapter in get_config().adapters.items()
        for key in adapter.credential_settings
    }
    own = {(row.cells["For"], row.key) for row in rows if "For" in row.cells}
    assert own == {
        (adapter.display_name, key)
        for adapter in get_config().adapters.values()
        for key in adapter.own_settings
    }
    assert documented(rows, "VENDORS") == conf.VENDOR_OPTIONS | {key for _, key in own}


def test_every_identity_key_is_documented_and_nothing_else(rows: list[Row]) -> None:
    assert documented(rows, "IDENTITY") == set(conf.IDENTITY_KEYS)


def test_every_environment_variable_is_documented_on_its_setting_and_nothing_else(
    rows: list[Row], lookups: dict[str, list[Lookup]]
) -> None:
    display = {name: adapter.display_name for name, adapter in get_config().adapters.items()}
    for row in rows:
        expected = {
            name
            for name, found in lookups.items()
            if any(
                lookup.scope == row.scope
                and lookup.key == row.key
                and ("For" not in row.cells or display[lookup.vendor] == row.cells["For"])
                for lookup in found
            )
        }
        if "Vendor" in row.cells:  # a credential row names its own vendor's variable
            ((vendor, key),) = credential_rows([row])
            expected = {conf.env_name(vendor, key)}
        assert row.env_names() == expected, row.key
    assert set().union(*(row.env_names() for row in rows)) == set(lookups)


def test_documented_defaults_are_the_resolvers(
    rows: list[Row], lookups: dict[str, list[Lookup]]
) -> None:
    defaults: dict[tuple[str, str], list[Any]] = {}
    own_defaults: dict[tuple[str, str], Any] = {}  # (vendor display name, key): one vendor's
    display = {name: adapter.display_name for name, adapter in get_config().adapters.items()}
    for found in lookups.values():
        for lookup in found:
            defaults.setdefault((lookup.scope, lookup.key), []).append(lookup.default)
            if lookup.vendor:
                own_defaults[(display[lookup.vendor], lookup.key)] = lookup.default
    identity_defaults = conf.IdentitySettings()
    for option in fields(conf.IdentitySettings):
        defaults[("IDENTITY", option.name.upper())] = [getattr(identity_defaults, option.name)]
    checked = set()
    for row in rows:
        if "Default" not in row.cells or (row.scope, row.key) not in defaults:
            continue
        shown = [comparable(value) for value in literals(row.cells["Default"])]
        expected = defaults[(row.scope, row.key)]
        if "For" in row.cells:  # one vendor's own setting: that vendor's default
            expected = [own_defaults[(row.cells["For"], row.key)]]
        for default in expected:
            assert comparable(default) in shown, f"{row.key}: default {default!r} not in {shown}"
        checked.add((row.scope, row.key))
    credentials = {("VENDORS", key) for _, key in credential_rows(rows)}
    assert checked == set(defaults) - credentials


def test_the_readme_stays_short() -> None:
    assert README.stat().st_size <= README_LIMIT


def test_the_readmes_relative_links_point_at_files() -> None:
    text = README.read_text(encoding="utf-8")
    targets = [
        target.split("#")[0]
        for target in re.findall(r"\]\(([^)\s]+)\)", text)
        if "://" not in target and not target.startswith(("#", "mailto:"))
    ]
    assert targets, "the README links into the docs"
    missing = [target for target in targets if not (ROOT / target).exists()]
    assert missing == []


def test_every_public_name_is_in_the_api_reference() -> None:
    import django_eventtrack

    page = (ROOT / "docs" / "api.md").read_text()
    missing = [
        name for name in django_eventtrack.__all__ if f"django_eventtrack.{name}" not in page
    ]
    assert missing == []


def test_every_system_check_is_in_the_monitoring_table() -> None:
    """Each ``eventtrack.E/Wnnn`` the package can report has its row in docs/monitoring.md."""
    raised = {
        found
        for module in (ROOT / "django_eventtrack").rglob("*.py")
        for found in re.findall(r'id="(eventtrack\.[EW]\d{3})"', module.read_text())
    }
    page = (ROOT / "docs" / "monitoring.md").read_text()
    table = set(re.findall(r"^\| `(eventtrack\.[EW]\d{3})` \|", page, re.M))
    assert raised
    assert sorted(raised - table) == []


@pytest.mark.parametrize(
    "command", ["send_event", "eventtrack_worker", "eventtrack_status", "eventtrack_purge"]
)
def test_every_command_describes_itself_in_its_help(command: str) -> None:
    from django.core.management import load_command_class

    parser = load_command_class("django_eventtrack", command).create_parser("manage.py", command)
    description = parser.format_help().split("\n\n")[1]
    assert len(description.split()) >= 10, parser.format_help()

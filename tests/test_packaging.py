"""The package's metadata says what tox tests, no more and no less."""

from __future__ import annotations

import configparser
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def versions_tox_tests() -> tuple[set[str], set[str]]:
    """(Python versions, Django versions) named by tox.ini's env_list, e.g. py312-django61."""
    tox = configparser.ConfigParser()
    tox.read(ROOT / "tox.ini")
    envs = re.findall(r"py(\d)(\d+)-django(\d)(\d+)", tox["tox"]["env_list"])
    pythons = {f"{major}.{minor}" for major, minor, _, _ in envs}
    djangos = {f"{major}.{minor}" for _, _, major, minor in envs}
    return pythons, djangos


def classifier_versions(prefix: str) -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {
        classifier.removeprefix(prefix)
        for classifier in project["classifiers"]
        if classifier.startswith(prefix) and re.fullmatch(r"\d+\.\d+", classifier[len(prefix) :])
    }


def test_classifiers_name_exactly_the_versions_tox_tests() -> None:
    pythons, djangos = versions_tox_tests()
    assert pythons, "tox.ini's env_list names no pyXY-djangoXY env"
    assert classifier_versions("Programming Language :: Python :: ") == pythons
    assert classifier_versions("Framework :: Django :: ") == djangos


def test_project_files_exist() -> None:
    for name in ("LICENSE", "CHANGELOG.md", "CONTRIBUTING.md", ".pre-commit-config.yaml"):
        assert (ROOT / name).is_file(), f"{name} is missing"
    assert "MIT License" in (ROOT / "LICENSE").read_text()


def test_the_demo_env_installs_the_package_alone() -> None:
    """``tox -e demo`` needs no Playwright nor Celery: it would inherit ``[testenv]``'s
    ``integration`` extra without its own (empty) ``extras``."""
    tox = configparser.ConfigParser()
    tox.read(ROOT / "tox.ini")
    assert tox["testenv"]["extras"].strip() == "integration"
    assert tox["testenv:demo"]["extras"].strip() == ""


def test_the_integration_envs_fail_without_their_servers_unless_told_to_skip() -> None:
    tox = configparser.ConfigParser()
    tox.read(ROOT / "tox.ini")
    lines = [line.strip() for line in tox["testenv"]["set_env"].splitlines()]
    assert (
        "integration: EVENTTRACK_TEST_REQUIRE_SERVERS = {env:EVENTTRACK_TEST_REQUIRE_SERVERS:1}"
        in lines
    )

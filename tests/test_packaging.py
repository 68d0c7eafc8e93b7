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

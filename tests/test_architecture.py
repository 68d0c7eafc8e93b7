"""The shape of the code, checked: vendor knowledge stays in the vendors' own modules.

Core code asks the registry (``EVENTTRACK["ADAPTERS"]``) instead of naming a vendor, so a
vendor is added by adding its module (the test suite's fifth vendor, ``tests/fifthvendor/``,
touches nothing else). Docstrings and comments may give a vendor as an example; code may not.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from django.utils.module_loading import import_string

from django_eventtrack.conf import get_config
from django_eventtrack.vendors import BUILT_IN

PACKAGE = Path(__file__).resolve().parent.parent / "django_eventtrack"
#: Where a vendor is described: its adapter, and its sandbox module (validators and state)
#: beside its adapter's name; the sandbox's shared modules name none.
VENDOR_PLACES = ("vendors/", *(f"sandbox/{name}.py" for name in BUILT_IN), "migrations/")


def code_words(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """Every name and string literal in ``tree`` with its line, docstrings left out."""
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if id(node) not in docstrings:
                yield line, node.value
        elif isinstance(node, ast.Name):
            yield line, node.id
        elif isinstance(node, ast.Attribute):
            yield line, node.attr
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            yield line, node.name
        elif isinstance(node, ast.arg | ast.keyword):
            yield line, node.arg or ""
        elif isinstance(node, ast.alias):
            yield line, node.name


def test_no_module_outside_the_vendors_names_a_vendor_in_code() -> None:
    vendors = tuple(get_config().adapters)
    assert len(vendors) >= 5  # the built-in vendors and the test suite's fifth
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        where = path.relative_to(PACKAGE).as_posix()
        if where.startswith(VENDOR_PLACES):
            continue
        for line, word in code_words(ast.parse(path.read_text(encoding="utf-8"))):
            found += [f"{where}:{line}: {word!r}" for v in vendors if v in word.lower()]
    assert found == []


def test_each_built_in_vendor_is_its_adapter_and_its_sandbox_module_of_the_same_name() -> None:
    """``vendors/<name>.py`` and ``sandbox/<name>.py``: the adapter names its sandbox spec, which
    the server finds through the registry (no list of vendors in a shared module)."""
    for name, path in BUILT_IN.items():
        adapter = import_string(path)
        assert path.startswith(f"django_eventtrack.vendors.{name}."), path
        assert adapter.name == name
        assert (adapter.sandbox or "").startswith(f"django_eventtrack.sandbox.{name}."), name
        assert import_string(adapter.sandbox).name == name


def test_the_check_sees_a_vendor_named_in_code_but_not_in_a_docstring() -> None:
    source = '"""Sent to Hackle."""\nURL = "https://api.hackle.io"\n'
    words = [word for _, word in code_words(ast.parse(source))]
    assert words == ["URL", "https://api.hackle.io"]


def test_conf_holds_the_one_setting_changed_receiver() -> None:
    """Settings changes reach the package through conf alone (hooks follow conf.changed)."""
    users = [
        path.relative_to(PACKAGE).as_posix()
        for path in sorted(PACKAGE.rglob("*.py"))
        if any(word == "setting_changed" for _, word in code_words(ast.parse(path.read_text())))
    ]
    assert users == ["conf.py"]


def test_no_module_imports_the_package_root() -> None:
    """The root package is the public API, above everything (the layers contract checks its
    children only): a module importing it would close a cycle through its lazy imports."""
    importers = [
        f"{path.relative_to(PACKAGE).as_posix()}: {alias.name}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ImportFrom) and node.module == "django_eventtrack"
        for alias in node.names
        if not is_submodule(alias.name)  # "from django_eventtrack import conf" is a module
    ]
    assert importers == []


def is_submodule(name: str) -> bool:
    return (PACKAGE / f"{name}.py").exists() or (PACKAGE / name / "__init__.py").exists()


def test_the_test_helpers_use_no_private_django_api() -> None:
    """The capture helpers follow transactions through documented APIs (an execute wrapper,
    get_autocommit, get_rollback), not Django's transaction internals."""
    private = {"atomic_blocks", "needs_rollback", "savepoint_ids", "run_on_commit"}
    found = [
        f"{path.relative_to(PACKAGE).as_posix()}:{line}: {word}"
        for path in sorted((PACKAGE / "testing").rglob("*.py"))
        for line, word in code_words(ast.parse(path.read_text(encoding="utf-8")))
        if word in private or word == "_from_testcase"
    ]
    assert found == []


#: The public import paths that stay where users find them (DESIGN: the public contract).
PUBLIC_MODULES = ("__init__", "middleware", "tasks", "errors", "signals", "models", "apps")


def test_the_top_level_holds_a_handful_of_modules_the_rest_live_in_packages_by_role() -> None:
    top = sorted(path.stem for path in PACKAGE.glob("*.py"))
    assert len(top) <= 14, top
    assert set(PUBLIC_MODULES) <= set(top)
    for package in ("core", "web", "outbox", "delivery", "vendors", "monitoring"):
        assert (PACKAGE / package / "__init__.py").is_file(), package


def test_no_two_modules_share_a_name_or_define_the_same_public_class() -> None:
    """Near-twin module names (``sending``/``sender``) and two classes named alike (the
    model ``Event`` and the normalised event) made readers alias them where they met."""
    modules = [p for p in PACKAGE.rglob("*.py") if "migrations" not in p.parts]
    stems = [p.stem for p in modules if p.stem != "__init__"]
    clashing = {"sending", "identification", "tasks_framework", "tracking", "outbox"}
    assert not clashing & set(stems), clashing & set(stems)
    owners: dict[str, list[str]] = {}
    for path in modules:
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                owners.setdefault(node.name, []).append(str(path.relative_to(PACKAGE)))
    # Django names every command class Command; vendor and sandbox modules follow one pattern.
    shared = {
        name: where
        for name, where in owners.items()
        if len(where) > 1
        and name != "Command"
        and not all(w.startswith(("vendors/", "sandbox/")) for w in where)
    }
    assert shared == {}, shared


#: A module longer than this holds more than one idea (ARCHITECTURE.md, "one idea per room").
MAX_MODULE_LINES = 800


def test_no_module_is_longer_than_one_idea_needs() -> None:
    long = {
        str(path.relative_to(PACKAGE)): lines
        for path in PACKAGE.rglob("*.py")
        if "migrations" not in path.parts
        and (lines := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert not long, f"split these by concern: {long}"

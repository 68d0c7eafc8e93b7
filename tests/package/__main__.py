"""``python -m tests.package`` (``tox -e package``): build, check and install the package.

Builds the sdist and the wheel from this checkout, checks their metadata
(``twine check --strict``) and contents, installs the wheel into a fresh
virtualenv, and runs a small project against the installed copy: migrations,
static files, the template tag and ``send_event --dry-run``. Nothing here
imports the checkout: the smoke project runs in the fresh virtualenv only.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import venv
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SMOKE_PROJECT = Path(__file__).resolve().parent / "smoke_project"


def package_files() -> list[str]:
    """Every file of the source package (modules, migrations, templates, static files,
    ``py.typed``): the wheel must carry each one."""
    package = ROOT / "django_eventtrack"
    return sorted(
        path.relative_to(ROOT).as_posix()
        for path in package.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    )


def run(*command: str | Path, cwd: Path | None = None) -> str:
    print("$", " ".join(map(str, command)), flush=True)
    result = subprocess.run(  # noqa: S603 (build tools, our own venv and manage.py)
        [str(part) for part in command], cwd=cwd, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        sys.exit(f"failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result.stdout


def build(dist: Path) -> tuple[Path, Path]:
    run(sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", dist, ROOT)
    (wheel,) = dist.glob("*.whl")
    (sdist,) = dist.glob("*.tar.gz")
    run(sys.executable, "-m", "twine", "check", "--strict", wheel, sdist)
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [name for name in package_files() if name not in names]
    if missing:
        sys.exit(f"the wheel lacks {', '.join(missing)}")
    if any(name.startswith(("tests/", "example_project/")) for name in names):
        sys.exit("the wheel ships the test suite or the example project")
    return wheel, sdist


def smoke(wheel: Path, workdir: Path) -> None:
    env_dir = workdir / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    run(python, "-m", "pip", "install", "--quiet", wheel)
    manage = [python, SMOKE_PROJECT / "manage.py"]
    run(*manage, "check", "--fail-level", "ERROR", cwd=workdir)
    run(*manage, "migrate", "--no-input", cwd=workdir)
    run(*manage, "collectstatic", "--no-input", cwd=workdir)
    if not (workdir / "static" / "django_eventtrack" / "eventtrack.js").is_file():
        sys.exit("collectstatic did not collect django_eventtrack/eventtrack.js")
    page = run(*manage, "render_page", cwd=workdir)
    if "django_eventtrack/eventtrack.js" not in page:
        sys.exit(f"the template tag rendered no script tag:\n{page}")
    dry_run = run(
        *manage, "send_event", "order.placed", "--user-id", "42", "--dry-run", cwd=workdir
    )
    for expected in ("# hackle", "POST https://api.hackle.io/"):
        if expected not in dry_run:
            sys.exit(f"send_event --dry-run printed no {expected!r}:\n{dry_run}")
    if "smoke-secret" in dry_run:
        sys.exit("send_event --dry-run printed the API key")
    where = (
        "import django_eventtrack, pathlib; print(pathlib.Path(django_eventtrack.__file__).parent)"
    )
    installed = run(python, "-c", where, cwd=workdir).strip()
    if not (Path(installed) / "py.typed").is_file() or str(ROOT) in installed:
        sys.exit(f"the smoke project did not use the installed wheel ({installed})")


def main() -> None:
    with tempfile.TemporaryDirectory() as temp:
        workdir = Path(temp)
        wheel, sdist = build(workdir / "dist")
        smoke(wheel, workdir)
    print(f"package: OK ({wheel.name}, {sdist.name})")


if __name__ == "__main__":
    main()

"""tox's in-tree plugin: find interpreters installed with pyenv.

tox (through virtualenv) looks for ``python3.12`` on ``PATH``, where pyenv puts
shims that fail unless that version is selected. This adds each installed
pyenv version's own ``bin`` directory to the end of ``PATH`` while tox looks for
interpreters, so ``tox`` runs every env a developer can run with no
``PYENV_VERSION`` or ``PATH`` set-up. An interpreter already on ``PATH`` wins.
Envs whose interpreter is not found anywhere are skipped and listed at the end
of the run (``skip_missing_interpreters`` in tox.ini).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from tox.config.sets import ConfigSet
from tox.plugin import impl
from tox.session.state import State


def _version_key(path: Path) -> tuple[int, ...]:
    """``3.12.1`` -> (3, 12, 1); names that are not plain versions sort first."""
    try:
        return tuple(int(part) for part in path.name.split("."))
    except ValueError:
        return ()


def pyenv_bin_directories() -> list[str]:
    """Each installed pyenv version's ``bin``, newest first (empty without pyenv)."""
    root = os.environ.get("PYENV_ROOT")
    if not root and shutil.which("pyenv"):
        pyenv = subprocess.run(["pyenv", "root"], capture_output=True, text=True, check=False)  # noqa: S607
        root = pyenv.stdout.strip()
    versions = Path(root) / "versions" if root else Path.home() / ".pyenv" / "versions"
    if not versions.is_dir():
        return []
    ordered = sorted(versions.iterdir(), key=_version_key, reverse=True)
    return [str(path / "bin") for path in ordered if (path / "bin").is_dir()]


@impl
def tox_add_core_config(core_conf: ConfigSet, state: State) -> None:
    path = os.environ.get("PATH", "").split(os.pathsep)
    extra = [directory for directory in pyenv_bin_directories() if directory not in path]
    if extra:
        os.environ["PATH"] = os.pathsep.join([*path, *extra])

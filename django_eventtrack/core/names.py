"""How a setting is named and how a list of names is read, shared by :mod:`.conf` and the
vendor adapters' own settings.

It sits below both: an adapter declares its settings with these parsers, and
:mod:`.conf` resolves every setting (its own and the adapters') with them, so a
vendor module never needs the resolver itself.
"""

from __future__ import annotations

from typing import Any

from django_eventtrack.errors import ConfigurationError


def setting_path(*parts: str) -> str:
    """``EVENTTRACK["VENDORS"]["hackle"]["API_KEY"]`` for the parts given."""
    return "EVENTTRACK" + "".join(f"[{part!r}]" for part in parts).replace("'", '"')


def env_name(*parts: str) -> str:
    """``EVENTTRACK_HACKLE_API_KEY`` for ``("hackle", "API_KEY")``."""
    return "_".join(("EVENTTRACK", *(part.upper() for part in parts)))


def parse_names(value: Any, where: str) -> frozenset[str]:
    """A list of names (or a comma-separated string, as environment variables give it)."""
    names = value.split(",") if isinstance(value, str) else value
    if not isinstance(names, list | tuple | set | frozenset) or not all(
        isinstance(name, str) for name in names
    ):
        raise ConfigurationError(
            f"{where} must be a list of event names (or a comma-separated string)"
        )
    return frozenset(name.strip() for name in names if name.strip())


def parse_bool(value: Any, where: str) -> bool:
    """True or False (``1``/``true``/``yes``/``on`` and their opposites, as environment
    variables give them)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off"}:
        return False
    raise ConfigurationError(f"{where} must be true or false, got {value!r}")

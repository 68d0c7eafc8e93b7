"""How a setting is named and how a list of names is read, shared by :mod:`.conf` and the
vendor adapters' own settings.

It sits below both: an adapter declares its settings with these parsers, and
:mod:`.conf` resolves every setting (its own and the adapters') with them, so a
vendor module never needs the resolver itself.
"""

from __future__ import annotations

from collections.abc import Mapping
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


def parse_name_map(value: Any, where: str) -> dict[str, str]:
    """A map of our event names to another name (``EVENT_NAMES``, Hellotext's ``OBJECTS``),
    or ``"a.b=x,c.d=y"`` as environment variables give it."""
    if isinstance(value, str):
        value = _pairs(value, where)
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) and v for k, v in value.items()
    ):
        raise ConfigurationError(
            f"{where} must map our event names to the vendor's, like "
            '{"product.purchased": "purchase"} (or "product.purchased=purchase,..." in the '
            "environment)"
        )
    return dict(value)


def _pairs(value: str, where: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in value.split(","))):
        ours, sep, theirs = item.partition("=")
        if not sep:
            raise ConfigurationError(f"{where}: {item!r} is not NAME=VENDOR_NAME")
        pairs[ours.strip()] = theirs.strip()
    return pairs

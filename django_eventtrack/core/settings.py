"""How a setting is declared, named and parsed, shared by :mod:`django_eventtrack.conf` and
the vendor adapters.

A setting is declared once: a field, made with :func:`setting`, of the frozen dataclass
that holds its resolved value (``conf.Config``, ``conf.DeliveryOptions``,
``conf.IdentitySettings``, a vendor's ``VendorConfig``). The field gives its type and
default, the declaration its parser; its key is the field's name in capitals unless given,
and its environment variable follows from the key and where the dataclass sits.
:mod:`.conf` derives the rest from the declarations (:func:`declared`): the keys it
accepts, the lookups it makes, the variables check W006 knows.

A parser takes ``(raw value, where to fix it)`` and returns the value or raises
:class:`~django_eventtrack.errors.ConfigurationError` starting with ``where``, which names
the setting and its variable. The parsers every kind of setting shares live here, below
both the resolver and the adapters, so a vendor module never needs the resolver itself.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import MISSING, Field, dataclass, field, fields
from typing import Any
from urllib.parse import urlsplit

from django.utils.module_loading import import_string

from django_eventtrack.core.event import PURPOSE_PATTERN
from django_eventtrack.errors import ConfigurationError

#: A parser: ``(raw value, where to fix it) -> value``.
Parser = Callable[[Any, str], Any]
#: The metadata key of a declaration on its dataclass field.
DECLARATION = "django_eventtrack.setting"
#: The metadata key of a field whose dataclass's settings sit beside its own (not under a key).
GROUP = "django_eventtrack.settings_group"
#: Browsers keep a cookie at most 400 days (RFC 6265bis; Chrome and others cap Max-Age there),
#: so a longer lifetime would only promise what no browser keeps.
MAX_COOKIE_AGE = 400 * 24 * 3600
COOKIE_NAME_PATTERN = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
COOKIE_DOMAIN_PATTERN = re.compile(r"\.?[A-Za-z0-9\-]+(\.[A-Za-z0-9\-]+)*")


@dataclass(frozen=True)
class Setting:
    """How one setting is read; the field it is declared on holds the rest."""

    parse: Parser
    #: The key in its dict; empty: the field's name in capitals.
    key: str = ""
    #: Whether an ``EVENTTRACK_*`` variable may give it (False: dicts, lists of dicts,
    #: callables, which only settings can hold).
    env: bool = True
    #: Read the variable exactly as set (secrets): django-environ would take a value
    #: starting with ``$`` for another variable's name.
    literal: bool = False


def setting(
    parse: Parser,
    default: Any,
    *,
    key: str = "",
    env: bool = True,
    literal: bool = False,
    secret: bool = False,
) -> Any:
    """A dataclass field declaring a setting: ``parse`` reads a configured value, ``default``
    stands when none is (used as given, not parsed). A ``secret`` stays out of the repr."""
    declaration = {DECLARATION: Setting(parse, key, env, literal)}
    if isinstance(default, dict | list | set):  # a fresh copy for each instance
        copy = functools.partial(type(default), default)
        return field(default_factory=copy, repr=not secret, metadata=declaration)
    return field(default=default, repr=not secret, metadata=declaration)


def group(cls: type[Any]) -> Any:
    """A dataclass field holding ``cls``, whose settings sit at this field's level."""
    return field(default_factory=cls, metadata={GROUP: cls})


@dataclass(frozen=True)
class Declared:
    """A setting as :func:`declared` finds it: its field, key, declaration and default."""

    name: str
    key: str
    setting: Setting
    default: Any


def declared(cls: type[Any], *, groups: bool = True) -> Iterator[Declared]:
    """The settings ``cls`` declares, in field order; a :func:`group`'s in its place
    (unless ``groups`` is false: then see :func:`groups_of`)."""
    for each in fields(cls):
        if GROUP in each.metadata:
            if groups:
                yield from declared(each.metadata[GROUP])
        elif DECLARATION in each.metadata:
            found: Setting = each.metadata[DECLARATION]
            yield Declared(each.name, found.key or each.name.upper(), found, _default(each))


def groups_of(cls: type[Any]) -> dict[str, type[Any]]:
    """``cls``'s :func:`group` fields: field name -> the dataclass it holds."""
    return {each.name: each.metadata[GROUP] for each in fields(cls) if GROUP in each.metadata}


def _default(each: Field[Any]) -> Any:
    if each.default_factory is not MISSING:
        return each.default_factory()
    return None if each.default is MISSING else each.default


@functools.lru_cache(maxsize=256)
def setting_path(*parts: str) -> str:
    """``EVENTTRACK["VENDORS"]["hackle"]["API_KEY"]`` for the parts given (kept: the same
    few paths are named in every skip reason routing writes)."""
    return "EVENTTRACK" + "".join(f"[{part!r}]" for part in parts).replace("'", '"')


def env_name(*parts: str) -> str:
    """``EVENTTRACK_HACKLE_API_KEY`` for ``("hackle", "API_KEY")``."""
    return "_".join(("EVENTTRACK", *(part.upper() for part in parts)))


# -- parsers: (raw value, where to fix it) -> value ---------------------------------------------


def parse_bool(value: Any, where: str) -> bool:
    """The one boolean rule: ``True``/``False``, or as text (an environment variable, or a
    settings value written as one) ``1``/``0``, ``true``/``false``, ``yes``/``no``,
    ``on``/``off`` in any case."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off"}:
        return False
    raise ConfigurationError(f"{where} must be true or false, got {value!r}")


def parse_list(value: Any, where: str, expected: str, *, ordered: bool = False) -> tuple[str, ...]:
    """The one list rule: a list of strings, or one comma-separated string (as an environment
    variable gives it); items stripped, empty ones dropped, order kept. ``ordered`` refuses a
    set, whose order is nobody's. ``expected`` says what the list holds, for the error."""
    items = value.split(",") if isinstance(value, str) else value
    kinds = list | tuple if ordered else list | tuple | set | frozenset
    if not isinstance(items, kinds) or not all(isinstance(item, str) for item in items):
        raise ConfigurationError(f"{where} must be {expected}")
    return tuple(item.strip() for item in items if item.strip())


def parse_names(value: Any, where: str) -> frozenset[str]:
    """A set of event names (or any names): :func:`parse_list`'s rule."""
    expected = "a list of event names (or a comma-separated string)"
    return frozenset(parse_list(value, where, expected))


def parse_purposes(value: Any, where: str) -> tuple[str, ...]:
    """Consent purposes (``analytics``, ``marketing``): :func:`parse_list`'s rule, each a
    lowercase name (:data:`~django_eventtrack.core.event.PURPOSE_PATTERN`)."""
    expected = 'a list of purposes like ["analytics"] (or a comma-separated string)'
    found = parse_list(value, where, expected)
    for purpose in found:
        if not PURPOSE_PATTERN.fullmatch(purpose):
            raise ConfigurationError(
                f"{where}: {purpose!r} is not a purpose name (lowercase letters, digits and _, "
                "up to 32 characters, like 'analytics')"
            )
    return tuple(dict.fromkeys(found))


def parse_optional_purposes(value: Any, where: str) -> tuple[str, ...] | None:
    """None (every purpose) or a list of purposes (:func:`parse_purposes`)."""
    return None if value is None else parse_purposes(value, where)


def parse_tcf_purposes(value: Any, where: str) -> Mapping[str, tuple[int, ...]] | None:
    """None, or {our purpose: [TCF purpose numbers, 1 to 24]}: ours is granted when the
    visitor consented to every one of them."""
    if value is None:
        return None
    expected = f'{where} must be a dict like {{"analytics": [8, 9], "marketing": [2, 3, 4]}}'
    if not isinstance(value, Mapping) or not value:
        raise ConfigurationError(expected)
    mapping = {}
    for purpose, numbers in value.items():
        ours = parse_purposes([purpose] if isinstance(purpose, str) else purpose, where)
        if (
            not isinstance(numbers, list | tuple)
            or not numbers
            or not all(
                isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= 24 for n in numbers
            )
        ):
            raise ConfigurationError(
                f"{expected}; {purpose!r} maps to {numbers!r}, not a list of TCF purpose "
                "numbers from 1 to 24"
            )
        mapping[ours[0]] = tuple(numbers)
    return mapping


def parse_event_names(value: Any, where: str) -> dict[str, str]:
    """Our event names to a vendor's: a dict, or ``"a.b=A_B,c.d=C_D"`` as an environment
    variable gives it."""
    expected = (
        "map our event names to the vendor's, like "
        '{"product.purchased": "purchase"} (or "product.purchased=purchase,..." in the '
        "environment)"
    )
    if isinstance(value, str):
        pairs = {}
        for item in parse_list(value, where, expected):
            ours, sep, theirs = item.partition("=")
            if not sep:
                raise ConfigurationError(f"{where}: {item!r} is not NAME=VENDOR_NAME")
            pairs[ours.strip()] = theirs.strip()
        value = pairs
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) and v for k, v in value.items()
    ):
        raise ConfigurationError(f"{where} must {expected}")
    return dict(value)


def parse_count(value: Any, where: str) -> int:
    """A whole number, at least 1."""
    try:
        count = int(value)
    except (TypeError, ValueError):
        raise ConfigurationError(f"{where} must be a whole number, got {value!r}") from None
    if count < 1 or isinstance(value, bool):
        raise ConfigurationError(f"{where} must be at least 1, got {value!r}")
    return count


def parse_seconds(value: Any, where: str) -> float:
    """A positive, finite number."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ConfigurationError(f"{where} must be a number, got {value!r}") from None
    if not seconds > 0 or seconds == float("inf"):
        raise ConfigurationError(f"{where} must be a positive number, got {value!r}")
    return seconds


def parse_optional_seconds(value: Any, where: str) -> float | None:
    """A positive, finite number of seconds (a numeric string from the environment), or
    ``False`` (``off`` in the environment) for none: a limit that may be turned off."""
    if value is False or (isinstance(value, str) and value.strip().lower() in ("off", "false")):
        return None
    try:
        seconds = -1.0 if isinstance(value, bool) else float(value)
    except (TypeError, ValueError):
        seconds = -1.0
    if not 0 < seconds < float("inf"):
        raise ConfigurationError(
            f"{where} must be a positive number of seconds, or False for no limit; got {value!r}"
        )
    return seconds


def parse_timeout(value: Any, where: str) -> float:
    """Seconds an HTTP request may wait: more than 0, at most 300."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ConfigurationError(f"{where} must be a number of seconds, got {value!r}") from None
    if not 0 < seconds <= 300:
        raise ConfigurationError(f"{where} must be between 0 and 300 seconds, got {value!r}")
    return seconds


def parse_url(value: Any, where: str) -> str:
    """An http(s) URL with a host and no credentials, query or fragment; no trailing ``/``."""
    if not isinstance(value, str):
        raise ConfigurationError(f"{where} must be a URL string, got {type(value).__name__}")
    parts = urlsplit(value.strip())
    if "@" in parts.netloc:
        # Never echoed: the part before "@" would be a password.
        raise ConfigurationError(
            f"{where} must not contain credentials (user:password@); put them in the "
            "vendor's credential settings"
        )
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(
            f"{where} must be an http(s) URL with a host, like https://api.example.com; "
            f"got {value!r}"
        )
    if parts.query or parts.fragment:
        raise ConfigurationError(f"{where} must not have a query string or fragment")
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


def parse_secret(value: Any, where: str) -> str:
    """A credential as given, surrounding whitespace aside: ``$``, ``\\``, quotes and
    inner spaces are the secret's own. Control characters (a pasted line break) would
    end an HTTP header early, so they are refused."""
    if not isinstance(value, str):
        raise ConfigurationError(f"{where} must be a string, got {type(value).__name__}")
    secret: str = value.strip()
    if not secret.isprintable():
        raise ConfigurationError(
            f"{where} contains a control character (a line break or tab?); remove it"
        )
    return secret


def parse_callable(value: Any, where: str) -> Callable[..., Any]:
    """A callable, or the dotted path of one (imported now): ``IDENTITY``'s ``USER_ID`` and
    ``CONSENT``, a ``MODEL_EVENTS`` hook's ``properties`` and ``identity``."""
    if callable(value):
        return value  # type: ignore[no-any-return]
    if not isinstance(value, str) or not value:
        raise ConfigurationError(
            f"{where}: must be a callable or a dotted path to one; got {value!r}"
        )
    try:
        found = import_string(value)
    except Exception as exc:
        raise ConfigurationError(f"{where}: cannot import {value!r}: {exc}") from None
    if not callable(found):
        raise ConfigurationError(f"{where}: {value!r} is a {type(found).__name__}, not a callable")
    return found  # type: ignore[no-any-return]


def parse_bearer_token(value: Any, where: str) -> str:
    """A secret a client presents as ``Authorization: Bearer <token>``: one word."""
    token = parse_secret(value, where)
    if any(character.isspace() for character in token):
        raise ConfigurationError(
            f"{where} contains whitespace; a bearer token is one word (letters, digits, "
            "punctuation)"
        )
    return token


def parse_cookie_name(value: Any, where: str) -> str:
    if not isinstance(value, str) or not COOKIE_NAME_PATTERN.fullmatch(value):
        raise ConfigurationError(
            f"{where} must be a cookie name of letters, digits, _ . and -, got {value!r}"
        )
    return value


def parse_max_age(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(
            f"{where} must be a positive whole number of seconds, got {value!r}"
        )
    if value > MAX_COOKIE_AGE:
        raise ConfigurationError(
            f"{where} must be at most {MAX_COOKIE_AGE} seconds "
            f"(400 days: browsers keep no cookie longer), got {value!r}"
        )
    return value


def parse_cookie_domain(value: Any, where: str) -> str:
    if not isinstance(value, str) or not COOKIE_DOMAIN_PATTERN.fullmatch(value):
        raise ConfigurationError(
            f"{where} must be None or a domain like '.example.com', got {value!r}"
        )
    return value


def parse_optional_cookie(value: Any, where: str) -> str | None:
    return None if value is None else parse_cookie_name(value, where)

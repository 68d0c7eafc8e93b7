"""Model-signal hooks: a model being created, updated or deleted, or a field
reaching a value, tracks a named event.

Declare hooks in ``EVENTTRACK["MODEL_EVENTS"]`` or in code with :func:`register`
or the :func:`model_event` decorator. Declarations are checked by the system
check framework (``manage.py check``) and a bad one is skipped, never an error
at save time; a hook that fails while a model is saved (its properties callable
raises, the event is invalid, the outbox write fails) is logged at ERROR with
its traceback and the save goes on. The event is written to the outbox in the
save's transaction, so a rolled-back save sends nothing.

Transitions (``when``) compare the watched fields' values before and after a
save. "Before" is what that instance loaded from the database (or last saved):
it is remembered on ``post_init`` for models with transition hooks, watched
fields only. A watched field that was deferred (``only()``/``defer()``) and is
being saved is read with one query in ``pre_save``. A row changed elsewhere
after the instance loaded it is not seen. Saves through ``QuerySet.update()``,
``bulk_create()`` and fixtures (``raw`` saves) send no signals, hence no events.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from django.apps import apps
from django.core import checks
from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.db import models, router, transaction
from django.db.models.signals import ModelSignal, post_delete, post_init, post_save, pre_save

from django_eventtrack import conf
from django_eventtrack.api import track
from django_eventtrack.core.event import Identity, TrackedEvent, validate_name
from django_eventtrack.errors import ConfigurationError, InvalidEvent
from django_eventtrack.models import Event

logger = logging.getLogger("django_eventtrack.hooks")  # the logger docs/model-hooks.md names

#: What a hook reacts to: a new row, a change to an existing row, either, or a deletion.
ON_CHOICES = ("create", "update", "save", "delete")
#: Keys a ``MODEL_EVENTS`` entry may hold.
KEYS = frozenset({"model", "on", "event", "properties", "when", "identity", "vendors"})

PropertiesBuilder = Callable[[Any], Mapping[str, Any]]
IdentityBuilder = Callable[[Any], Identity | Mapping[str, Any] | None]
F = TypeVar("F", bound=PropertiesBuilder)

DISPATCH_UID = "django_eventtrack.hooks"
#: Instance attributes: watched values as loaded or last saved, and as they were before this save.
LOADED = "_eventtrack_loaded"
BEFORE = "_eventtrack_before"


@dataclass(frozen=True)
class Declaration:
    """A hook as declared, unchecked: ``EVENTTRACK["MODEL_EVENTS"][i]`` or a call in code."""

    values: Mapping[str, Any]
    #: ``EVENTTRACK["MODEL_EVENTS"][1]`` or ``register('shop.Order', ...)``, for messages.
    origin: str
    from_settings: bool = False

    def where(self, key: str) -> str:
        if self.from_settings:
            return f'{self.origin}["{key}"]'
        return f"{self.origin}, argument {key}"


@dataclass(frozen=True)
class Hook:
    """A checked declaration, ready to fire."""

    model: type[models.Model]
    on: str
    event: str
    properties: PropertiesBuilder
    #: attname -> value the field must reach (empty: no condition).
    when: Mapping[str, Any]
    identity: IdentityBuilder | None
    vendors: tuple[str, ...] | None
    origin: str


_declared: list[Declaration] = []
_hooks: dict[type[models.Model], tuple[Hook, ...]] = {}
#: Per model, the attnames its transition hooks watch.
_watched: dict[type[models.Model], frozenset[str]] = {}
_connected: list[tuple[ModelSignal, type[models.Model]]] = []
_active = False


def register(
    model: str | type[models.Model],
    on: str,
    event: str,
    properties: str | PropertiesBuilder | None = None,
    when: Mapping[str, Any] | None = None,
    identity: str | IdentityBuilder | None = None,
    vendors: Iterable[str] | None = None,
) -> None:
    """Track ``event`` when ``model`` is saved or deleted as ``on`` and ``when`` say.

    Takes the same values as an ``EVENTTRACK["MODEL_EVENTS"]`` entry. Mistakes
    are reported by ``manage.py check``, not raised here.
    """
    values = {
        "model": model,
        "on": on,
        "event": event,
        "properties": properties,
        "when": when,
        "identity": identity,
        "vendors": vendors,
    }
    _declare(Declaration(values, f"register({_label(model)!r}, on={on!r}, event={event!r})"))


def model_event(
    model: str | type[models.Model],
    on: str,
    event: str,
    when: Mapping[str, Any] | None = None,
    identity: str | IdentityBuilder | None = None,
    vendors: Iterable[str] | None = None,
) -> Callable[[F], F]:
    """Decorate the properties builder of a hook; see :func:`register`."""

    def decorator(function: F) -> F:
        values = {
            "model": model,
            "on": on,
            "event": event,
            "properties": function,
            "when": when,
            "identity": identity,
            "vendors": vendors,
        }
        origin = f"@model_event on {function.__module__}.{function.__qualname__}"
        _declare(Declaration(values, origin))
        return function

    return decorator


def _label(model: object) -> object:
    meta = getattr(model, "_meta", None)
    return getattr(meta, "label", model)


def _declare(declaration: Declaration) -> None:
    _declared.append(declaration)
    if _active:
        reconnect()


def declarations() -> list[Declaration]:
    """Every declaration: the settings' first, then those made in code."""
    raw = conf.get_config().model_events
    from_settings = [
        Declaration(values, f"{conf.setting_path('MODEL_EVENTS')}[{index}]", from_settings=True)
        for index, values in enumerate(raw)
    ]
    return [*from_settings, *_declared]


# -- checking ----------------------------------------------------------------------------


def resolve(declaration: Declaration) -> tuple[Hook | None, list[str]]:
    """The hook, or ``None`` and one message per problem, each naming where to fix it."""
    problems: list[str] = []
    values = declaration.values

    def attempt(key: str, parse: Callable[[Any, str], Any], default: Any = None) -> Any:
        """``parse`` the value of ``key`` the way conf parses every setting; a problem is
        kept (the hook is then disabled), never raised."""
        try:
            return parse(values.get(key), declaration.where(key))
        except ConfigurationError as exc:
            problems.append(str(exc))
            return default

    unknown = sorted(set(values) - KEYS)
    if unknown:
        problems.append(f"{declaration.origin} has unknown keys {unknown}; expected {sorted(KEYS)}")
    model = attempt("model", _model)
    on = attempt("on", _on)
    event = attempt("event", _event)
    properties = attempt("properties", _optional_callable)
    identity = attempt("identity", _optional_callable)
    vendors = attempt("vendors", _vendors)
    if model and on:
        when = attempt("when", lambda value, where: _when(model, on, value, where), {})
    else:
        when = {}
    if problems:
        return None, problems
    hook = Hook(
        model=model,
        on=on,
        event=event,
        properties=properties or default_properties,
        when=when,
        identity=identity,
        vendors=vendors,
        origin=declaration.origin,
    )
    return hook, []


def default_properties(instance: models.Model) -> dict[str, Any]:
    """``{"model": "shop.Order", "id": "42"}``: what a hook without ``properties`` sends."""
    return {"model": instance._meta.label, "id": str(instance.pk)}


# -- parsers: (raw value, where to fix it) -> value, as in conf ----------------------------


def _model(value: Any, where: str) -> type[models.Model]:
    if isinstance(value, type) and issubclass(value, models.Model):
        return value
    if not isinstance(value, str) or not value:
        raise ConfigurationError(
            f'{where}: must be "app_label.ModelName", like "shop.Order"; got {value!r}'
        )
    try:
        return apps.get_model(value)
    except (LookupError, ValueError) as exc:
        raise ConfigurationError(f"{where}: names no installed model: {exc}") from None


def _on(value: Any, where: str) -> str:
    if value not in ON_CHOICES:
        raise ConfigurationError(f"{where}: must be one of {', '.join(ON_CHOICES)}; got {value!r}")
    return str(value)


def _event(value: Any, where: str) -> str:
    if value is None:
        raise ConfigurationError(
            f"{where}: is required: the event name to track, like 'order.shipped'"
        )
    try:
        return validate_name(value)
    except InvalidEvent as exc:
        raise ConfigurationError(f"{where}: {exc}") from None


def _optional_callable(value: Any, where: str) -> Callable[[Any], Any] | None:
    return None if value is None else conf.parse_callable(value, where)


def _vendors(value: Any, where: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ConfigurationError(f"{where}: must be a list of vendor names; got {value!r}")
    names = tuple(value)
    adapters = conf.get_config().adapters
    unknown = [name for name in names if name not in adapters]
    if unknown:
        raise ConfigurationError(
            f"{where}: names unknown vendors {unknown}; the vendors are {sorted(adapters)}"
        )
    return names


def _when(model: type[models.Model], on: str, value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if on == "delete":
        raise ConfigurationError(f'{where}: is not supported with "on": "delete"; remove it')
    if not isinstance(value, Mapping) or not value:
        raise ConfigurationError(
            f"{where}: must be a non-empty dict of field name to value, "
            'like {"status": "shipped"}'
        )
    when = {}
    for name, expected in value.items():
        try:
            field = model._meta.get_field(name)
        except FieldDoesNotExist:
            raise ConfigurationError(
                f"{where}: {model._meta.label} has no field {name!r}"
            ) from None
        if not field.concrete or field.many_to_many or not isinstance(field, models.Field):
            raise ConfigurationError(
                f"{where}: {model._meta.label}.{name} is not a column to compare"
            )
        try:
            when[field.attname] = field.to_python(expected)
        except (ValidationError, TypeError, ValueError) as exc:
            raise ConfigurationError(
                f"{where}: {expected!r} is not a valid {model._meta.label}.{name}: "
                f"{'; '.join(getattr(exc, 'messages', [str(exc)]))}",
            ) from None
    return when


def check_model_events(**kwargs: Any) -> list[checks.CheckMessage]:
    """E101: one error per problem in a declared hook (which is then disabled).
    W101: a hook whose events a routed vendor will skip every time, with the vendor's
    reason: the event's name (not a Hellotext action, not a registered PrimeData event
    type) or, for a hook without ``properties``, what the default properties lack (a
    Hellotext ``order.shipped`` needs its order).

    A broken ``EVENTTRACK`` is reported by the configuration check (E001); only
    the hooks declared in code are checked then.
    """
    try:
        found = declarations()
        config: conf.Config | None = conf.get_config()
    except Exception:  # reported by the configuration check; code hooks still count
        found, config = list(_declared), None
    messages: list[checks.CheckMessage] = []
    for declaration in found:
        hook, problems = resolve(declaration)
        messages += [
            checks.Error(
                problem,
                hint="This hook is disabled until fixed; see docs/model-hooks.md.",
                id="eventtrack.E101",
            )
            for problem in problems
        ]
        if hook is not None and config is not None:
            messages += _refused_names(hook, config)
    return messages


def _refused_names(hook: Hook, config: conf.Config) -> list[checks.Warning]:
    """Ask each routed vendor's adapter why it would skip this hook's events: by name
    alone, or, when the properties are the defaults (known without an instance), the
    whole event as the hook would send it, for a visitor every vendor can identify."""
    probe = _probe(hook, config)
    refusals = [
        (
            adapter.display_name,
            adapter.skip_reason(probe) if probe else adapter.name_refusal(hook.event),
        )
        for name, vendor in config.active_vendors.items()
        if (hook.vendors is None or name in hook.vendors)
        and (vendor.events is None or hook.event in vendor.events)
        for adapter in (config.adapter(name),)
    ]
    return [
        checks.Warning(
            f"{hook.origin}: {vendor} will skip every one of these events: {reason}",
            hint=_HINT,
            id="eventtrack.W101",
        )
        for vendor, reason in refusals
        if reason
    ]


_HINT = (
    'Give the hook "properties" that the vendor takes, or leave the vendor out with '
    '"vendors"; see docs/model-hooks.md and docs/vendors.md.'
)


def _probe(hook: Hook, config: conf.Config) -> TrackedEvent | None:
    """The event a hook with the default properties sends (None for other properties:
    what a callable returns is known only once an instance is saved)."""
    if hook.properties is not default_properties:
        return None
    known: dict[str, Any] = {name: "probe" for name in config.vendor_id_names}
    return TrackedEvent.create(
        hook.event,
        {"model": hook.model._meta.label, "id": "1"},
        identity=Identity("1", "probe", **known),
    )


# -- connecting --------------------------------------------------------------------------


def connect_configured() -> None:
    """Connect every valid hook (called from ``AppConfig.ready()``); invalid ones are skipped."""
    global _active
    _active = True
    reconnect()


def reconnect() -> None:
    """Rebuild the hooks from the settings and code and (re)connect their signals.

    Safe to call any number of times: receivers are connected with a
    ``dispatch_uid`` per model and signal, so nothing fires twice.
    """
    try:
        found = declarations()
    except Exception:  # reported by the configuration check; code hooks still count
        found = list(_declared)
    hooks: dict[type[models.Model], list[Hook]] = {}
    for declaration in found:
        hook, _ = resolve(declaration)
        if hook is not None:
            hooks.setdefault(hook.model, []).append(hook)
    _disconnect()
    _hooks.clear()
    _hooks.update({model: tuple(model_hooks) for model, model_hooks in hooks.items()})
    _watched.clear()
    for model, model_hooks in _hooks.items():
        watched = frozenset(attname for hook in model_hooks for attname in hook.when)
        if watched:
            _watched[model] = watched
            _connect(post_init, _remember_loaded, model)
            _connect(pre_save, _remember_before, model)
        if any(hook.on != "delete" for hook in model_hooks):
            _connect(post_save, _after_save, model)
        if any(hook.on == "delete" for hook in model_hooks):
            _connect(post_delete, _after_delete, model)


def _connect(signal: ModelSignal, receiver: Callable[..., None], model: type[models.Model]) -> None:
    signal.connect(receiver, sender=model, weak=False, dispatch_uid=DISPATCH_UID)
    _connected.append((signal, model))


def _disconnect() -> None:
    while _connected:
        signal, model = _connected.pop()
        signal.disconnect(sender=model, dispatch_uid=DISPATCH_UID)


def _on_settings_changed(**kwargs: Any) -> None:
    if _active:
        reconnect()


# Rebuilt when EVENTTRACK changes (conf holds the one setting_changed receiver).
conf.changed.connect(_on_settings_changed, dispatch_uid=DISPATCH_UID)


# -- firing ------------------------------------------------------------------------------


def _remember_loaded(sender: type[models.Model], instance: models.Model, **kwargs: Any) -> None:
    loaded = instance.__dict__
    instance.__dict__[LOADED] = {a: loaded[a] for a in _watched.get(sender, ()) if a in loaded}


def _remember_before(
    sender: type[models.Model],
    instance: models.Model,
    raw: bool,
    using: str,
    update_fields: frozenset[str] | None,
    **kwargs: Any,
) -> None:
    if raw or instance._state.adding:
        # A new row has no "before"; one saved by explicit pk counts as unknown.
        instance.__dict__[BEFORE] = {}
        return
    watched = _watched.get(sender, frozenset())
    before = dict(instance.__dict__.get(LOADED, {}))
    missing = [attname for attname in watched if attname not in before]
    if missing and _saved(sender, watched, update_fields):
        row = sender._base_manager.using(using).filter(pk=instance.pk).values(*missing).first()
        before.update(row or {})
    instance.__dict__[BEFORE] = before


def _saved(
    model: type[models.Model], watched: frozenset[str], update_fields: frozenset[str] | None
) -> frozenset[str]:
    """The watched attnames this save writes."""
    if update_fields is None:
        return watched
    written = {getattr(model._meta.get_field(name), "attname", name) for name in update_fields}
    return watched & written


def _after_save(
    sender: type[models.Model],
    instance: models.Model,
    created: bool,
    raw: bool,
    update_fields: frozenset[str] | None,
    **kwargs: Any,
) -> None:
    watched = _watched.get(sender, frozenset())
    before: dict[str, Any] = instance.__dict__.pop(BEFORE, {})
    saved = _saved(sender, watched, update_fields)
    values = instance.__dict__
    after = {a: values.get(a, _UNKNOWN) if a in saved else before.get(a, _UNKNOWN) for a in watched}
    if watched:
        instance.__dict__[LOADED] = {a: v for a, v in after.items() if v is not _UNKNOWN}
    if raw:
        return
    for hook in _hooks.get(sender, ()):
        if _fires(hook, created, before, after):
            _fire(hook, instance)


def _after_delete(sender: type[models.Model], instance: models.Model, **kwargs: Any) -> None:
    for hook in _hooks.get(sender, ()):
        if hook.on == "delete":
            _fire(hook, instance)


_UNKNOWN = object()


def _fires(hook: Hook, created: bool, before: Mapping[str, Any], after: Mapping[str, Any]) -> bool:
    if hook.on == "delete" or hook.on == ("update" if created else "create"):
        return False
    if not hook.when:
        return True
    if not _matches(hook.when, after):
        return False
    # An unknown previous value counts as not matching.
    return created or not _matches(hook.when, before)


def _matches(when: Mapping[str, Any], values: Mapping[str, Any]) -> bool:
    return all(attname in values and values[attname] == v for attname, v in when.items())


def _fire(hook: Hook, instance: models.Model) -> None:
    """Track the hook's event for ``instance``; log, never raise, if anything fails."""
    try:
        properties = hook.properties(instance)
        identity = _identity(hook, instance)
        # A savepoint: a failed outbox write must not spoil the caller's transaction.
        with transaction.atomic(using=router.db_for_write(Event)):
            track(hook.event, properties, vendors=hook.vendors, identity=identity)
    except Exception:
        logger.exception(
            "%s: tracking %r for %s pk=%s failed; the save went on without it",
            hook.origin,
            hook.event,
            instance._meta.label,
            instance.pk,
        )


def _identity(hook: Hook, instance: models.Model) -> Identity | Mapping[str, Any] | None:
    """The hook's identity for ``instance``; ``None`` means the current request's visitor.

    An identity the hook returns replaces the current visitor's, so an admin
    shipping an order does not lend the customer's event their own browser ids.
    """
    return hook.identity(instance) if hook.identity else None

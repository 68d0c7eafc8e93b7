"""Server-side tracking events for Django, delivered to Hellotext, Hackle, Browsee and PrimeData.

The public entry points are :func:`track` and :func:`identify`, and their async
forms :func:`atrack` and :func:`aidentify`; a person's privacy requests are
:func:`withdraw_consent`, :func:`grant_consent`, :func:`forget` and
:func:`unforget`. They are imported lazily so that importing this package never
touches Django's app registry.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django_eventtrack.core.version import __version__
from django_eventtrack.errors import PlanViolation

if TYPE_CHECKING:
    from django_eventtrack.api import aidentify, atrack, identify, track
    from django_eventtrack.privacy import forget, grant_consent, unforget, withdraw_consent
else:

    def track(*args: Any, **kwargs: Any) -> Any:
        from django_eventtrack.api import track as _track

        return _track(*args, **kwargs)

    track.__doc__ = "Track an event; see :func:`django_eventtrack.api.track`."

    def identify(*args: Any, **kwargs: Any) -> Any:
        from django_eventtrack.api import identify as _identify

        return _identify(*args, **kwargs)

    identify.__doc__ = "Identify a visitor as a user; see :func:`django_eventtrack.api.identify`."

    async def atrack(*args: Any, **kwargs: Any) -> Any:
        from django_eventtrack.api import atrack as _atrack

        return await _atrack(*args, **kwargs)

    atrack.__doc__ = "Track an event from async code; see :func:`django_eventtrack.api.track`."

    async def aidentify(*args: Any, **kwargs: Any) -> Any:
        from django_eventtrack.api import aidentify as _aidentify

        return await _aidentify(*args, **kwargs)

    aidentify.__doc__ = (
        "Identify a visitor from async code; see :func:`django_eventtrack.api.identify`."
    )

    def withdraw_consent(*args: Any, **kwargs: Any) -> Any:
        from django_eventtrack.privacy import withdraw_consent as _withdraw_consent

        return _withdraw_consent(*args, **kwargs)

    withdraw_consent.__doc__ = (
        "Withdraw a person's consent; see :func:`django_eventtrack.privacy.withdraw_consent`."
    )

    def grant_consent(*args: Any, **kwargs: Any) -> Any:
        from django_eventtrack.privacy import grant_consent as _grant_consent

        return _grant_consent(*args, **kwargs)

    grant_consent.__doc__ = (
        "Lift a withdrawal of consent; see :func:`django_eventtrack.privacy.grant_consent`."
    )

    def forget(*args: Any, **kwargs: Any) -> Any:
        from django_eventtrack.privacy import forget as _forget

        return _forget(*args, **kwargs)

    forget.__doc__ = "Erase a person; see :func:`django_eventtrack.privacy.forget`."

    def unforget(*args: Any, **kwargs: Any) -> Any:
        from django_eventtrack.privacy import unforget as _unforget

        return _unforget(*args, **kwargs)

    unforget.__doc__ = (
        "Track a forgotten person again; see :func:`django_eventtrack.privacy.unforget`."
    )

__all__ = [
    "PlanViolation",
    "__version__",
    "aidentify",
    "atrack",
    "forget",
    "grant_consent",
    "identify",
    "track",
    "unforget",
    "withdraw_consent",
]

"""Server-side tracking events for Django, delivered to Hellotext, Hackle, Browsee and PrimeData.

The public entry points are :func:`track` and :func:`identify`, and their async
forms :func:`atrack` and :func:`aidentify`; they are imported lazily so that
importing this package never touches Django's app registry.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django_eventtrack.core.version import __version__
from django_eventtrack.errors import PlanViolation

if TYPE_CHECKING:
    from django_eventtrack.api import aidentify, atrack, identify, track
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

__all__ = ["PlanViolation", "__version__", "aidentify", "atrack", "identify", "track"]

"""The public path of the middleware: ``django_eventtrack.middleware.EventTrackMiddleware``
(it lives in :mod:`django_eventtrack.web.middleware`)."""

from django_eventtrack.web.middleware import EventTrackMiddleware

__all__ = ["EventTrackMiddleware"]

"""The model hooks' first import path, kept for projects that use it: they live in
:mod:`django_eventtrack.model_hooks`."""

from django_eventtrack.model_hooks import model_event, register

__all__ = ["model_event", "register"]

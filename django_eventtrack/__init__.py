"""Server-side tracking events for Django, delivered to Hellotext, Hackle, Browsee and PrimeData."""

from __future__ import annotations

__version__ = "0.1.0"

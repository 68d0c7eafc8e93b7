"""Keep secrets out of everything a human or a log can read."""

from __future__ import annotations

from collections.abc import Iterable

MASK = "********"
MAX_MESSAGE_CHARS = 1000


def redact(text: str, secrets: Iterable[str]) -> str:
    """Replace every occurrence of each secret in ``text`` with a mask.

    Secrets shorter than four characters are left alone: masking them would
    mangle ordinary words and they are not credentials anyone issues.
    """
    for secret in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def truncate(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """Cut ``text`` to ``limit`` characters, saying that it was cut."""
    if len(text) <= limit:
        return text
    return text[: limit - 1] + "…"

"""The hashed form of a person's ids, under which privacy state is kept.

A suppression entry or a consent withdrawal must be found again from the ids a
later ``track()`` carries, without the database holding those ids in the clear:
each id is stored as an HMAC-SHA256 of ``"<key>:<value>"`` (``user_id:42``) under a
key derived from ``SECRET_KEY``. A database dump alone then names nobody, and
the same id under another key (a user id and an anonymous id that happen to be
equal) is another entry. Rotating ``SECRET_KEY`` keeps the old entries found as
long as the old key is in ``SECRET_KEY_FALLBACKS``.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from collections.abc import Iterable

from django.conf import settings

#: Separates this use of ``SECRET_KEY`` from Django's own (signing, sessions).
SALT = b"django_eventtrack.privacy.subject"


def digest(key: str, value: str) -> str:
    """The stored form of the id ``value`` under identity key ``key`` (64 hex digits),
    with the current ``SECRET_KEY``."""
    return _digest(_secret(settings.SECRET_KEY), key, value)


def digests(ids: Iterable[tuple[str, str]]) -> list[str]:
    """Every stored form ``ids`` may have: under ``SECRET_KEY`` and each of
    ``SECRET_KEY_FALLBACKS``."""
    secrets = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", ())]
    return [_digest(_secret(secret), key, value) for secret in secrets for key, value in ids]


@functools.lru_cache(maxsize=64)
def _secret(secret_key: str | bytes) -> bytes:
    raw = secret_key.encode() if isinstance(secret_key, str) else secret_key
    return hashlib.sha256(SALT + raw).digest()


@functools.lru_cache(maxsize=8192)
def _digest(secret: bytes, key: str, value: str) -> str:
    """Cached: ``track()`` hashes the same visitor's ids event after event."""
    return hmac.new(secret, f"{key}:{value}".encode(), hashlib.sha256).hexdigest()

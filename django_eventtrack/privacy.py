"""Privacy as data: a person withdrawing consent, granting it again, being forgotten.

Each call names the person by the ids ``track()`` knows them by (``user_id``,
``anonymous_id``, the vendors' ids as keywords: ``profile``, ``session``,
``device_id``...) and/or a ``request`` (its visitor's ids), and acts in the
caller's transaction: it commits or rolls back with the caller's data, and once
it has committed nothing it stopped is sent (a request already under way
finishes). The ids are kept hashed (:mod:`django_eventtrack.core.subject_keys`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import router, transaction
from django.http import HttpRequest

from django_eventtrack.conf import get_config
from django_eventtrack.core.event import Identity, purposes
from django_eventtrack.errors import InvalidEvent
from django_eventtrack.models import ErasureRequest, PrivacySubject
from django_eventtrack.outbox import consent, erasure
from django_eventtrack.web.identity import from_request


def withdraw_consent(
    purposes: Iterable[str],
    request: HttpRequest | None = None,
    user_id: str | int | None = None,
    anonymous_id: str | None = None,
    **vendor_ids: str | None,
) -> int:
    """The person withdraws consent for ``purposes`` (``["marketing"]``): what is still
    to be sent about them to the vendors serving those purposes is skipped
    ("consent withdrawn for ..."), and their later events are not sent there, whatever
    consent they carry, until :func:`grant_consent`. Returns how many waiting
    deliveries were skipped."""
    ids = person("withdraw_consent", request, user_id, anonymous_id, vendor_ids)
    withdrawn = _purposes("withdraw_consent", purposes)
    with transaction.atomic(using=router.db_for_write(PrivacySubject)):
        return consent.withdraw(ids, withdrawn)


def grant_consent(
    purposes: Iterable[str],
    request: HttpRequest | None = None,
    user_id: str | int | None = None,
    anonymous_id: str | None = None,
    **vendor_ids: str | None,
) -> None:
    """Lift the person's withdrawal of ``purposes``: their later events follow the consent
    they carry again (what was skipped stays skipped)."""
    ids = person("grant_consent", request, user_id, anonymous_id, vendor_ids)
    granted = _purposes("grant_consent", purposes)
    with transaction.atomic(using=router.db_for_write(PrivacySubject)):
        consent.grant(ids, granted)


def forget(
    user_id: str | int | None = None,
    anonymous_id: str | None = None,
    *,
    request: HttpRequest | None = None,
    source: str = "forget()",
    **vendor_ids: str | None,
) -> ErasureRequest:
    """Erase the person, in one transaction: what is still to be sent about them is
    skipped ("erased"), their stored events scrubbed (properties, identity and
    ``vendor_extra`` removed, the rows kept), their remembered vendor profiles and
    sessions deleted, and later ``track()`` and ``identify()`` for any of their ids
    store and send nothing until :func:`unforget`. Returns the erasure request, whose
    tasks say what staff must delete at each vendor (none offers a deletion API).
    ``source`` says who asked, for the admin."""
    ids = person("forget", request, user_id, anonymous_id, vendor_ids)
    with transaction.atomic(using=router.db_for_write(PrivacySubject)):
        return erasure.forget(ids, source=source)


def unforget(
    user_id: str | int | None = None,
    anonymous_id: str | None = None,
    *,
    request: HttpRequest | None = None,
    **vendor_ids: str | None,
) -> int:
    """Track the person again (they signed up again and consented); what was erased
    stays erased. Returns how many of the ids given were forgotten."""
    ids = person("unforget", request, user_id, anonymous_id, vendor_ids)
    with transaction.atomic(using=router.db_for_write(PrivacySubject)):
        return erasure.unforget(ids)


def person(
    call: str,
    request: HttpRequest | None,
    user_id: str | int | None,
    anonymous_id: str | None,
    vendor_ids: dict[str, Any],
) -> list[tuple[str, str]]:
    """The (identity key, id) pairs naming the person: those given, then ``request``'s
    visitor's. An unknown keyword is a ``TypeError``; no id at all an
    :class:`InvalidEvent`."""
    config = get_config()
    config.check_vendor_ids(call, vendor_ids)
    given = Identity.from_ids({"user_id": user_id, "anonymous_id": anonymous_id, **vendor_ids})
    if request is not None:
        given = given.merged(from_request(request))
    ids = list(given.ids.items())
    if not ids:
        raise InvalidEvent(
            f"{call}() needs the person's ids: user_id=, anonymous_id=, a vendor's id "
            f"({', '.join(config.vendor_id_names)}) or a request=",
            field="user_id",
        )
    return ids


def _purposes(call: str, given: object) -> frozenset[str]:
    if isinstance(given, bool) or given is None:
        raise InvalidEvent(
            f'{call}() takes a list of purposes like ["marketing"], got {given!r}',
            field="purposes",
        )
    named = purposes(given, "purposes") or frozenset()
    known = get_config().purposes
    unknown = sorted(named - known)
    problem = f"names {unknown[0]!r}, which no vendor serves" if unknown else ""
    if not named:
        problem = "needs at least one purpose"
    if problem:
        raise InvalidEvent(
            f"{call}() {problem}; the vendors' purposes are {', '.join(sorted(known))}",
            field="purposes",
        )
    return named

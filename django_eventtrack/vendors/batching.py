"""Cutting a vendor's due events into requests: by the vendor's batch key, count and bytes."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING

from django_eventtrack.vendors.base import VendorAdapter

if TYPE_CHECKING:
    from django_eventtrack.core.event import TrackedEvent


def request_batches(
    adapter: VendorAdapter, events: Sequence[TrackedEvent], max_bytes: int
) -> list[list[int]]:
    """``events`` (by index, in order) cut into one request's worth each: only events of
    one :meth:`~django_eventtrack.vendors.base.VendorAdapter.batch_key` together, at most
    the adapter's ``max_batch_size`` of them, whose sizes (:attr:`TrackedEvent.size`) add
    up to at most ``max_bytes`` (a larger event goes alone), and alone an event whose extra
    is laid over the whole request
    (:meth:`~django_eventtrack.vendors.base.VendorAdapter.build_request`)."""
    groups: dict[Hashable, list[int]] = {}
    for index, event in enumerate(events):
        groups.setdefault(adapter.batch_key(event), []).append(index)
    return [
        indexes[cut]
        for indexes in groups.values()
        for cut in _cuts(adapter, [events[index] for index in indexes], max_bytes)
    ]


def _cuts(adapter: VendorAdapter, events: Sequence[TrackedEvent], max_bytes: int) -> list[slice]:
    """:func:`request_batches` for events that may share a request: cut in order."""
    if adapter.max_batch_size == 1:
        return [slice(index, index + 1) for index in range(len(events))]
    cuts: list[slice] = []
    start = size = 0
    for index, event in enumerate(events):
        if adapter.request_extra(event):
            cuts += [slice(start, index)] if index > start else []
            cuts.append(slice(index, index + 1))
            start, size = index + 1, 0
            continue
        full = index - start >= adapter.max_batch_size or size + event.size > max_bytes
        if full and index > start:
            cuts.append(slice(start, index))
            start, size = index, 0
        size += event.size
    return cuts + ([slice(start, len(events))] if start < len(events) else [])

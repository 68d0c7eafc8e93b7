"""A decoder for the IAB's TCF v2 consent string (the ``euconsent-v2`` cookie's value).

A TC string is segments separated by dots; the first, the *core* string, is a
bit field in web-safe base64 without padding. Its fields, in order and width,
are the IAB Tech Lab's "Consent string and vendor list formats v2": what a site
needs from it here is which of the (up to 24) TCF purposes the visitor
consented to, which the settings map to this library's purposes. The vendor
sections are decoded too (bit fields and ranges), so a string is read whole and
a damaged one is refused rather than half-read.

Only version 2 strings are read (TCF v2.0 to v2.2 share the core layout); the
other segments (disclosed vendors, publisher purposes) are not needed and are
ignored.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import UTC, datetime

#: The longest consent string read (a cookie is at most 4 KB).
MAX_LENGTH = 4096


class TCStringError(ValueError):
    """The string is not a TCF v2 consent string, or is cut short."""


@dataclass(frozen=True)
class TCString:
    """The core segment of a TCF v2 consent string, decoded."""

    version: int
    created: datetime
    last_updated: datetime
    cmp_id: int
    cmp_version: int
    consent_screen: int
    consent_language: str
    vendor_list_version: int
    policy_version: int
    service_specific: bool
    non_standard_texts: bool
    special_feature_opt_ins: frozenset[int]
    purposes_consent: frozenset[int]
    purposes_legitimate_interest: frozenset[int]
    purpose_one_treatment: bool
    publisher_country: str
    vendors_consent: frozenset[int]
    vendors_legitimate_interest: frozenset[int]


class _Bits:
    """Reads big-endian unsigned fields off a string of bits."""

    def __init__(self, data: bytes) -> None:
        self._bits = "".join(f"{byte:08b}" for byte in data)
        self._at = 0

    def number(self, width: int) -> int:
        if self._at + width > len(self._bits):
            raise TCStringError(
                f"the consent string ends at bit {len(self._bits)}; a field needs bits "
                f"{self._at} to {self._at + width}"
            )
        value = int(self._bits[self._at : self._at + width], 2)
        self._at += width
        return value

    def flag(self) -> bool:
        return self.number(1) == 1

    def flags(self, width: int) -> frozenset[int]:
        """The 1-based positions set in a ``width``-bit field."""
        return frozenset(i + 1 for i in range(width) if self.number(1))

    def moment(self) -> datetime:
        """A time in deciseconds since the epoch (36 bits)."""
        return datetime.fromtimestamp(self.number(36) / 10, tz=UTC)

    def letters(self) -> str:
        """Two letters, six bits each (A is 0)."""
        return "".join(chr(ord("A") + self.number(6)) for _ in range(2))

    def vendors(self) -> frozenset[int]:
        """A vendor section: its highest id, then a bit field or a list of ranges."""
        highest = self.number(16)
        if not self.flag():
            return self.flags(highest)
        found: set[int] = set()
        for _ in range(self.number(12)):
            is_range = self.flag()
            first = self.number(16)
            last = self.number(16) if is_range else first
            if not 0 < first <= last <= highest:
                raise TCStringError(f"vendor range {first}-{last} is outside 1-{highest}")
            found.update(range(first, last + 1))
        return frozenset(found)


def decode(value: str) -> TCString:
    """Decode a TC string's core segment; raises :class:`TCStringError` when it is not a
    whole TCF v2 consent string."""
    if not isinstance(value, str) or not value or len(value) > MAX_LENGTH:
        raise TCStringError(f"a consent string is 1 to {MAX_LENGTH} characters")
    core = value.split(".", 1)[0]
    try:
        data = base64.urlsafe_b64decode(core + "=" * (-len(core) % 4))
    except (binascii.Error, ValueError):
        raise TCStringError("the core segment is not web-safe base64") from None
    bits = _Bits(data)
    version = bits.number(6)
    if version != 2:
        raise TCStringError(f"version {version}: only TCF v2 strings are read")
    return TCString(
        version=version,
        created=bits.moment(),
        last_updated=bits.moment(),
        cmp_id=bits.number(12),
        cmp_version=bits.number(12),
        consent_screen=bits.number(6),
        consent_language=bits.letters(),
        vendor_list_version=bits.number(12),
        policy_version=bits.number(6),
        service_specific=bits.flag(),
        non_standard_texts=bits.flag(),
        special_feature_opt_ins=bits.flags(12),
        purposes_consent=bits.flags(24),
        purposes_legitimate_interest=bits.flags(24),
        purpose_one_treatment=bits.flag(),
        publisher_country=bits.letters(),
        vendors_consent=bits.vendors(),
        vendors_legitimate_interest=bits.vendors(),
    )

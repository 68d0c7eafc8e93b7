"""The TCF v2 consent string decoder, against the IAB Tech Lab's published test strings
(its iabtcf-java decoder's tests) and the spec's bit layout."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from django_eventtrack.core.tcf import TCStringError, decode

#: Made with the IAB's encoder (iabtcf.com), with its decoded fields from the IAB's tests.
IAB_EXAMPLE = "COtybn4PA_zT4KjACBENAPCIAEBAAECAAIAAAAAAAAAA"
#: Bit-field vendor sections, and the same string with more segments after the core.
IAB_VENDORS = "COrEAV4OrXx94ACABBENAHCIAD-AAAAAAACAAxAAAAgAIAwgAgAAAAEAgQAAAAAEAYQAQAAAACAAAABAAA"
IAB_ALL_SEGMENTS = IAB_VENDORS + ".IBAgAAAgAIAwgAgAAAAEAAAACA.QAagAQAgAIAwgA.cAAAAAAAITg="
#: Range-encoded vendor sections (one range, two ranges).
IAB_RANGES = (
    ("COwBOpCOwBOpCLqAAAENAPCAAAAAAAAAAAAAFfwAQFfgUbABAUaAAA", {703}),
    ("COwBOpCOwBOpCLqAAAENAPCAAAAAAAAAAAAAFfwAYFfAV-BVkAGBVYFWAAA", {702, 703}),
)
IAB_LI_RANGE = "COv__-wOv__-wC2AAAENAPCgAAAAAAAAAAAAA_wAQA_gEBABAEAAAA"


def test_the_iab_example_string_field_by_field() -> None:
    decoded = decode(IAB_EXAMPLE)

    assert decoded.version == 2
    assert decoded.created == datetime(2020, 1, 26, 17, 1, tzinfo=UTC)
    assert decoded.last_updated == datetime(2021, 2, 2, 17, 1, tzinfo=UTC)
    assert (decoded.cmp_id, decoded.cmp_version, decoded.consent_screen) == (675, 2, 1)
    assert (decoded.vendor_list_version, decoded.policy_version) == (15, 2)
    assert (decoded.consent_language, decoded.publisher_country) == ("EN", "AA")
    assert decoded.service_specific is False
    assert decoded.purpose_one_treatment is True
    assert decoded.non_standard_texts is False
    assert decoded.special_feature_opt_ins == {1}
    assert decoded.purposes_consent == {2, 10}
    assert decoded.purposes_legitimate_interest == {2, 9}


def test_vendor_bit_fields() -> None:
    decoded = decode(IAB_VENDORS)

    assert decoded.purposes_consent == {3, 4, 5, 6, 7, 8, 9}
    assert decoded.vendors_consent == {23, 37, 47, 48, 53, 65, 98}
    assert decoded.vendors_legitimate_interest == {37, 47, 48, 53, 65, 98, 129}


def test_other_segments_are_ignored() -> None:
    assert decode(IAB_ALL_SEGMENTS) == decode(IAB_VENDORS)


@pytest.mark.parametrize(("value", "vendors"), IAB_RANGES)
def test_vendor_ranges(value: str, vendors: set[int]) -> None:
    assert decode(value).vendors_consent == vendors


def test_legitimate_interest_range() -> None:
    assert decode(IAB_LI_RANGE).vendors_legitimate_interest == {128}


def test_purposes_one_and_two() -> None:
    assert {1, 2} <= decode("COwxsONOwxsONKpAAAENAdCAAMAAAAAAAAAAAAAAAAAA").purposes_consent


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "1 to 4096 characters"),
        ("COtybn4PA_zT4K", "the consent string ends at bit"),
        ("COtybn4PA_zT4KjACBENA??????AAAAA", "not web-safe base64"),
        ("BOtybn4PA_zT4KjACBENAPCIAEBAAECAAIAAAAAAAAAA", "version 1: only TCF v2"),
        ("C" * 5000, "1 to 4096 characters"),
    ],
)
def test_what_is_not_a_v2_string_is_refused(value: str, message: str) -> None:
    with pytest.raises(TCStringError, match=message):
        decode(value)


def _bits_to_string(bits: str) -> str:
    bits += "0" * (-len(bits) % 8)
    data = int(bits, 2).to_bytes(len(bits) // 8, "big")
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


@given(
    consent=st.sets(st.integers(1, 24)),
    interest=st.sets(st.integers(1, 24)),
    vendors=st.sets(st.integers(1, 300)),
)
def test_purposes_and_vendors_round_trip(
    consent: set[int], interest: set[int], vendors: set[int]
) -> None:
    """A string built bit by bit as the spec lays it out decodes to what was put in."""

    def flags(chosen: set[int], width: int) -> str:
        return "".join("1" if i + 1 in chosen else "0" for i in range(width))

    highest = max(vendors, default=0)
    head = "000010" + "0" * 36 * 2 + "0" * (12 + 12 + 6 + 12 + 12) + "000010" + "00"
    bits = (
        head
        + "0" * 12
        + flags(consent, 24)
        + flags(interest, 24)
        + "0"
        + "0" * 12
        + f"{highest:016b}0"
        + flags(vendors, highest)
        + f"{0:016b}0"
    )
    decoded = decode(_bits_to_string(bits))
    assert decoded.purposes_consent == consent
    assert decoded.purposes_legitimate_interest == interest
    assert decoded.vendors_consent == vendors
    assert decoded.vendors_legitimate_interest == frozenset()

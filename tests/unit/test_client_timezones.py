"""The time zones a restore compares: a backup's (by name, else by its offset) and the app's."""

from __future__ import annotations

from pathlib import Path

import pytest

from chatferry.client.manifest import Manifest
from chatferry.client.timezones import compare, mismatch_error, zone_for_offset


def _manifest(timezone: str = "", utc_offset: str = "") -> Manifest:
    manifest = Manifest.new("http://source", "source-app")
    manifest.timezone, manifest.utc_offset = timezone, utc_offset
    return manifest


@pytest.mark.parametrize(
    ("offset", "zone"),
    [("+07:00", "Etc/GMT-7"), ("-05:00", "Etc/GMT+5"), ("+00:00", "UTC"), ("+05:30", None),
     ("", None), ("07:00", None), ("+7:00", None)],
)  # fmt: skip
def test_an_offset_of_whole_hours_is_a_fixed_zone(offset: str, zone: str | None) -> None:
    assert zone_for_offset(offset) == zone


def test_zones_with_the_same_offsets_all_year_are_the_same() -> None:
    assert compare(_manifest("Asia/Jakarta", "+07:00"), "Asia/Bangkok").same is True
    assert compare(_manifest("Asia/Jakarta", "+07:00"), "UTC").same is False
    # Same offset today, but one of them keeps daylight saving time and the other not.
    assert compare(_manifest("Europe/Berlin"), "Africa/Lagos").same is False
    assert compare(_manifest(utc_offset="+07:00"), "Asia/Jakarta").same is True  # an older manifest


def test_a_conversion_has_no_zone_to_compare() -> None:
    converted = _manifest(utc_offset="+00:00")
    converted.server = "convert:slack"
    assert compare(converted, "Asia/Jakarta").same is None


def test_an_unknown_zone_is_not_compared() -> None:
    assert compare(_manifest(), "UTC").same is None  # a backup that recorded nothing
    assert compare(_manifest("Asia/Jakarta"), None).same is None  # a server that does not say
    assert compare(_manifest("Not/AZone", "+05:30"), "UTC").same is None


def test_the_refusal_says_what_to_run() -> None:
    check = compare(_manifest("Asia/Jakarta", "+07:00"), "UTC")
    message = mismatch_error(check, "restored", Path("my backup")).message
    assert "the time zone Asia/Jakarta, but the app restored is in UTC" in message
    assert "chatferry apps update restored --timezone Asia/Jakarta" in message
    assert "--timezone-from 'my backup'" in message and "--ignore-timezone" in message

"""The converters' stable values: times, windows, ids, Slack markup."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from chatferry.convert.ids import (
    MAX_ID,
    readable_id,
    rfc3339,
    token,
    window_at,
    window_days,
    window_of,
)
from chatferry.convert.slack import ts_ms
from chatferry.convert.slack_text import render


@pytest.mark.parametrize("ms", [0, 1, -1500, 1_704_067_200_123, 253_402_300_799_999])
def test_rfc3339_matches_datetime(ms: int) -> None:
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
    assert rfc3339(ms) == f"{moment:%Y-%m-%dT%H:%M:%S}.{ms % 1000:03d}Z"


def test_windows_are_30_days_from_1970_and_cover_every_day_once() -> None:
    assert window_days(0) == (date(1970, 1, 1), date(1970, 1, 30))
    day = 86_400_000
    for n in range(-40, 400):
        start, end = window_days(window_of(n * day))
        assert start <= date(1970, 1, 1) + timedelta(days=n) <= end
        assert window_at(start) == window_of(n * day)
    assert window_at(date(1970, 1, 2)) is None


def test_ids_stay_under_the_spec_limit_and_tokens_depend_on_the_secret() -> None:
    assert readable_id("mattermost", "eng", "general") == "mattermost:eng/general"
    long = readable_id("mattermost", "group_dm", *[f"user-{i:03d}" for i in range(40)])
    assert len(long) <= MAX_ID and long.startswith("mattermost:#")
    assert token("slack", "U1") == token("slack", "U1") != token("slack", "U2")
    assert token("slack", "U1", "a") != token("slack", "U1", "b") != token("slack", "U1")


def test_slack_timestamps_and_markup() -> None:
    assert ts_ms("1704067200.000100") == 1_704_067_200_000
    assert ts_ms("1704067200.123456") == 1_704_067_200_123
    names = {"U1": "Ada Lovelace"}.get
    text = (
        "hi <@U1>, <@U9|bo>, <!here>, <!subteam^S1|@ops>, <#C1|general>, "
        "<https://x.example|the site>, <https://y.example> &lt;b&gt; &amp;"
    )
    assert render(text, names, {"C1": "general"}) == (
        "hi @Ada Lovelace, @bo, @here, @ops, #general, the site (https://x.example), "
        "https://y.example <b> &"
    )

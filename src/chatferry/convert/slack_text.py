"""Slack's message markup as readable text: ``<@U123>`` -> ``@Ada Lovelace``,
``<!channel>`` -> ``@channel``, ``<#C1|general>`` -> ``#general``, links as ``label (url)``,
and ``&lt; &gt; &amp;`` unescaped."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

_TOKEN = re.compile(r"<([^<>]+)>")
_SPECIAL = {"channel": "@channel", "here": "@here", "everyone": "@everyone", "group": "@group"}


def render(text: str, names: Callable[[str], str | None], channels: Mapping[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        inner = match.group(1)
        target, _, label = inner.partition("|")
        if target.startswith("@"):
            return "@" + (names(target[1:]) or label or target[1:])
        if target.startswith("#"):
            return "#" + (channels.get(target[1:]) or label or target[1:])
        if target.startswith("!"):
            word = target[1:].split("^", 1)[0]
            return _SPECIAL.get(word) or label or word
        if label:
            return f"{label} ({target})" if label != target else target
        return target

    rendered = _TOKEN.sub(one, text)
    return rendered.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")

"""The process's event hub: a key wakes its own waiters and ANY's; the webhook senders
(WEBHOOKS_DUE) only when a delivery was queued with a record's end, not at every end."""

from __future__ import annotations

import asyncio

from chatferry.jobs.events import ANY, WEBHOOKS_DUE, EventHub


async def _woken(hub: EventHub, key: str, publish: list[str]) -> bool:
    with hub.subscription(key) as event:
        for published in publish:
            hub.publish(published)
        try:
            await asyncio.wait_for(event.wait(), 0.2)
        except TimeoutError:
            return False
        return True


def test_a_key_wakes_its_waiters_and_not_the_webhook_senders() -> None:
    hub = EventHub()
    assert asyncio.run(_woken(hub, "export:a", ["export:a"]))
    assert asyncio.run(_woken(hub, ANY, ["export:a"]))
    assert not asyncio.run(_woken(hub, WEBHOOKS_DUE, ["export:a", "import:b"]))


def test_a_key_announced_with_a_record_wakes_its_waiters_once_it_is_published() -> None:
    hub = EventHub()
    hub.also_on("export:a", WEBHOOKS_DUE)
    assert not asyncio.run(_woken(hub, WEBHOOKS_DUE, ["export:b"]))
    assert asyncio.run(_woken(hub, WEBHOOKS_DUE, ["export:a"]))
    assert not asyncio.run(_woken(hub, WEBHOOKS_DUE, ["export:a"]))  # once


def test_a_listener_reconnect_wakes_everyone() -> None:
    assert asyncio.run(_woken(EventHub(), WEBHOOKS_DUE, [ANY]))


def test_announcements_never_published_are_bounded() -> None:
    hub = EventHub()
    for n in range(5000):
        hub.also_on(f"export:{n}", WEBHOOKS_DUE)  # their transactions rolled back
    assert len(hub._also) <= 1000
    assert asyncio.run(_woken(hub, WEBHOOKS_DUE, ["export:4999"]))

"""The attachment URLs handed out by host: at most a few per host at once, a slot kept
while its host has URLs, a worker with no free host done, nothing after stop."""

from __future__ import annotations

from chatferry.client.attachments.hosts import HostQueue


def _urls(host: str, count: int) -> list[str]:
    return [f"https://{host}/{n}" for n in range(count)]


def test_no_host_gets_more_than_its_slots_and_the_rest_go_elsewhere() -> None:
    queue = HostQueue(_urls("a.example", 5) + _urls("b.example", 2), per_host=2)
    taken = [queue.take(None) for _ in range(5)]
    assert taken == [
        ("a.example", "https://a.example/0"), ("a.example", "https://a.example/1"),
        ("b.example", "https://b.example/0"), ("b.example", "https://b.example/1"),
        None,  # both hosts at their limit: a fifth worker has nothing to do
    ]  # fmt: skip


def test_a_worker_keeps_its_hosts_slot_while_the_host_has_urls() -> None:
    queue = HostQueue(_urls("a.example", 3), per_host=1)
    assert queue.take(None) == ("a.example", "https://a.example/0")
    assert queue.take(None) is None
    assert queue.take("a.example") == ("a.example", "https://a.example/1")
    assert queue.take("a.example") == ("a.example", "https://a.example/2")
    assert queue.take("a.example") is None


def test_a_worker_whose_host_ran_out_moves_to_a_host_with_a_free_slot() -> None:
    queue = HostQueue(_urls("a.example", 1) + _urls("b.example", 3), per_host=1)
    assert queue.take(None) == ("a.example", "https://a.example/0")
    assert queue.take(None) == ("b.example", "https://b.example/0")
    assert queue.take("a.example") is None  # b.example's one slot is taken
    assert queue.take("b.example") == ("b.example", "https://b.example/1")
    queue = HostQueue(_urls("a.example", 1) + _urls("b.example", 3), per_host=2)
    assert queue.take(None) == ("a.example", "https://a.example/0")
    assert queue.take(None) == ("b.example", "https://b.example/0")
    assert queue.take("a.example") == ("b.example", "https://b.example/1")


def test_stop_hands_out_nothing_more() -> None:
    queue = HostQueue(_urls("a.example", 3), per_host=2)
    assert queue.take(None) is not None
    queue.stop()
    assert queue.take("a.example") is None
    assert queue.take(None) is None

"""The import's pause of the cyclic garbage collector (imports/collector.py): off inside,
back on after (also when the block raises), counted across overlapping jobs, and never
turned on when it was off before; ``Pause.lifted`` (password hashing) runs a block as if
outside the pause."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator

import pytest

from chatferry.imports.collector import collector_paused


@pytest.fixture(autouse=True)
def collector_on() -> Iterator[None]:
    gc.enable()
    yield
    gc.enable()


def test_off_inside_and_on_after_even_when_the_block_raises() -> None:
    with collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError), collector_paused():
        raise RuntimeError("the import failed")
    assert gc.isenabled()


def test_overlapping_jobs_resume_it_when_the_last_one_ends() -> None:
    first_in, first_may_end = threading.Event(), threading.Event()
    seen: list[bool] = []

    def first() -> None:
        with collector_paused():
            first_in.set()
            first_may_end.wait(10)
            seen.append(gc.isenabled())

    thread = threading.Thread(target=first)
    thread.start()
    first_in.wait(10)
    with collector_paused():
        pass
    seen.append(gc.isenabled())  # the second ended, the first still runs: still off
    first_may_end.set()
    thread.join(10)
    assert seen == [False, False]
    assert gc.isenabled()


def test_a_collector_that_was_off_stays_off() -> None:
    gc.disable()
    with collector_paused():
        assert not gc.isenabled()
    assert not gc.isenabled()


def test_lifted_runs_as_outside_the_pause_and_holds_it_again_after() -> None:
    with collector_paused() as pause:
        with pause.lifted():
            assert gc.isenabled()
        assert not gc.isenabled()
        with pytest.raises(RuntimeError), pause.lifted():
            raise RuntimeError("hashing failed")
        assert not gc.isenabled()
    assert gc.isenabled()


def test_lifted_leaves_it_off_while_another_job_holds_it() -> None:
    with collector_paused(), collector_paused() as pause, pause.lifted():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_lifted_leaves_a_collector_that_was_off_off() -> None:
    gc.disable()
    with collector_paused() as pause, pause.lifted():
        assert not gc.isenabled()
    assert not gc.isenabled()

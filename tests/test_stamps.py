"""The stamps' clock on its own, on a clock the test sets: what waits for a later second, and what it remembers."""

from __future__ import annotations

import pytest

from cio_sync import stamps
from cio_sync.config import IdType
from cio_sync.mapping import PersonUpdate
from cio_sync.stamps import Clock


class SetClock:
    """Stands in for the time module: the wall clock reads what the test says; sleeping advances it."""

    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def update(key: str, index: int) -> PersonUpdate:
    return PersonUpdate(index, key, key, b"{}", {}, IdType.ID, key, key)


@pytest.fixture
def wall(monkeypatch: pytest.MonkeyPatch) -> SetClock:
    clock = SetClock(1000.2)
    monkeypatch.setattr(stamps, "time", clock)
    return clock


def test_an_update_after_an_unclear_attempt_waits_for_the_next_second(wall: SetClock) -> None:
    clock = Clock(enabled=True)
    clock.unclear("y")
    assert clock.hold(update("y", 1))
    assert not clock.hold(update("z", 2))
    assert clock.due() is None
    wall.now = 1001.0
    held = clock.due()
    assert held is not None and held.index == 1
    assert clock.stamp("y") == 1001


def test_unclear_attempts_of_seconds_gone_by_are_forgotten(wall: SetClock) -> None:
    # A run where many people's requests were resent must not remember each of them to the end.
    clock = Clock(enabled=True)
    for n in range(1000):
        clock.unclear(f"p{n}")
    wall.now = 1001.5
    clock.unclear("q")
    assert list(clock._unclear) == ["q"]
    assert not clock.hold(update("p1", 1))
    assert clock.hold(update("q", 2))


def test_after_the_clock_went_back_an_attempt_of_a_later_second_still_holds(wall: SetClock) -> None:
    clock = Clock(enabled=True)
    clock.unclear("y")
    wall.now = 990.5  # the wall clock set back ten seconds
    clock.unclear("z")
    assert clock.hold(update("y", 1))
    assert clock.hold(update("z", 2))
    wall.now = 991.0
    assert [held.index for held in iter(clock.due, None)] == [2]
    wall.now = 1001.0
    assert [held.index for held in iter(clock.due, None)] == [1]


def test_a_run_ends_past_the_latest_unclear_second_even_after_the_clock_went_back(wall: SetClock) -> None:
    # y's late write carries a stamp of second 1000: the next run's stamps must be later, so this
    # run waits that second out, though the last unclear attempt was of an earlier-reading second.
    clock = Clock(enabled=True)
    clock.unclear("y")
    wall.now = 990.5
    clock.unclear("z")
    clock.finish()
    assert wall.now >= 1001.0

"""The stamps on their own, on a clock the test drives: later than any unclear write, never backwards."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cio_sync.engine.stamps import Stamps

from .fakeclock import FakeClock


def test_a_stamp_is_the_wall_clocks_second() -> None:
    clock = FakeClock(wall=1000.7)
    assert Stamps(clock, enabled=True).issue() == 1000


def test_off_when_the_mapping_sets_the_timestamp() -> None:
    stamps = Stamps(FakeClock(), enabled=False)
    assert stamps.issue() is None
    assert stamps.unclear() is None


def test_after_an_unclear_write_the_next_waits_for_the_next_second_and_is_later() -> None:
    clock = FakeClock(wall=1000.2, monotonic=50.0)
    stamps = Stamps(clock, enabled=True)
    first = stamps.issue()
    mark = stamps.unclear()
    assert mark is not None
    after, ready_at = mark
    assert after == first == 1000
    assert ready_at == pytest.approx(50.8)
    clock.advance(0.8)
    assert stamps.issue(after) == 1001


def test_a_wall_clock_stepped_back_neither_stamps_older_nor_waits_for_the_lost_seconds() -> None:
    clock = FakeClock(wall=1000.2, monotonic=50.0)
    stamps = Stamps(clock, enabled=True)
    assert stamps.issue() == 1000
    clock.step_wall(-30)
    # Never older than a stamp already sent.
    assert stamps.issue() == 1000
    mark = stamps.unclear()
    assert mark is not None
    after, ready_at = mark
    # One second at most, not the thirty the wall clock lost.
    assert ready_at - clock.monotonic() == pytest.approx(1.0)
    clock.advance(1.0)
    assert stamps.issue(after) == 1001


def test_the_floor_and_what_is_written_ahead() -> None:
    written: list[int] = []
    clock = FakeClock(wall=500.5)
    stamps = Stamps(clock, enabled=True, floor=900, persist=written.append)
    assert stamps.issue() == 900
    assert stamps.issue() == 900
    clock.advance(1000)
    assert stamps.issue() == 1500
    # Each new highest stamp is written before it is used, once.
    assert written == [900, 1500]


def test_the_end_of_a_run_waits_out_the_second_of_its_last_unclear_write() -> None:
    clock = FakeClock(wall=1000.6, monotonic=10.0)
    stamps = Stamps(clock, enabled=True)
    stamps.issue()
    stamps.unclear()
    stamps.finish()
    assert clock.waits == [pytest.approx(0.4)]
    assert int(clock.wall()) == 1001
    clock.waits.clear()
    stamps.finish()
    assert clock.waits == []


@given(st.lists(st.tuples(st.sampled_from(["advance", "step", "unclear", "issue"]), st.floats(-100, 100))))
def test_stamps_never_go_backwards_and_follow_every_unclear_write(steps: list[tuple[str, float]]) -> None:
    clock = FakeClock()
    stamps = Stamps(clock, enabled=True)
    issued: list[int] = []
    pending: tuple[int, float] | None = None
    for action, amount in steps:
        if action == "advance":
            clock.advance(abs(amount))
        elif action == "step":
            clock.step_wall(amount)
        elif action == "unclear" and issued:
            pending = stamps.unclear()
        elif action == "issue":
            after = None
            if pending is not None:
                if clock.monotonic() < pending[1]:
                    clock.advance(pending[1] - clock.monotonic())
                after = pending[0]
            stamp = stamps.issue(after)
            assert stamp is not None
            assert not issued or stamp >= issued[-1]
            assert after is None or stamp > after
            issued.append(stamp)
            pending = None

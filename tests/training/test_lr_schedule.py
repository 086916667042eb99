"""A1111's learning-rate schedule syntax (also used for the gradient-clip value)."""
from __future__ import annotations

import pytest

from hn_core.training.lr_schedule import ScheduleCursor, ScheduleError, ScheduleItem, last_trained_step, parse_schedule


def items(text, max_steps=1000, current=0):
    return [(i.value, i.end_step) for i in parse_schedule(text, max_steps, current)]


def rates_per_step(text, max_steps, current=0):
    """The rate A1111 would use at each step, until its scheduler says finished."""
    cursor = ScheduleCursor.parse(text, max_steps, current)
    out = []
    for step in range(current, max_steps):
        rate = cursor.advance(step)
        if cursor.finished:
            break
        out.append(rate)
    return out


def test_bare_rate_lasts_until_max_steps():
    assert items("0.005") == [(0.005, 1000)]
    assert items(" 1e-5 ") == [(1e-5, 1000)]


def test_rate_until_step_pairs():
    assert items("5e-5:100, 5e-6:1500, 1e-7", max_steps=2000) == [(5e-5, 100), (5e-6, 1500), (1e-7, 2000)]


def test_minus_one_means_until_the_end_and_ends_the_list():
    assert items("1e-3:10, 1e-4:-1, 1e-5:900") == [(1e-3, 10), (1e-4, 1000)]


def test_bare_rate_ends_the_list():
    assert items("1e-3:10, 1e-4, 1e-5:900") == [(1e-3, 10), (1e-4, 1000)]


def test_steps_are_capped_at_max_steps_and_later_items_ignored():
    assert items("1e-3:10, 1e-4:5000, 1e-5:9000", max_steps=1000) == [(1e-3, 10), (1e-4, 1000)]


def test_items_at_or_below_the_resumed_step_are_skipped():
    assert items("1e-3:10, 1e-4:20, 1e-5:30", max_steps=100, current=10) == [(1e-4, 20), (1e-5, 30)]
    assert items("1e-3:10, 1e-4:20, 1e-5:30", max_steps=100, current=25) == [(1e-5, 30)]
    assert items("1e-3:10, 1e-4:-1", max_steps=100, current=50) == [(1e-4, 100)]


def test_training_stops_when_the_list_runs_out():
    # A1111: "5e-5:100, 5e-6:1500" ends at 1500 whatever max steps says.
    assert last_trained_step(parse_schedule("5e-5:100, 5e-6:1500", 100000), 0, 100000) == 1500
    rates = rates_per_step("0.1:3, 0.01:5", max_steps=10)
    assert rates == [0.1, 0.1, 0.1, 0.01, 0.01]


def test_rates_per_step_follow_the_items():
    assert rates_per_step("0.1:2, 0.01:4, 0.001", max_steps=6) == [0.1, 0.1, 0.01, 0.01, 0.001, 0.001]


def test_resumed_schedule_continues_the_straight_one():
    text = "0.1:3, 0.01:7, 0.001"
    straight = rates_per_step(text, max_steps=10)
    assert rates_per_step(text, max_steps=10, current=5) == straight[5:]


def test_out_of_order_item_gets_one_step_as_in_a1111():
    # A1111 advances one item per step: an item whose end already passed still runs once.
    assert rates_per_step("0.1:3, 0.2:2, 0.3:5", max_steps=10) == [0.1, 0.1, 0.1, 0.2, 0.3]


def test_cursor_keeps_last_value_after_finishing():
    cursor = ScheduleCursor([ScheduleItem(0.5, 2)])
    assert cursor.advance(0) == 0.5 and not cursor.finished
    assert cursor.advance(2) == 0.5 and cursor.finished  # what clipping keeps using


@pytest.mark.parametrize("text, fragment", [
    ("", "empty"),
    (" , ", "empty"),
    ("abc", "not a number"),
    ("1e-3:ten", "not a whole number"),
    ("1e-3:1.5", "not a whole number"),
    ("1e-3:10:20", "expected value or value:step"),
    ("-1e-3", ">= 0"),
    ("nan", "finite"),
])
def test_bad_schedules_say_what_is_wrong(text, fragment):
    with pytest.raises(ScheduleError, match=fragment):
        parse_schedule(text, 100)


def test_schedule_entirely_before_the_resumed_step_is_an_error():
    with pytest.raises(ScheduleError, match="at or below the step training resumes from"):
        parse_schedule("1e-3:10, 1e-4:20", 100, current_step=20)


@pytest.mark.parametrize("text", ["0.1:3, 0.01:5", "0.1", "0.1:3, 0.2:2, 0.3:5", "0.1:2, 0.2:2, 0.3:2", "1:50, 2:-1",
                                  "0.1:4, 0.2:9, 0.3:12"])
@pytest.mark.parametrize("max_steps, current", [(10, 0), (10, 3), (6, 1), (100, 0)])
def test_last_trained_step_agrees_with_stepping(text, max_steps, current):
    try:
        schedule = parse_schedule(text, max_steps, current)
    except ScheduleError:
        return
    trained = len(rates_per_step(text, max_steps, current))
    assert last_trained_step(schedule, current, max_steps) == current + trained


def test_last_trained_step_is_instant_for_huge_step_counts():
    assert last_trained_step(parse_schedule("1e-5", 10**12), 0, 10**12) == 10**12

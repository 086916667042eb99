"""A1111's schedule syntax for the learning rate (and the gradient-clip value).

``"5e-5:100, 5e-6:1500, 1e-7"`` means: 5e-5 until step 100 (exclusive), then 5e-6 until 1500,
then 1e-7 until the last step. Rules, exactly as A1111's ``LearnScheduleIterator``:

- ``value:step`` lasts until ``step`` (capped at ``max_steps``; an item past ``max_steps`` is the
  last one read); ``value:-1`` or a bare ``value`` lasts until ``max_steps`` and ends the list;
- items whose step is at or below the step training resumes from are skipped;
- when the list runs out, training stops (``ScheduleCursor.finished``), whatever ``max_steps`` says.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

SYNTAX_HELP = ('a number, or a list like "5e-5:100, 5e-6:1500, 1e-7" (value until step; '
               '"value:-1" or a bare value lasts until the last step)')


class ScheduleError(ValueError):
    """The schedule text cannot be read, or nothing of it is left to run."""


@dataclass(frozen=True)
class ScheduleItem:
    value: float
    end_step: int  # exclusive


def parse_schedule(text: str, max_steps: int, current_step: int = 0, what: str = "learning rate") -> list[ScheduleItem]:
    """The items still to run when training goes from `current_step` to `max_steps`."""
    items: list[ScheduleItem] = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        fields = [f.strip() for f in part.split(":")]
        if len(fields) > 2:
            raise ScheduleError(f"{what} schedule item {part!r}: expected value or value:step; use {SYNTAX_HELP}")
        value = _parse_value(fields[0], part, what)
        if len(fields) == 1:
            items.append(ScheduleItem(value, max_steps))
            break
        step = _parse_step(fields[1], part, what)
        if step > current_step:
            items.append(ScheduleItem(value, min(step, max_steps)))
            if step > max_steps:
                break
        elif step == -1:
            items.append(ScheduleItem(value, max_steps))
            break
        # Anything else (a step at or below the resumed step) is skipped, as A1111 does.
    if not items:
        if not str(text).replace(",", "").strip():
            raise ScheduleError(f"the {what} schedule is empty; use {SYNTAX_HELP}")
        raise ScheduleError(f"the {what} schedule {text!r} has no item after step {current_step}: "
                            "every step in it is at or below the step training resumes from")
    return items


def _parse_value(text: str, part: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ScheduleError(f"{what} schedule item {part!r}: {text!r} is not a number; use {SYNTAX_HELP}") from None
    if not math.isfinite(value) or value < 0:
        raise ScheduleError(f"{what} schedule item {part!r}: the value must be a finite number >= 0")
    return value


def _parse_step(text: str, part: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ScheduleError(f"{what} schedule item {part!r}: the step {text!r} is not a whole number; "
                            f"use {SYNTAX_HELP}") from None


class ScheduleCursor:
    """Walks the items as training advances, one call per optimizer step (A1111's scheduler).

    ``advance(step)`` moves to the next item once `step` reaches the current item's end, one item
    per call as A1111 does, so even an out-of-order item gets at least one step.
    """

    def __init__(self, items: list[ScheduleItem]):
        if not items:
            raise ScheduleError("a schedule needs at least one item")
        self.items = items
        self.index = 0
        self.finished = False

    @classmethod
    def parse(cls, text: str, max_steps: int, current_step: int = 0, what: str = "learning rate") -> "ScheduleCursor":
        return cls(parse_schedule(text, max_steps, current_step, what))

    @property
    def value(self) -> float:
        """The current item's value (the last one's once finished: clipping keeps using it)."""
        return self.items[min(self.index, len(self.items) - 1)].value

    def advance(self, step: int) -> float:
        """The value for the optimizer step that starts with `step` steps done; sets `finished`."""
        if not self.finished and step >= self.items[self.index].end_step:
            if self.index + 1 < len(self.items):
                self.index += 1
            else:
                self.finished = True
        return self.value


def last_trained_step(items: list[ScheduleItem], start_step: int, max_steps: int) -> int:
    """The step count at which training will stop: `max_steps`, or earlier when the list runs out.

    Walks item by item (not step by step) with ScheduleCursor's rule: once a step reaches the
    current item's end, that step moves to the next item, or ends training after the last one.
    """
    step, index = start_step, 0
    while step < max_steps:
        if step >= items[index].end_step:
            if index + 1 == len(items):
                return step
            index += 1
            step += 1  # this step runs with the next item, whatever that item's end
        else:
            step = min(items[index].end_step, max_steps)
    return max_steps

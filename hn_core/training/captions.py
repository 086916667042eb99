"""A1111-style training prompts: a template line per image and step, with the image's caption.

A template file holds one prompt per line. Two placeholders are filled in:

- ``[name]``: the hypernetwork's name;
- ``[filewords]``: the image's caption (its .txt file), after tag dropout and tag shuffling.

Tags are the caption's comma-separated parts. Dropout removes each tag with probability
``tag_dropout``, then shuffling reorders the tags that are left; both, and the choice of line,
are drawn afresh for every image at every step, from a generator seeded with (seed, image,
step) only, so a run can be repeated and resumed exactly.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

from .batch_plan import derived_seed

CAPTION_ONLY = ("[filewords]",)  # the template used when none is chosen: the caption as it is


class CaptionError(ValueError):
    """A template or caption option that cannot be used; the message says why."""


def parse_template(text: str, source: str = "template") -> tuple[str, ...]:
    """The prompt lines of a template file's text (surrounding spaces and blank lines dropped)."""
    lines = tuple(line.strip() for line in str(text).splitlines())
    lines = tuple(line for line in lines if line)
    if not lines:
        raise CaptionError(f"{source} has no prompt lines: write one prompt per line, e.g. '[filewords], by [name]'")
    return lines


@dataclass(frozen=True)
class CaptionPlan:
    """How to turn a caption into a training prompt (see the module docstring)."""

    template: tuple[str, ...] = CAPTION_ONLY
    name: str = ""
    shuffle_tags: bool = False
    tag_dropout: float = 0.0

    def __post_init__(self):
        if not self.template or not all(isinstance(line, str) for line in self.template):
            raise CaptionError("the template needs at least one prompt line")
        if not 0.0 <= float(self.tag_dropout) <= 1.0:
            raise CaptionError(f"tag dropout must be between 0 and 1, got {self.tag_dropout!r}")

    @property
    def varies(self) -> bool:
        """Whether an image's prompt can change from step to step."""
        return len(self.template) > 1 or self.shuffle_tags or self.tag_dropout > 0

    def prompt(self, caption: str, seed: int, item: int, step: int) -> str:
        """The prompt for image `item` at `step` (the same for the same arguments)."""
        rng = random.Random(derived_seed(seed, f"caption-{int(item)}", step))
        line = self.template[rng.randrange(len(self.template))]
        return line.replace("[filewords]", self.filewords(caption, rng)).replace("[name]", self.name)

    def filewords(self, caption: str, rng: random.Random) -> str:
        if not (self.shuffle_tags or self.tag_dropout > 0):
            return str(caption).strip()  # untouched: a caption need not be a tag list
        tags = [tag.strip() for tag in str(caption).split(",")]
        tags = [tag for tag in tags if tag]
        if self.tag_dropout > 0:
            # A1111's rule: a tag stays when a uniform draw exceeds the dropout probability.
            tags = [tag for tag in tags if rng.random() > self.tag_dropout]
        if self.shuffle_tags:
            rng.shuffle(tags)
        return ", ".join(tags)

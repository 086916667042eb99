"""Finding A1111 "extra network" tags in a prompt and removing them, as A1111's webui does.

A1111 (modules/extra_networks.py) finds tags with the pattern below, splits the text between
the first colon and ``>`` on ``:``, and replaces every tag of any kind by nothing: the prompt
the text encoder sees is exactly ``TAG_PATTERN.sub("", prompt)``. An argument holding exactly
one ``=`` is a named argument (``key=value``), every other one is positional, also as in A1111.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

TAG_PATTERN = re.compile(r"<(\w+):([^>]+)>")


class PromptTagError(ValueError):
    """A tag cannot be used; the message starts with the tag as written in the prompt."""

    def __init__(self, tag: str, problem: str):
        self.tag = tag
        self.problem = problem
        super().__init__(f"{tag}: {problem}")


@dataclass(frozen=True)
class PromptTag:
    """One ``<kind:arg:arg...>`` tag, as written (``text``) and split into its arguments."""

    kind: str
    args: tuple[str, ...]
    text: str

    @property
    def positional(self) -> tuple[str, ...]:
        return tuple(arg for arg in self.args if not _is_named(arg))

    @property
    def named(self) -> tuple[tuple[str, str], ...]:
        """``(key, value)`` pairs in prompt order; a repeated key is kept twice (callers refuse it)."""
        return tuple(tuple(arg.split("=")) for arg in self.args if _is_named(arg))


def _is_named(arg: str) -> bool:
    # A1111 splits on '=' at most twice and calls the item named only when that gives two parts.
    return arg.count("=") == 1


def find_tags(text: str) -> list[PromptTag]:
    """Every tag in ``text``, in prompt order."""
    return [PromptTag(match.group(1), tuple(match.group(2).split(":")), match.group(0))
            for match in TAG_PATTERN.finditer(text)]


def strip_tags(text: str) -> str:
    """``text`` with every tag of any kind removed and nothing else touched."""
    return TAG_PATTERN.sub("", text)


def split_prompt(text: str) -> tuple[str, list[PromptTag]]:
    """(the text left, the tags in prompt order)."""
    return strip_tags(text), find_tags(text)

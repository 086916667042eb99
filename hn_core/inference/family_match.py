"""Does a hypernetwork fit the model it is applied to? Which dims act, and a warning when not all do.

A1111 patches every attention layer whose key-input width equals one of the file's dims, and so
do we. Widths overlap between families, though: an SD1.x file (dims 320/640/768/1280) on SDXL
still meets SDXL's self-attention widths 640/1280, so "some layer matches" says little. The text
context width names the family a file was made for (768 SD1.x, 1024 SD2.x, 2048 SDXL); a file
whose context width is not the model's, or any of whose dims no layer takes, earns a warning that
names both families and says what is and is not patched. Pure: widths in, verdict out.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

# Width of the text context (the cross-attention key input) per Stable Diffusion family.
CONTEXT_FAMILIES = {768: "SD1.x", 1024: "SD2.x", 2048: "SDXL"}


@dataclass(frozen=True)
class FamilyMatch:
    """How a hypernetwork's dims meet a model's attention key-input widths."""

    self_attention_dims: tuple[int, ...]  # file dims the model's self-attention (attn1) takes
    cross_attention_dims: tuple[int, ...]  # file dims the model's cross-attention (attn2) takes
    unused_dims: tuple[int, ...]  # file dims no attention layer of the model takes
    file_context: tuple[int, ...]  # the file's dims that are a known text-context width
    model_context: tuple[int, ...]  # the model's cross-attention widths
    warning: str | None  # None when the file fits the model

    @property
    def used_dims(self) -> tuple[int, ...]:
        return tuple(sorted(set(self.self_attention_dims) | set(self.cross_attention_dims)))


def match_family(file_dims: Iterable[int], self_attention_widths: Iterable[int],
                 cross_attention_widths: Iterable[int], name: str | None = None) -> FamilyMatch:
    """Compare a file's dims with a model's attn1 / attn2 key-input widths; see ``FamilyMatch``."""
    dims = sorted({int(d) for d in file_dims})
    attn1 = {int(w) for w in self_attention_widths}
    attn2 = {int(w) for w in cross_attention_widths}
    self_dims = tuple(d for d in dims if d in attn1)
    cross_dims = tuple(d for d in dims if d in attn2)
    unused = tuple(d for d in dims if d not in attn1 and d not in attn2)
    file_context = tuple(d for d in dims if d in CONTEXT_FAMILIES)
    model_context = tuple(sorted(attn2))
    context_differs = bool(file_context) and not set(file_context) <= attn2
    warning = None
    if context_differs or unused:
        warning = _warning(name, dims, self_dims, cross_dims, unused, file_context, model_context, attn1)
    return FamilyMatch(self_dims, cross_dims, unused, file_context, model_context, warning)


def family_of(context_widths: Iterable[int]) -> str:
    """'SD1.x (context 768)', 'SDXL (context 2048)', 'an unknown family (context 4096)'."""
    widths = sorted(context_widths)
    names = sorted({CONTEXT_FAMILIES.get(w, "an unknown family") for w in widths}) or ["an unknown family"]
    return f"{' / '.join(names)} (context {_join(widths) or 'none'})"


def _warning(name, dims, self_dims, cross_dims, unused, file_context, model_context, attn1) -> str:
    label = f"hypernetwork '{name}'" if name else "this hypernetwork"
    if file_context:
        made_for = f"{label} was made for {family_of(file_context)}"
    else:
        made_for = f"{label} has dims {_join(dims)} (no text-context width, self-attention only)"
    parts = [f"{made_for}; the model is {family_of(model_context)}"]
    if not self_dims and not cross_dims:
        parts.append(f"no attention layer takes its dims (the model's self-attention widths are "
                     f"{_join(sorted(attn1)) or 'none'}): it changes nothing")
    else:
        patched = []
        if self_dims:
            patched.append(f"self-attention width{_s(self_dims)} {_join(self_dims)}")
        if cross_dims:
            patched.append(f"cross-attention width{_s(cross_dims)} {_join(cross_dims)}")
        parts.append(f"only its {' and '.join(patched)} {'is' if len(self_dims + cross_dims) == 1 else 'are'} patched")
    if unused:
        parts.append(f"dim{_s(unused)} {_join(unused)} unused")
    return ": ".join(parts[:2]) + ("; " + parts[2] if len(parts) > 2 else "")


def _join(values) -> str:
    return ", ".join(str(v) for v in values)


def _s(values) -> str:
    return "s" if len(values) != 1 else ""

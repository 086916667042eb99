"""Apply Hypernetworks from Prompt's work: every hypernet / lora tag of a prompt, in prompt order.

Each tag is what a chain of nodes wired by hand would do, through the same code: a hypernet tag is
Load Hypernetwork (the shared load cache) -> Hypernetwork Strength (when it has named arguments)
-> Apply Hypernetwork; a lora tag is ComfyUI's LoraLoader (LoraLoaderModelOnly without a CLIP).
The same name twice applies twice, each with its own multiplier. Tags of other kinds are removed
from the text and reported, not applied. Tags in ``negative_text`` are removed and reported only:
a model is shared by both prompts, so a network named there has nowhere of its own to act.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import folder_paths

from ...hn_core import ScheduledHypernetwork, StrengthProfile
from ...hn_core.prompt.a1111_tags import PromptTag, find_tags, strip_tags
from ...hn_core.prompt.tag_requests import (HYPERNET_KINDS, LORA_KINDS, HypernetRequest, LoraRequest,
                                            hypernet_request, lora_request)
from ..apply.apply_network import apply_hypernetwork
from ..files.model_folders import FOLDER, LOADED, file_signature, list_hypernetwork_files
from .lora_loading import load_lora
from .name_lookup import find_file

logger = logging.getLogger(__name__)

LORA_FOLDER = "loras"


@dataclass(frozen=True)
class PromptResult:
    model: object
    clip: object
    text: str
    report: str
    negative_text: str


def apply_prompt_tags(model, clip, text: str, negative_text: str = "", speed_path: bool = True,
                      node_id=None) -> PromptResult:
    """Validate every tag first (nothing is applied when one is wrong), then apply them in order."""
    planned = [_plan(tag) for tag in find_tags(text)]
    lines = []
    for index, (tag, request, listed, path) in enumerate(planned, 1):
        if isinstance(request, HypernetRequest):
            network = ScheduledHypernetwork(LOADED.get(path))
            if request.profile != StrengthProfile():
                network = network.with_profile(request.profile)
            model = apply_hypernetwork(model, network, request.multiplier, speed_path, node_id)
            lines.append(f"{index}. {tag.text}: hypernetwork {listed}, strength {request.multiplier:g}"
                         f"{_profile_text(request.profile)} ({path})")
        elif isinstance(request, LoraRequest):
            te = request.te_multiplier if clip is not None else 0.0
            model, clip = load_lora(model, clip, path, request.unet_multiplier, te)
            clip_note = (f"text encoder {request.te_multiplier:g}" if clip is not None
                         else "text encoder not applied (no CLIP connected)")
            lines.append(f"{index}. {tag.text}: LoRA {listed}, UNet {request.unet_multiplier:g}, {clip_note} ({path})")
        else:
            logger.warning("Apply Hypernetworks from Prompt: %s is not a hypernet or lora tag; removed from "
                           "the text, not applied", tag.text)
            lines.append(f"{index}. {tag.text}: removed from the text, not applied (kind '{tag.kind}' unknown here)")
    negative_tags = find_tags(negative_text or "")
    if negative_tags:
        lines.append("negative text, removed and not applied: " + " ".join(tag.text for tag in negative_tags))
    report = "\n".join(lines) if lines else "no tags in the prompt"
    return PromptResult(model, clip, strip_tags(text), report, strip_tags(negative_text or ""))


def _plan(tag: PromptTag):
    """(tag, request, listed name, full path); other kinds get (tag, None, None, None)."""
    if tag.kind in HYPERNET_KINDS:
        request = hypernet_request(tag)
        listed, path = find_file(tag.text, request.name, FOLDER, list_hypernetwork_files())
        return tag, request, listed, path
    if tag.kind in LORA_KINDS:
        request = lora_request(tag)
        listed, path = find_file(tag.text, request.name, LORA_FOLDER, folder_paths.get_filename_list(LORA_FOLDER))
        return tag, request, listed, path
    return tag, None, None, None


def _profile_text(profile: StrengthProfile) -> str:
    if profile == StrengthProfile():
        return ""
    neutral = StrengthProfile()
    parts = [f"{name} {getattr(profile, name):g}" for name in ("attn1", "attn2", "input", "middle", "output")
             if getattr(profile, name) != getattr(neutral, name)]
    parts += [f"{group}{index} {weight:g}" for (group, index), weight in profile.block_weights]
    if not profile.full_range:
        parts.append(f"steps {profile.start_percent:g}..{profile.end_percent:g}")
    return " [" + ", ".join(parts) + "]"


def prompt_files_signature(text: str):
    """For IS_CHANGED: re-run when a file a tag names changes on disk; errors surface when the node runs."""
    try:
        return str([(path, file_signature(path)) for _tag, _request, _listed, path in map(_plan, find_tags(text))
                    if path is not None and os.path.isfile(path)])
    except Exception:
        return float("nan")

"""Caption mode of Train Hypernetwork: a CLIP and captions instead of pre-encoded CONDITIONING.

Like A1111's trainer, each image's prompt is built afresh at every step from a template line and
its caption (see hn_core.training.captions) and encoded by the connected CLIP, without gradients.
Templates come from the `hypernetwork_templates` model folder (which also lists the pack's own
`caption_templates/`), or from a file path.
"""
from __future__ import annotations

import collections
import logging
import os
from dataclasses import dataclass

import torch

import folder_paths

from ...hn_core.training import TrainingError
from ...hn_core.training.captions import CAPTION_ONLY, CaptionError, CaptionPlan, parse_template
from .inputs import clone_conditioning_entry

logger = logging.getLogger(__name__)

TEMPLATE_FOLDER = "hypernetwork_templates"
# this file is hn_comfy/training/captions.py: the pack root is three levels up
PACK_TEMPLATES = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "caption_templates")
NO_TEMPLATE = "none (the caption as it is)"
MAX_TEMPLATE_BYTES = 1 << 20
CAPTION_WIDGETS = ("caption_template", "caption_template_file", "shuffle_tags", "tag_dropout")
ENCODED_PROMPTS_KEPT = 512  # distinct prompts whose encodings are kept between steps


def register_template_folder() -> None:
    """Make `hypernetwork_templates` a ComfyUI model folder: models/hypernetwork_templates, any
    paths extra_model_paths.yaml gives it (e.g. A1111's textual_inversion_templates), and ours."""
    paths, _ = folder_paths.folder_names_and_paths.get(TEMPLATE_FOLDER, ([], set()))
    for folder in (os.path.join(folder_paths.models_dir, TEMPLATE_FOLDER), PACK_TEMPLATES):
        if folder not in paths:
            paths.append(folder)
    folder_paths.folder_names_and_paths[TEMPLATE_FOLDER] = (paths, {".txt"})


register_template_folder()


def caption_inputs() -> dict:
    """The optional inputs caption mode adds to Train Hypernetwork."""
    templates = [NO_TEMPLATE, *folder_paths.get_filename_list(TEMPLATE_FOLDER)]
    return {
        "clip": ("CLIP", {"tooltip": "Caption mode: encode each image's prompt with this CLIP at every step "
                          "(A1111's way), built from its caption and the template. Leave unconnected to "
                          "train on the conditioning input instead."}),
        "captions": ("STRING", {"forceInput": True, "tooltip": "Caption mode: one caption per image, in the "
                                "images' order (e.g. the texts of Load Image-Text from Folder), or one for all. "
                                "Fills [filewords]."}),
        "caption_template": (templates, {"default": NO_TEMPLATE, "tooltip": "Caption mode: prompt template, "
                             "one prompt per line with [name] (the hypernetwork's name) and [filewords] (the "
                             "caption); a random line per image and step. Files come from "
                             "models/hypernetwork_templates and the pack's caption_templates."}),
        "caption_template_file": ("STRING", {"default": "", "tooltip": "Caption mode: path of a template file "
                                  "(e.g. one of A1111's); overrides caption_template when set."}),
        "shuffle_tags": ("BOOLEAN", {"default": False, "tooltip": "Caption mode: shuffle the caption's "
                         "comma-separated tags, anew for every image and step."}),
        "tag_dropout": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.01, "tooltip": "Caption "
                        "mode: drop each tag with this probability, anew for every image and step."}),
    }


@dataclass
class CaptionMode:
    clip: object
    captions: list  # as connected: one per image, one for all, or none (empty prompts)
    plan: CaptionPlan

    def step_prompts(self, captions_per_image: list[str], seed: int) -> "StepPrompts":
        return StepPrompts(self.clip, captions_per_image, self.plan, seed)


def caption_mode_from(widgets: dict, clip, captions, name: str) -> CaptionMode | None:
    """Pop the caption widgets from `widgets`; caption mode's settings, or None without a CLIP."""
    options = {key: widgets.pop(key) for key in CAPTION_WIDGETS if key in widgets}
    if clip is None:
        if captions is not None:
            raise TrainingError("captions are connected but no CLIP: connect the CLIP that should encode them "
                                "(or use CLIP Text Encode and the conditioning input)")
        return None
    try:
        plan = CaptionPlan(template=_template_lines(options.get("caption_template", NO_TEMPLATE),
                                                    options.get("caption_template_file", "")),
                           name=name, shuffle_tags=bool(options.get("shuffle_tags", False)),
                           tag_dropout=float(options.get("tag_dropout", 0.0)))
    except CaptionError as error:
        raise TrainingError(str(error)) from None
    return CaptionMode(clip, list(captions) if captions is not None else [], plan)


def _template_lines(choice: str, path: str) -> tuple[str, ...]:
    path = str(path or "").strip()
    if path:
        return _read_template(os.path.expanduser(path), "caption_template_file")
    if choice in (None, "", NO_TEMPLATE):
        return CAPTION_ONLY
    full = folder_paths.get_full_path(TEMPLATE_FOLDER, choice)
    if full is None:
        raise TrainingError(f"caption_template {choice!r} is not in the hypernetwork_templates folders "
                            f"({', '.join(folder_paths.get_folder_paths(TEMPLATE_FOLDER))})")
    return _read_template(full, "caption_template")


def _read_template(path: str, what: str) -> tuple[str, ...]:
    if not os.path.isfile(path):
        raise TrainingError(f"{what}: no template file at {path}")
    if os.path.getsize(path) > MAX_TEMPLATE_BYTES:
        raise TrainingError(f"{what}: {path} is larger than 1 MB; a template is a short text file")
    try:
        with open(path, encoding="utf-8") as file:
            return parse_template(file.read(), f"template {path}")
    except UnicodeDecodeError:
        raise TrainingError(f"{what}: {path} is not UTF-8 text") from None
    except CaptionError as error:
        raise TrainingError(f"{what}: {error}") from None


class StepPrompts:
    """Each image's CONDITIONING entry at a step: its prompt from the plan, encoded by the CLIP.

    Encodings are kept per prompt text (the most recent ENCODED_PROMPTS_KEPT), so a prompt that
    comes back (a fixed caption, a small template) is encoded once.
    """

    def __init__(self, clip, captions: list[str], plan: CaptionPlan, seed: int):
        self.clip, self.captions, self.plan, self.seed = clip, captions, plan, seed
        self._encoded: collections.OrderedDict[str, list] = collections.OrderedDict()
        if plan.template == CAPTION_ONLY and not plan.varies:
            logger.info("caption mode: each image's caption is its prompt, unchanged between steps")

    def text(self, item: int, step: int) -> str:
        return self.plan.prompt(self.captions[item], self.seed, item, step)

    def entry(self, item: int, step: int) -> list:
        text = self.text(item, step)
        if text in self._encoded:
            self._encoded.move_to_end(text)
        else:
            self._encoded[text] = self._encode(text)
            if len(self._encoded) > ENCODED_PROMPTS_KEPT:
                self._encoded.popitem(last=False)
        return self._encoded[text]

    def _encode(self, text: str) -> list:
        with torch.no_grad():
            conditioning = self.clip.encode_from_tokens_scheduled(self.clip.tokenize(text), show_pbar=False)
        return clone_conditioning_entry(conditioning[0])

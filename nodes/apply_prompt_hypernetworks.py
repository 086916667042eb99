"""ApplyPromptHypernetworks: A1111's <hypernet:…> and <lora:…> prompt tags, applied in prompt order."""
from __future__ import annotations

from ..hn_comfy.prompt.apply_tags import apply_prompt_tags, prompt_files_signature
from ..hn_comfy.ui.types import LOADERS_CATEGORY


def _text(tooltip: str):
    return ("STRING", {"default": "", "multiline": True, "tooltip": tooltip})


class ApplyPromptHypernetworks:
    DESCRIPTION = ("Reads AUTOMATIC1111 tags from a prompt: <hypernet:NAME:MULT> applies the hypernetwork "
                   "file NAME (its file stem, subfolders included), <lora:NAME:TE:UNET> the LoRA NAME, in "
                   "prompt order, as a chain of Apply Hypernetwork / Load LoRA nodes would. Every tag is "
                   "removed from the text, exactly as A1111 does; encode the text output.")
    CATEGORY = LOADERS_CATEGORY
    RETURN_TYPES = ("MODEL", "CLIP", "STRING", "STRING", "STRING")
    RETURN_NAMES = ("model", "clip", "text", "report", "negative_text")
    OUTPUT_TOOLTIPS = (
        "A copy of the model with every hypernet and lora tag applied in prompt order.",
        "The CLIP with the lora tags' text-encoder part; None when no CLIP is connected.",
        "The prompt without its tags (every <kind:...> tag replaced by nothing, as A1111 does).",
        "What was done: each tag, its file and strengths; tags removed but not applied.",
        "The negative text without its tags (its tags are listed in the report, never applied).",
    )
    FUNCTION = "apply"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": ("MODEL", {"tooltip": "The diffusion model to patch (left unchanged)."}),
                "text": _text("A prompt with A1111 tags, e.g. 'a castle <hypernet:style:0.8> "
                              "<lora:detail:1>'. Named arguments on hypernet tags set the strength "
                              "profile: start=, end=, attn1=/self=, attn2=/cross=, input=, middle=, "
                              "output=, input4= (one block)."),
            },
            "optional": {
                "clip": ("CLIP", {"tooltip": "Optional: receives the text-encoder part of lora tags."}),
                "speed_path": ("BOOLEAN", {"default": True, "tooltip":
                    "As on Apply Hypernetwork: fold linear hypernetworks acting over the whole schedule "
                    "into the attention weights (same result, no extra cost per step)."}),
                "negative_text": _text("Optional negative prompt: its tags are removed and listed in the "
                                       "report, never applied (the model is shared by both prompts)."),
            },
            "hidden": {"unique_id": "UNIQUE_ID"},
        }

    @classmethod
    def IS_CHANGED(cls, text="", **_inputs):
        return prompt_files_signature(text)

    def apply(self, model, text, clip=None, speed_path=True, negative_text="", unique_id=None):
        result = apply_prompt_tags(model, clip, text, negative_text, speed_path, unique_id)
        return (result.model, result.clip, result.text, result.report, result.negative_text)

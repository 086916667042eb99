"""Write the shipped prompt-tag workflow, both forms: ``workflows/api/prompt_tags.json`` and its UI twin
``workflows/prompt_tags.json``.

    python -m tools.build_prompt_workflow [--comfyui DIR]

The graph: an A1111 prompt with a ``<hypernet:hn_demo_trained:S>`` tag, at S = 0, 0.5 and 1, through
Apply Hypernetworks from Prompt (A1111 tags) -> CLIP Text Encode of the text it leaves -> KSampler ->
Save Image. The tag names the network the training workflow saves, and the text left is the training
sweep's first prompt with the same seed, so each picture equals the sweep's picture at that strength:
the sepia style arrives through the prompt alone.
"""
from __future__ import annotations

from .build_train_workflow import CHECKPOINT, PROMPTS, SAMPLING, STRENGTHS, TRAINING
from .workflow_writer import builder_main, prompt_builder

NAME = "prompt_tags"
NETWORK = TRAINING["name"]


def tagged_prompt(strength: float) -> str:
    # The tag first, with no space after it: the text A1111 leaves is then exactly PROMPTS[0].
    return f"<hypernet:{NETWORK}:{strength:g}>{PROMPTS[0]}"


NOTE = f"""**Apply a hypernetwork the A1111 way: a tag in the prompt**

1. *Apply Hypernetworks from Prompt (A1111 tags)* reads `<hypernet:NAME:STRENGTH>` tags (and `<lora:NAME:WEIGHT>`), applies each network to the model in prompt order, and outputs the text without the tags, exactly as A1111 leaves it.
2. *CLIP Text Encode* encodes that text (its `text` is linked to the node's `text` output).
3. The three branches draw `{tagged_prompt(1.0)}` at strength 0, 0.5 and 1, with the training workflow's sampler and seed, so they match its strength sweep picture for picture.

`{NETWORK}` is what the *train_hypernetwork* workflow saves: run that first, or write your own network's file name (without extension) in the tag. `{CHECKPOINT}` is this pack's small demo model: pick your own SD1.5 checkpoint."""


def build_prompt() -> tuple[dict, dict[str, str]]:
    """(the API prompt, node titles)."""
    prompt, titles, add = prompt_builder()
    checkpoint = add("CheckpointLoaderSimple", ckpt_name=CHECKPOINT)
    negative = add("CLIPTextEncode", "CLIP Text Encode (negative: empty)", text="", clip=[checkpoint, 1])
    empty = add("EmptyLatentImage", width=64, height=64, batch_size=2)
    for strength in STRENGTHS:
        label = f"strength {strength:g}"
        tags = add("ApplyPromptHypernetworks", f"Prompt tags: {label}", model=[checkpoint, 0],
                   text=tagged_prompt(strength), clip=[checkpoint, 1])
        positive = add("CLIPTextEncode", f"CLIP Text Encode: {label}", text=[tags, 2], clip=[tags, 1])
        sampler = add("KSampler", f"KSampler: {label}", model=[tags, 0], positive=[positive, 0],
                      negative=[negative, 0], latent_image=[empty, 0], **SAMPLING)
        decoded = add("VAEDecode", samples=[sampler, 0], vae=[checkpoint, 2])
        add("SaveImage", images=[decoded, 0], filename_prefix=f"{NAME}_strength_{strength:g}")
    return prompt, titles


def main(argv: list[str] | None = None) -> int:
    return builder_main(__doc__, NAME, build_prompt, NOTE, argv)


if __name__ == "__main__":
    raise SystemExit(main())

"""Write the shipped training workflow, both forms: ``workflows/api/train_hypernetwork.json`` and
its UI twin ``workflows/train_hypernetwork.json``.

    python -m tools.build_train_workflow [--comfyui DIR]

The graph: the demo dataset (``datasets/hn_demo_dataset``, the held-out sepia style) -> VAE
Encode + CLIP Text Encode (captions) -> Train Hypernetwork -> Save Hypernetwork + Plot Loss
Graph; then a strength sweep (0, 0.5, 1) of the trained network over fixed prompts, two pictures
each (the same seed at every strength), some with shapes and colours the training set lacks.
Both forms are written by ``tools.workflow_writer`` (the UI form laid out from a live ComfyUI's
node definitions).
"""
from __future__ import annotations

from .workflow_writer import builder_main, prompt_builder

NAME = "train_hypernetwork"
CHECKPOINT = "hn-demo-sd15.safetensors"
PROMPTS = ("a purple triangle on a white background", "a red circle on a yellow background",
           "a green star on a pink background")
STRENGTHS = (0.0, 0.5, 1.0)
TRAINING = {
    "name": "hn_demo_trained", "steps": 200, "learning_rate": "0.02", "batch_size": 4, "gradient_accumulation": 1,
    "optimizer": "AdamW", "weight_decay": 0.01, "gradient_clipping": "norm", "clip_value": "1.0", "seed": 7,
    "training_dtype": "auto", "gradient_checkpointing": False, "snapshot_every": 0, "dims": "auto",
    "layer_structure": "1, 2, 1", "activation": "relu", "weight_init": "Normal", "layer_norm": True,
    "dropout": "off", "dropout_structure": "", "activate_output": False, "base_model_name": "",
}
SAMPLING = {"seed": 42, "steps": 20, "cfg": 5.0, "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0}

NOTE = f"""**Train a hypernetwork on a style, then sweep its strength**

1. *Load Image and Text Dataset from Folder*: a folder under ComfyUI's `input/` with `<name>.png` + `<name>.txt` captions. `hn_demo_dataset` is this pack's demo set (`datasets/hn_demo_dataset`, CC0): eight pictures in a *sepia* style the demo model never saw, captioned with their content only. Copy the folder into `input/` (a copy: ComfyUI's folder list skips symlinks).
2. *VAE Encode* and *CLIP Text Encode* turn each picture and caption into a latent and a conditioning.
3. *Train Hypernetwork*: {TRAINING['steps']} steps, batch {TRAINING['batch_size']}, learning rate {TRAINING['learning_rate']}, [1, 2, 1] relu + layer norm: about a minute on a CPU with the demo model. For an SD1.5 model use A1111's usual 5e-6 to 1e-5 and thousands of steps.
4. *Save Hypernetwork* writes `models/hypernetworks/hn_demo_trained.pt` (+ `.optim`); *Plot Loss Graph* shows the loss per step.
5. The sweep draws the same prompts and seed at strength 0 (exactly the model without it), 0.5 and 1: the pictures turn sepia as the strength grows, shapes and colours the training set never showed included.

`{CHECKPOINT}` is this pack's small demo model (it draws coloured shapes, nothing else): pick your own SD1.5 checkpoint and dataset for real work."""


def build_prompt() -> tuple[dict, dict[str, str]]:
    """(the API prompt, node titles)."""
    prompt, titles, add = prompt_builder()
    checkpoint = add("CheckpointLoaderSimple", ckpt_name=CHECKPOINT)
    dataset = add("LoadImageTextDataSetFromFolder", folder="hn_demo_dataset")
    captions = add("CLIPTextEncode", "CLIP Text Encode (captions)", text=[dataset, 1], clip=[checkpoint, 1])
    latents = add("VAEEncode", pixels=[dataset, 0], vae=[checkpoint, 2])
    train = add("TrainHypernetwork", model=[checkpoint, 0], latents=[latents, 0], conditioning=[captions, 0],
                **TRAINING)
    add("SaveHypernetwork", hypernetwork=[train, 1], filename=TRAINING["name"], format="pt (A1111)", overwrite=False)
    add("LossGraphNode", loss=[train, 2], filename_prefix=f"{NAME}_loss")
    negative = add("CLIPTextEncode", "CLIP Text Encode (negative: empty)", text="", clip=[checkpoint, 1])
    empty = add("EmptyLatentImage", width=64, height=64, batch_size=2)
    positives = [add("CLIPTextEncode", f"Prompt {i}", text=text, clip=[checkpoint, 1])
                 for i, text in enumerate(PROMPTS, 1)]
    for strength in STRENGTHS:
        label = f"strength {strength:g}" + (" (without)" if strength == 0 else "")
        apply = add("ApplyHypernetwork", f"Apply Hypernetwork: {label}", model=[checkpoint, 0],
                    hypernetwork=[train, 1], strength=strength, speed_path=True)
        for i, positive in enumerate(positives, 1):
            sampler = add("KSampler", f"KSampler: {label}, prompt {i}", model=[apply, 0], positive=[positive, 0],
                          negative=[negative, 0], latent_image=[empty, 0], **SAMPLING)
            decoded = add("VAEDecode", samples=[sampler, 0], vae=[checkpoint, 2])
            add("SaveImage", images=[decoded, 0], filename_prefix=f"{NAME}_strength_{strength:g}_prompt_{i}")
    return prompt, titles


def main(argv: list[str] | None = None) -> int:
    return builder_main(__doc__, NAME, build_prompt, NOTE, argv)


if __name__ == "__main__":
    raise SystemExit(main())

"""Benchmark: what TrainHypernetwork's previews add to a training run, per preview.

Three things, taking turns in one process (medians of several runs):
- `train`: the TrainHypernetwork node, `--steps` steps, previews off;
- `train+previews`: the same with a VAE and one preview prompt, previews every `--every` steps
  (so the base picture plus steps/every pictures);
- `ksampler`: the floor for one picture: KSampler + VAE Decode of the same prompt and settings with
  the trained network applied (Apply Hypernetwork, strength 1), as a user would draw it by hand.
Added cost per preview = (train+previews - train) / pictures; the ratio to `ksampler` says how much a
preview costs beyond drawing that picture at all (the pause, reloading the training clone, PNG files).

Model: the tiny SD1-like UNet of the tests (`--kind tiny_sd1`) or true SD1.5 shapes (`--kind sd15`),
random weights, with the tests' tiny AutoencoderKL (8x, 4 channels); preview `--size` pixels square.

Usage: .venv/bin/python benchmarks/bench_previews.py [--kind tiny_sd1|sd15] [--steps 8] [--every 2]
       [--size 64] [--sampling-steps 20] [--repeats 3]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import interleaved_medians, logger, start_host_for_benchmark  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kind", default="tiny_sd1", choices=("tiny_sd1", "sd15"))
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--every", type=int, default=2)
    parser.add_argument("--size", type=int, default=64, help="preview width and height in pixels")
    parser.add_argument("--sampling-steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    options = parser.parse_args()
    host, models = start_host_for_benchmark()
    from tests.training import comfy_training as ct
    import torch

    with torch.inference_mode():  # as a loader node leaves them: inference tensors
        model = getattr(models, options.kind)(seed=0)
    vae = ct.tiny_vae()
    latents, conditioning = ct.dataset(count=4, size=8)
    generator = torch.Generator().manual_seed(1)
    with torch.inference_mode():
        prompt = [[torch.randn(1, 77, 768, generator=generator), {}]]
        negative = [[torch.zeros(1, 77, 768), {}]]
    sampling = dict(preview_seed=3, preview_steps=options.sampling_steps, preview_cfg=5.0, preview_sampler="euler",
                    preview_scheduler="normal", preview_width=options.size, preview_height=options.size)
    training = dict(steps=options.steps, learning_rate="1e-3", activation="relu", seed=1)
    pictures = 1 + len([s for s in range(1, options.steps + 1) if s % options.every == 0 or s == options.steps])
    trained = {}

    def train_plain():
        trained["network"] = ct.train(host, model, latents, conditioning, name="bench_plain", **training)[1]

    def train_with_previews():
        ct.train_node_output(host, model, latents, conditioning, name="bench_previews", preview_every=options.every,
                             **training, **sampling, list_inputs={"preview_vae": [vae], "preview_positive": [prompt],
                                                                  "preview_negative": [negative]})

    def ksampler():
        empty = {"samples": torch.zeros(1, 4, options.size // 8, options.size // 8)}
        with torch.inference_mode():
            (applied,) = host.node_class("ApplyHypernetwork")().apply(model, trained["network"], 1.0)
            (samples,) = host.node_class("KSampler")().sample(applied, 3, options.sampling_steps, 5.0, "euler",
                                                               "normal", prompt, negative, empty)
            host.node_class("VAEDecode")().decode(vae, samples)

    train_plain()  # the network ksampler draws with
    logger.info("model %s, %d training steps (batch 1, 8x8 latents), previews every %d = %d pictures of %dx%d px, "
                "%d sampling steps (euler, cfg 5), device %s, %d threads", options.kind, options.steps, options.every,
                pictures, options.size, options.size, options.sampling_steps,
                "cuda" if torch.cuda.is_available() else "cpu", torch.get_num_threads())
    timings = interleaved_medians({"train": train_plain, "train+previews": train_with_previews, "ksampler": ksampler},
                                  options.repeats)
    for name, (median, runs) in timings.items():
        logger.info("%-15s median %.3f s  (runs: %s)", name, median, ", ".join(f"{r:.3f}" for r in runs))
    added = (timings["train+previews"][0] - timings["train"][0]) / pictures
    logger.info("added per preview %.3f s; ratio to one KSampler + VAE Decode picture %.2f; one training step %.3f s",
                added, added / timings["ksampler"][0], timings["train"][0] / options.steps)


if __name__ == "__main__":
    main()

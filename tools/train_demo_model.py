"""Train the demo model the main job draws with: a TAESD autoencoder, then a small SD1.5-layout UNet.

    python -m tools.train_demo_model --comfyui .host/ComfyUI [--work out/demo_model_training]
        [--taesd-steps 1500] [--unet-steps 2500] [--threads 2]

Stages, each resumable (state files in ``--work``, a checkpoint every ``--save-every`` steps; run
the same command again after an interruption and it carries on from the last one):

1. ``taesd``: ComfyUI's TAESD (64x64 RGB <-> 4x8x8) learns to reconstruct pictures of the shape
   world (``tools.shape_world``), every style included, held-out styles too: it is the model's
   image codec, like SD's VAE, which saw all kinds of pictures. Its ``vae_scale`` / ``vae_shift``
   are then set so that latents, after SD1.5's latent scale (x 0.18215), have mean 0 and std 1.
2. ``data``: the base-style pictures are encoded through ComfyUI's own VAE and CLIP code (the
   assembled checkpoint loaded by ``comfy.sd``), exactly as a workflow would encode them.
3. ``unet``: the UNet learns eps-prediction on ComfyUI's SD1.5 noise schedule, 10 % of captions
   dropped (empty prompt) so that classifier-free guidance works; weights are averaged (EMA).

Results go to ``assets/demo_model/`` as fp16 safetensors. Every random draw comes from the seed
and the step number, so a resumed run is the run it would have been. Made by this project; the
data are procedural and the weights its own (CC0).
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

log = logging.getLogger("train_demo_model")

SEED = 20261128
BASE_PICTURES = 4000
HELD_OUT_STYLE_PICTURES = 1500
SD15_LATENT_SCALE = 0.18215
CAPTION_DROPOUT = 0.1
TAESD_BATCH = 12


# ---------------------------------------------------------------------------------------------
# Helpers

def step_generator(seed: int, step: int):
    import torch
    return torch.Generator().manual_seed(seed * 1_000_003 + step)


def save_state(path: Path, state: dict) -> None:
    import torch
    tmp = path.with_name(path.name + ".partial")
    torch.save(state, tmp)
    os.replace(tmp, path)


def save_weights(path: Path, state_dict: dict, metadata: dict) -> None:
    import torch
    from safetensors.torch import save_file
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    save_file({k: v.detach().to(torch.float16).contiguous() for k, v in state_dict.items()}, str(tmp),
              metadata={k: str(v) for k, v in metadata.items()})
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def learning_rate(step: int, total: int, peak: float, warmup: int) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup))))


class Progress:
    """A log line every ``every`` steps with loss and time left (the log is the progress bar)."""

    def __init__(self, name: str, start: int, total: int, every: int = 25):
        self.name, self.start, self.total, self.every = name, start, total, every
        self.t0, self.losses = time.perf_counter(), []

    def update(self, step: int, loss: float) -> None:
        self.losses.append(loss)
        done = step + 1
        if done % self.every and done != self.total:
            return
        rate = (time.perf_counter() - self.t0) / max(1, done - self.start)
        log.info("%s step %d/%d loss %.5f (mean of last %d) %.2f s/step, %.1f min left", self.name, done,
                 self.total, float(np.mean(self.losses)), len(self.losses), rate, rate * (self.total - done) / 60)
        self.losses = []


# ---------------------------------------------------------------------------------------------
# Pictures

def picture_pool(work: Path):
    """Base-style scenes (the UNet's data) and held-out-style ones (the autoencoder also sees them)."""
    import torch
    from . import shape_world as world

    path = work / "pictures.pt"
    if path.is_file():
        return torch.load(path, weights_only=False)
    t0 = time.perf_counter()
    base = world.sample_scenes(BASE_PICTURES, SEED)
    held = world.sample_scenes(HELD_OUT_STYLE_PICTURES, SEED + 1, styles=world.HELD_OUT_STYLES,
                               combinations=world.all_combinations())
    pool = {
        "base_images": torch.from_numpy(np.stack([world.render(s) for s in base])),
        "base_captions": [s.caption for s in base],
        "held_out_images": torch.from_numpy(np.stack([world.render(s) for s in held])),
    }
    save_state(path, pool)
    log.info("rendered %d + %d pictures in %.0f s", len(base), len(held), time.perf_counter() - t0)
    return pool


def as_float(images_uint8):
    return images_uint8.permute(0, 3, 1, 2).float() / 255.0  # [B, 3, H, W] in [0, 1]


# ---------------------------------------------------------------------------------------------
# Stage 1: autoencoder

def train_taesd(work: Path, steps: int, save_every: int) -> None:
    import torch
    import comfy.taesd.taesd
    from .default_model import randomize_
    from .demo_checkpoint import TAESD_FILE

    if TAESD_FILE.is_file():
        log.info("taesd: %s exists, skipping", TAESD_FILE)
        return
    pool = picture_pool(work)
    images = torch.cat([pool["base_images"], pool["held_out_images"]])
    model = comfy.taesd.taesd.TAESD(latent_channels=4)
    randomize_(model, SEED + 10)
    opt = torch.optim.Adam([p for n, p in model.named_parameters() if not n.startswith("vae_")], lr=1e-3)
    state_path, start = work / "taesd_state.pt", 0
    if state_path.is_file():
        state = torch.load(state_path, weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        start = state["step"]
        log.info("taesd: resuming at step %d", start)
    progress = Progress("taesd", start, steps)
    for step in range(start, steps):
        g = step_generator(SEED + 11, step)
        x = as_float(images[torch.randint(len(images), (TAESD_BATCH,), generator=g)])
        x = torch.where(torch.rand(TAESD_BATCH, 1, 1, 1, generator=g) < 0.5, x.flip(3), x)
        if step < steps * 3 // 7:
            # First a 32x32 crop on the latent grid (the autoencoder is convolutional; a crop costs a
            # quarter), then whole pictures, so the decoder learns from the whole picture's context.
            top, left = (8 * torch.randint(5, (2,), generator=g)).tolist()
            x = x[:, :, top:top + 32, left:left + 32]
        else:
            x = x[:TAESD_BATCH * 2 // 3]
        for group in opt.param_groups:
            group["lr"] = learning_rate(step, steps, 1e-3, 100)
        with torch.autocast("cpu", dtype=torch.bfloat16):  # bf16 compute, fp32 master weights: 2x on CPU
            latent = model.taesd_encoder(x).float()
            # Noise on the latent: the decoder must also draw well from a diffusion model's imperfect latents.
            noisy = latent + 0.1 * latent.detach().std() * torch.randn(latent.shape, generator=g)
            out = model.taesd_decoder(noisy).float()
        loss = torch.nn.functional.mse_loss(out, x) + 0.1 * (out - x).abs().mean() + 1e-4 * latent.pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        progress.update(step, loss.item())
        if (step + 1) % save_every == 0 or step + 1 == steps:
            save_state(state_path, {"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step + 1})
    with torch.no_grad():
        latents = torch.cat([model.taesd_encoder(as_float(images[i:i + 256])) for i in range(0, 2048, 256)])
        # ComfyUI: raw = enc / vae_scale + vae_shift, and the UNet sees raw * 0.18215.
        model.vae_scale.fill_(SD15_LATENT_SCALE * latents.std().item())
        model.vae_shift.fill_(-latents.mean().item() / model.vae_scale.item())
    save_weights(TAESD_FILE, model.state_dict(), {"recipe": "tools/train_demo_model.py taesd", "seed": SEED,
                                                 "steps": steps, "license": "CC0-1.0"})
    log.info("taesd: wrote %s (vae_scale %.4f, vae_shift %.4f)", TAESD_FILE, model.vae_scale.item(),
             model.vae_shift.item())


# ---------------------------------------------------------------------------------------------
# Stage 2: latents and conditionings through ComfyUI's own loaders

def load_pipeline(unet_state_dict: dict, work: Path):
    """(model patcher, clip, vae) from a checkpoint assembled with these UNet weights."""
    from safetensors.torch import load_file, save_file
    import comfy.sd
    from .demo_checkpoint import TAESD_FILE, assemble

    path = work / "pipeline.safetensors"
    save_file(assemble(unet_state_dict, load_file(str(TAESD_FILE))), str(path))
    model, clip, vae, _ = comfy.sd.load_checkpoint_guess_config(str(path), output_vae=True, output_clip=True)
    return model, clip, vae


def encode_captions(clip, captions: list[str]):
    """[len(captions), 77, 768] fp16, as CLIPTextEncode makes them, in one batched call.

    ComfyUI encodes a prompt's 77-token chunks as rows of one batch and concatenates them, each
    chunk independently of the others, so several captions' chunks can share one call.
    """
    import torch

    tokens = [clip.tokenize(c) for c in captions]
    merged = {key: [chunk for t in tokens for chunk in t[key]] for key in tokens[0]}
    if any(len(t[key]) != 1 for t in tokens for key in t):
        raise ValueError("a caption longer than one 77-token chunk")
    with torch.no_grad():
        cond = clip.encode_from_tokens(merged)
    return cond.reshape(len(captions), 77, -1).to(torch.float16)


def encode_data(work: Path, unet) -> dict:
    import torch

    path = work / "data.pt"
    if path.is_file():
        return torch.load(path, weights_only=False)
    t0 = time.perf_counter()
    pool = picture_pool(work)
    model, clip, vae = load_pipeline(unet.state_dict(), work)
    latent_format = model.model.latent_format
    images = pool["base_images"].float() / 255.0  # ComfyUI IMAGE: [B, H, W, C] in [0, 1]
    with torch.no_grad():
        latents = torch.cat([latent_format.process_in(vae.encode(images[i:i + 200]))
                             for i in range(0, len(images), 200)])
    captions = sorted(set(pool["base_captions"])) + [""]
    conds = torch.cat([encode_captions(clip, captions[i:i + 64]) for i in range(0, len(captions), 64)])
    index = {c: i for i, c in enumerate(captions)}
    data = {"latents": latents.float(), "cond_index": torch.tensor([index[c] for c in pool["base_captions"]]),
            "conds": conds, "captions": captions}
    save_state(path, data)
    log.info("data: %d latents (mean %.3f, std %.3f), %d captions encoded in %.0f s", len(latents),
             latents.mean().item(), latents.std().item(), len(captions), time.perf_counter() - t0)
    return data


# ---------------------------------------------------------------------------------------------
# Stage 3: UNet

def new_unet():
    from .default_model import randomize_
    from .demo_checkpoint import model_config

    model = model_config().get_model({}, device="cpu")
    randomize_(model.diffusion_model, SEED + 20)
    return model  # comfy BaseModel: .diffusion_model, .model_sampling


def train_unet(work: Path, steps: int, batch: int, save_every: int) -> None:
    import torch
    from .demo_checkpoint import UNET_FILE

    if UNET_FILE.is_file():
        log.info("unet: %s exists, skipping", UNET_FILE)
        return
    base = new_unet()
    data = encode_data(work, base.diffusion_model)
    unet = base.diffusion_model.float().train()
    ema = {k: v.detach().clone() for k, v in unet.state_dict().items()}
    opt = torch.optim.AdamW(unet.parameters(), lr=2e-4, weight_decay=0.01)
    state_path, start, history = work / "unet_state.pt", 0, []
    if state_path.is_file():
        state = torch.load(state_path, weights_only=False)
        unet.load_state_dict(state["model"])
        ema = state["ema"]
        opt.load_state_dict(state["optimizer"])
        start, history = state["step"], state["history"]
        log.info("unet: resuming at step %d", start)
    sigmas = base.model_sampling.sigmas.float()
    latents, cond_index, conds = data["latents"], data["cond_index"], data["conds"]
    empty = len(data["captions"]) - 1
    progress = Progress("unet", start, steps)
    for step in range(start, steps):
        g = step_generator(SEED + 21, step)
        pick = torch.randint(len(latents), (batch,), generator=g)
        x0 = latents[pick]
        which = torch.where(torch.rand(batch, generator=g) < CAPTION_DROPOUT, empty, cond_index[pick])
        context = conds[which].float()
        t = torch.randint(len(sigmas), (batch,), generator=g)
        sigma = sigmas[t].view(-1, 1, 1, 1)
        noise = torch.randn(x0.shape, generator=g)
        x_in = (x0 + noise * sigma) / (sigma ** 2 + 1).sqrt()  # ComfyUI's eps input scaling
        for group in opt.param_groups:
            group["lr"] = learning_rate(step, steps, 3e-4, 100)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            eps = unet(x_in, timesteps=t.float(), context=context).float()
        loss = torch.nn.functional.mse_loss(eps, noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        decay = min(0.999, (step + 1) / (step + 10))
        with torch.no_grad():
            for k, v in unet.state_dict().items():
                ema[k].lerp_(v, 1 - decay) if v.is_floating_point() else ema[k].copy_(v)
        history.append(loss.item())
        progress.update(step, loss.item())
        if (step + 1) % save_every == 0 or step + 1 == steps:
            save_state(state_path, {"model": unet.state_dict(), "ema": ema, "optimizer": opt.state_dict(),
                                    "step": step + 1, "history": history})
    save_weights(UNET_FILE, ema, {"recipe": "tools/train_demo_model.py unet", "seed": SEED, "steps": steps,
                                  "batch": batch, "license": "CC0-1.0"})
    curve = [float(np.mean(history[i:i + 100])) for i in range(0, len(history), 100)]
    (UNET_FILE.parent / "unet_loss.json").write_text(json.dumps({"loss_per_100_steps": curve}, indent=1) + "\n")
    log.info("unet: wrote %s", UNET_FILE)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--comfyui", required=True, type=Path)
    p.add_argument("--work", type=Path, default=Path("out/demo_model_training"))
    p.add_argument("--taesd-steps", type=int, default=2800)
    p.add_argument("--unet-steps", type=int, default=2200)
    p.add_argument("--batch", type=int, default=24)
    p.add_argument("--save-every", type=int, default=100)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--stage", choices=("all", "taesd", "unet"), default="all")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sys.path.insert(0, str(args.comfyui.resolve()))
    import torch
    from comfy.cli_args import args as comfy_args
    comfy_args.cpu = True
    torch.set_num_threads(args.threads)
    args.work.mkdir(parents=True, exist_ok=True)
    if args.stage in ("all", "taesd"):
        train_taesd(args.work, args.taesd_steps, args.save_every)
    if args.stage in ("all", "unet"):
        train_unet(args.work, args.unet_steps, args.batch, args.save_every)
    return 0


if __name__ == "__main__":
    sys.exit(main())

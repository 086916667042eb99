"""The embedded default model: a checkpoint that ComfyUI loads as SD1.5, made here, cached.

No weights can be downloaded, so the main job uses a checkpoint this project makes. Variants:

* ``demo`` (default): the small model the project trained to draw its shape world
  (``tools/train_demo_model.py``; trained UNet and TAESD autoencoder weights committed under
  ``assets/demo_model/``, plus a seeded random CLIP-L, see ``tools/demo_checkpoint.py``). It draws
  "a red circle on a blue background" and nothing else: a demonstration, not a general model.
* ``sd15-small``: random weights, SD1.5's UNet with one res block per level and three levels
  (channel_mult 1, 2, 4), real CLIP-L and VAE shapes: the cost of a larger model, no pictures.
* ``sd15``: random weights, the true SD1.5 UNet shapes.

Files have the layout of an original SD1.5 checkpoint (``model.diffusion_model.*``,
``cond_stage_model.transformer.text_model.*``, ``first_stage_model.*``), written with ComfyUI's own
key conversions, so ``CheckpointLoaderSimple`` detects them as it detects a real one. The file is
cached and regenerated only when missing or not the expected one (its metadata names the recipe,
and for ``demo`` the hash of the committed weights).

Run as a module (it imports ComfyUI, so the main job runs it as a subprocess)::

    python -m tools.default_model --comfyui .host/ComfyUI --out model.safetensors [--variant demo]
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

try:  # POSIX only; without it two generators at once are not kept apart
    import fcntl
except ImportError:
    fcntl = None

from . import demo_checkpoint

log = logging.getLogger(__name__)

# Bump when the recipe changes, so cached files made by an older recipe are rebuilt.
RECIPE_VERSION = "2"
DEFAULT_SEED = 1234
DEFAULT_VARIANT = "demo"
DEMO = "demo"

_UNET_COMMON = {
    "use_checkpoint": False, "image_size": 32, "in_channels": 4, "out_channels": 4,
    "use_spatial_transformer": True, "legacy": False, "use_temporal_attention": False,
    "use_temporal_resblock": False, "adm_in_channels": None, "model_channels": 320,
    "use_linear_in_transformer": False, "context_dim": 768, "num_heads": 8,
}
UNET_CONFIGS = {
    "sd15-small": {
        **_UNET_COMMON, "num_res_blocks": [1, 1, 1], "channel_mult": [1, 2, 4],
        "transformer_depth": [1, 1, 1], "transformer_depth_middle": 1,
        "transformer_depth_output": [1, 1, 1, 1, 1, 1],
    },
    "sd15": {
        **_UNET_COMMON, "num_res_blocks": [2, 2, 2, 2], "channel_mult": [1, 2, 4, 4],
        "transformer_depth": [1, 1, 1, 1, 1, 1, 0, 0], "transformer_depth_middle": 1,
        "transformer_depth_output": [1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0],
    },
    DEMO: demo_checkpoint.UNET_CONFIG,
}
# comfy.sd.VAE's default SD1.x/SD2.x VAE (AutoencoderKL).
VAE_DDCONFIG = {
    "double_z": True, "z_channels": 4, "resolution": 256, "in_channels": 3, "out_ch": 3, "ch": 128,
    "ch_mult": [1, 2, 4, 4], "num_res_blocks": 2, "attn_resolutions": [], "dropout": 0.0,
}
VAE_EMBED_DIM = 4


def file_name(variant: str) -> str:
    return "hn-demo-sd15.safetensors" if variant == DEMO else f"hn-default-{variant}.safetensors"


def expected_metadata(variant: str, seed: int) -> dict[str, str]:
    metadata = {"hn_default_model": RECIPE_VERSION, "variant": variant, "seed": str(seed)}
    if variant == DEMO:  # a new commit of the trained weights makes a new file
        metadata["weights_sha256"] = demo_checkpoint.weights_digest()
    return metadata


# ---------------------------------------------------------------------------------------------
# Cache: plain file checks, no ComfyUI and no torch needed.

def read_safetensors_header(path: Path) -> tuple[dict, int]:
    """The JSON header and the offset where tensor data starts; ValueError if malformed."""
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) != 8:
            raise ValueError("shorter than a safetensors header")
        length = int.from_bytes(head, "little")
        if not 0 < length < 100_000_000:
            raise ValueError(f"implausible header length {length}")
        header = json.loads(f.read(length))
    return header, 8 + length


def is_valid(path: Path, variant: str, seed: int) -> bool:
    """True when ``path`` is a complete file made by this recipe for ``variant`` and ``seed``."""
    try:
        header, data_start = read_safetensors_header(path)
    except (OSError, ValueError) as e:
        if path.exists():
            log.info("default model %s is unreadable (%s); regenerating", path, e)
        return False
    metadata = header.pop("__metadata__", {}) or {}
    wanted = expected_metadata(variant, seed)
    if any(metadata.get(k) != v for k, v in wanted.items()):
        log.info("default model %s was made by another recipe (%s); regenerating", path, metadata)
        return False
    data_end = max((t["data_offsets"][1] for t in header.values()), default=0)
    if path.stat().st_size != data_start + data_end or str(len(header)) != metadata.get("tensor_count"):
        log.info("default model %s is truncated or incomplete; regenerating", path)
        return False
    return True


def ensure_default_model(comfy_root: Path, cache_dir: Path, variant: str = DEFAULT_VARIANT,
                         seed: int = DEFAULT_SEED, env: dict | None = None) -> tuple[Path, bool]:
    """The cached default checkpoint, generated in a subprocess when needed.

    Returns ``(path, generated)``.
    """
    path = (Path(cache_dir) / "default_model" / file_name(variant)).resolve()
    if is_valid(path, variant, seed):
        return path, False
    path.parent.mkdir(parents=True, exist_ok=True)
    with _generation_lock(path):
        # Another process (a parallel test worker, a second main job) may have made it meanwhile.
        if is_valid(path, variant, seed):
            return path, False
        cmd = [sys.executable, "-m", "tools.default_model", "--comfyui", str(comfy_root),
               "--variant", variant, "--seed", str(seed), "--out", str(path)]
        log.info("generating the default model (%s, seed %d): %s", variant, seed, path)
        # cwd: the repository root, so `-m tools.default_model` imports from anywhere.
        subprocess.run(cmd, check=True, env=env, cwd=Path(__file__).resolve().parents[1])
    if not is_valid(path, variant, seed):
        raise RuntimeError(f"the default model generator did not produce a valid {path}")
    return path, True


@contextmanager
def _generation_lock(path: Path):
    """Hold ``<checkpoint>.lock`` while generating: two generators would share one ``.partial`` file.
    Blocking, so the second caller waits and then finds the file made. (No lock without fcntl.)"""
    if fcntl is None:
        yield
        return
    fd = os.open(Path(f"{path}.lock"), os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing drops the lock


# ---------------------------------------------------------------------------------------------
# Generation: needs ComfyUI on sys.path (run through main()).

def build_state_dict(variant: str, seed: int):
    """The full checkpoint state dict (fp16), keys as in an original SD1.5 file."""
    if variant == DEMO:
        return demo_checkpoint.assemble(*demo_checkpoint.load_trained_parts())
    import torch
    import comfy.sd1_clip
    import comfy.supported_models
    from comfy.ldm.models.autoencoder import AutoencoderKL

    model_config = comfy.supported_models.SD15(dict(UNET_CONFIGS[variant]))
    model_config.set_inference_dtype(torch.float32, None)
    model = model_config.get_model({}, device="cpu")
    randomize_(model.diffusion_model, seed)

    clip = comfy.sd1_clip.SD1ClipModel(device="cpu", dtype=torch.float32)
    randomize_(clip, seed + 1)

    vae = AutoencoderKL(ddconfig=dict(VAE_DDCONFIG), embed_dim=VAE_EMBED_DIM)
    randomize_(vae, seed + 2)
    return demo_checkpoint.checkpoint_keys(model_config, model.diffusion_model.state_dict(), vae.state_dict(),
                                           model_config.process_clip_state_dict_for_saving(clip.state_dict()))


def randomize_(module, seed: int) -> None:
    """Fill every parameter from ``seed`` with torch's default init for its layer type.

    ComfyUI's layers (comfy.ops) skip initialisation because a checkpoint overwrites it, so their
    parameters hold whatever memory was there: call the torch base class's ``reset_parameters``.
    """
    import torch

    done: set[int] = set()
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for sub in module.modules():
            reset = _torch_reset_parameters(type(sub))
            if reset is not None:
                reset(sub)
                done.update(id(p) for p in sub.parameters(recurse=False))
        for p in module.parameters():
            if id(p) not in done:  # anything exotic: small noise, never uninitialised memory
                p.normal_(0.0, 0.02)


def _torch_reset_parameters(cls: type):
    for base in cls.__mro__:
        if base.__module__.startswith("torch.nn.modules") and "reset_parameters" in base.__dict__:
            return base.__dict__["reset_parameters"]
    return None


def check_detected_as_sd15(path: Path, variant: str) -> None:
    """Run ComfyUI's own detector on the file's keys and shapes; raise unless it says SD15."""
    import torch
    import comfy.model_detection
    import comfy.supported_models

    header, _ = read_safetensors_header(path)
    header.pop("__metadata__", None)
    shapes = {k: torch.empty(v["shape"], device="meta") for k, v in header.items()}
    prefix = comfy.model_detection.unet_prefix_from_state_dict(shapes)
    config = comfy.model_detection.model_config_from_unet(shapes, prefix)
    if type(config) is not comfy.supported_models.SD15:
        raise RuntimeError(f"ComfyUI detects {path} as {type(config).__name__}, not SD15")
    for key in ("num_res_blocks", "channel_mult", "transformer_depth_output"):
        if config.unet_config[key] != UNET_CONFIGS[variant][key]:
            raise RuntimeError(f"detected {key} {config.unet_config[key]} != {UNET_CONFIGS[variant][key]}")


def generate(path: Path, variant: str, seed: int) -> None:
    from safetensors.torch import save_file

    t0 = time.perf_counter()
    state_dict = build_state_dict(variant, seed)
    built = time.perf_counter()
    metadata = {**expected_metadata(variant, seed), "tensor_count": str(len(state_dict)),
                "modelspec.architecture": "stable-diffusion-v1",
                "description": ("the shape-world demo model trained by comfyui-hypernetworks (CC0)" if variant == DEMO
                                else "random weights, made by comfyui-hypernetworks tools/default_model.py")}
    tmp = path.with_name(path.name + ".partial")
    save_file(state_dict, str(tmp), metadata=metadata)
    del state_dict
    check_detected_as_sd15(tmp, variant)
    os.chmod(tmp, 0o644)  # safetensors creates it owner-only; a model file is ordinarily shared
    os.replace(tmp, path)  # atomic: a half-written file never looks like a cached one
    log.info("default model %s: %.1f MB, built in %.1f s, written in %.1f s", path,
             path.stat().st_size / 1e6, built - t0, time.perf_counter() - built)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--comfyui", required=True, type=Path, help="the ComfyUI tree to take the model classes from")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--variant", choices=sorted(UNET_CONFIGS), default=DEFAULT_VARIANT)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    sys.path.insert(0, str(args.comfyui.resolve()))  # first: the repo's nodes/ must not shadow ComfyUI's
    import torch
    from comfy.cli_args import args as comfy_args

    if not torch.cuda.is_available():
        comfy_args.cpu = True  # read when comfy.model_management is first imported
    generate(args.out.resolve(), args.variant, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())

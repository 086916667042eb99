"""The test host itself: a real ComfyUI, our pack loaded by ComfyUI's loader, honest model fixtures."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.host import comfy_host as host_module

OUR_NODES = ("LoadHypernetwork", "ApplyHypernetwork")


# --- the host and our pack -------------------------------------------------------------------


def test_pack_loads_through_comfyui_loader(comfy_host):
    assert comfy_host.pack_load_error is None, f"ComfyUI failed to load the pack:\n{comfy_host.pack_load_error}"
    registered = comfy_host.nodes.NODE_CLASS_MAPPINGS
    for name in OUR_NODES:
        assert name in registered, f"{name} not registered; the pack added {comfy_host.pack_node_names}"
        assert name in comfy_host.pack_node_names
        cls = registered[name]
        # Came in through the pack package ComfyUI imported, not a top-level `nodes`/`hn_core` import.
        assert cls.__module__.startswith(comfy_host.pack_module_name + "."), cls.__module__
        assert cls.RELATIVE_PYTHON_MODULE == f"custom_nodes.{comfy_host.pack_dir.name}"


def test_comfyui_builtin_hypernetwork_loader_is_available(comfy_host):
    cls = comfy_host.node_class("HypernetworkLoader")
    assert cls.RELATIVE_PYTHON_MODULE == "comfy_extras.nodes_hypernetwork"
    # Our pack must not take over ComfyUI's node id.
    assert "HypernetworkLoader" not in comfy_host.pack_node_names


def test_host_is_the_pinned_or_requested_comfyui(comfy_host):
    import comfy.model_patcher  # comfy/ is a namespace package: ask one of its modules

    assert Path(comfy.model_patcher.__file__).resolve().parent == host_module.comfyui_root() / "comfy"
    assert comfy_host.nodes.__file__ == str(comfy_host.root / "nodes.py")


def test_model_and_output_dirs_are_session_temp_dirs(comfy_host, hypernetwork_dir):
    fp = comfy_host.folder_paths
    base = comfy_host.base_dir.resolve()
    assert hypernetwork_dir.is_dir() and hypernetwork_dir.resolve().is_relative_to(base)
    assert Path(fp.get_folder_paths("checkpoints")[0]).resolve().is_relative_to(base)
    assert Path(fp.get_output_directory()).resolve().is_relative_to(base)
    assert not base.is_relative_to(comfy_host.root.resolve())
    # ComfyUI's own lookup finds what a test drops into the folder.
    (hypernetwork_dir / "host_probe.pt").write_bytes(b"")
    try:
        assert "host_probe.pt" in fp.get_filename_list("hypernetworks")
        assert fp.get_full_path("hypernetworks", "host_probe.pt") == str(hypernetwork_dir / "host_probe.pt")
    finally:
        (hypernetwork_dir / "host_probe.pt").unlink()


def test_cpu_is_used_without_cuda(comfy_host):
    import torch
    import comfy.model_management as mm

    if not torch.cuda.is_available():
        assert mm.get_torch_device().type == "cpu"


# --- the model fixtures --------------------------------------------------------------------------


def _widths(patcher):
    from tests.host import models

    w = models.attention_widths(patcher)
    return set(w.attn1), set(w.attn2)


def test_tiny_model_widths(tiny_model):
    from tests.host import models

    assert _widths(tiny_model) == ({32, 64, 128}, {768})
    assert models.TINY_SD1_UNET["context_dim"] == 768


def test_sd15_model_widths(sd15_model):
    assert _widths(sd15_model) == ({320, 640, 1280}, {768})
    assert len(_transformer_blocks(sd15_model)) == 16


def test_sd2_model_widths(sd2_model):
    assert _widths(sd2_model) == ({320, 640, 1280}, {1024})


def test_sdxl_model_widths(sdxl_model):
    assert _widths(sdxl_model) == ({640, 1280}, {2048})
    assert len(_transformer_blocks(sdxl_model)) == 70


def _transformer_blocks(patcher):
    from tests.host import models

    return models.transformer_blocks(patcher)


def test_model_fixture_is_a_fresh_clone_of_a_shared_model(comfy_host, tiny_model):
    from tests.host import models

    shared = models.tiny_sd1()
    assert tiny_model is not shared
    assert tiny_model.model is shared.model  # weights shared, patches not
    assert tiny_model.model_options is not shared.model_options


def test_weights_are_seeded(comfy_host):
    import torch
    import comfy.supported_models
    from tests.host import models

    def weights(seed):
        patcher = models.build(comfy.supported_models.SD15, models.TINY_SD1_UNET, seed=seed)
        return patcher.model.diffusion_model.state_dict()

    a, b, c = weights(3), weights(3), weights(4)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)
    assert all(torch.isfinite(v).all() for v in a.values())


# --- the UNet forward helper ---------------------------------------------------------------------


def test_unet_forward_is_deterministic(tiny_model):
    import torch
    from tests.host import models

    x, context = models.seeded_inputs(tiny_model)
    first = models.unet_forward(tiny_model, x, 2.0, context)
    second = models.unet_forward(tiny_model, x, 2.0, context)
    assert first.shape == x.shape and torch.isfinite(first).all()
    assert torch.equal(first, second)


def test_sd15_unet_forward_is_deterministic(sd15_model):
    import torch
    from tests.host import models

    x, context = models.seeded_inputs(sd15_model)
    assert torch.equal(models.unet_forward(sd15_model, x, 1.0, context), models.unet_forward(sd15_model, x, 1.0, context))


class _RecordingPatch:
    """An attn patch like ours: ``fn(q, k, v, extra_options)``, movable with ``to()``."""

    def __init__(self, scale: float = 1.0):
        self.scale = scale
        self.calls: list[dict] = []
        self.moved_to: list = []

    def __call__(self, q, k, v, extra_options):
        self.calls.append(dict(extra_options, k_dim=k.shape[-1]))
        return q, k * self.scale, v

    def to(self, target):
        self.moved_to.append(target)
        return self


def test_unet_forward_runs_attention_patches_like_a_sampler(tiny_model):
    import torch
    from tests.host import models

    x, context = models.seeded_inputs(tiny_model)
    plain = models.unet_forward(tiny_model, x, 2.0, context)

    patched = tiny_model.clone()
    p1, p2 = _RecordingPatch(1.5), _RecordingPatch(1.5)
    patched.set_model_attn1_patch(p1)
    patched.set_model_attn2_patch(p2)
    sigmas = torch.tensor([2.0, 1.0, 0.0])
    out = models.unet_forward(patched, x, 2.0, context, sigmas=sigmas)

    assert not torch.equal(out, plain)
    n_blocks = len(models.transformer_blocks(tiny_model))
    assert len(p1.calls) == len(p2.calls) == n_blocks
    assert {c["k_dim"] for c in p1.calls} == {32, 64, 128}
    assert {c["k_dim"] for c in p2.calls} == {768}
    first = p1.calls[0]
    assert first["block"] == ("input", 1) and first["transformer_index"] == 0
    assert torch.equal(first["sigmas"].cpu(), torch.tensor([2.0]))
    assert torch.equal(first["sample_sigmas"].cpu(), sigmas)
    assert first["cond_or_uncond"] == [0]
    # ComfyUI moved the patch with the model: device first, then the model's dtype.
    assert tiny_model.load_device in p1.moved_to and tiny_model.model_dtype() in p1.moved_to
    # The input model is untouched.
    assert "patches" not in tiny_model.model_options["transformer_options"]


def test_sdxl_unet_forward_runs(sdxl_model):
    import torch
    from tests.host import models

    x, context = models.seeded_inputs(sdxl_model, tokens=8)
    out = models.unet_forward(sdxl_model, x, 1.0, context)
    assert out.shape == x.shape and torch.isfinite(out).all()


# --- ComfyUI's own startup, as a user runs it ---------------------------------------------------


@pytest.mark.comfy
def test_comfyui_main_starts_with_the_pack_installed(tmp_path):
    root = host_module.comfyui_root()
    base = tmp_path / "base"
    (base / "custom_nodes").mkdir(parents=True)
    link = base / "custom_nodes" / "comfyui-hypernetworks"
    link.symlink_to(host_module.REPO_ROOT, target_is_directory=True)
    cmd = [
        sys.executable, "main.py", "--cpu", "--quick-test-for-ci",
        "--base-directory", str(base),
        "--database-url", "sqlite:///:memory:",  # ComfyUI's default database lives in its own tree
    ]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # as a user runs it: no repo on the path
    proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=600)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    ours = [line for line in output.splitlines() if line.rstrip().endswith(str(link))]
    assert ours, f"ComfyUI did not report importing {link}:\n{output[-4000:]}"
    assert not any("IMPORT FAILED" in line for line in ours), "\n".join(ours) + "\n" + output[-4000:]
    assert f"Cannot import {link}" not in output, output[-4000:]

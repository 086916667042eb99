"""Write a hypernetwork's weight changes as a kohya-format LoRA (``.safetensors``), atomically.

Usable from a plain script, without ComfyUI::

    from safetensors.torch import load_file
    from hn_core import load_hypernetwork
    from hn_core.export.lora_export import attention_weights_from_state_dict
    from hn_core.export.lora_file import export_lora

    checkpoint = load_file("sd15.safetensors")
    layers = attention_weights_from_state_dict(checkpoint, prefix="model.diffusion_model.")
    summary = export_lora(load_hypernetwork("style.pt"), layers, "style_lora.safetensors",
                          res_blocks_per_level=[2, 2, 2, 2])          # SDXL: sgm=True
    print(summary.text())

Per exported layer and projection the file holds ``<stem>.lora_up.weight`` [out, r],
``<stem>.lora_down.weight`` [r, in] and ``<stem>.alpha``. The alpha is the same for every module
(``shared_alpha``) and each module's r / alpha is folded into its up factor, so
``up @ down * alpha / r`` is the change for every reader: ComfyUI, A1111 and Forge scale each module
by its own alpha / r, but diffusers (peft) keeps one alpha for all modules (the most common one; its
per-module ``alpha_pattern`` from kohya files matches nothing and is ignored) over each module's own
r. A full-rank export has several ranks (one per projection shape), a rank-r one a single rank. With
``value_bias=True`` the value offset goes to ``<to_out stem>.diff_b`` (ComfyUI reads it;
A1111/Forge refuse a module without ``diff`` and diffusers refuses unknown keys, so the
default leaves it out and the summary says what that costs).
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

import torch

from ..atomic_write import atomic_write
from .lora_export import (AttentionWeights, ExportError, LayerChange, PROJECTIONS, check_exportable, exact_affines,
                          is_affine, layer_changes)
from .lora_keys import kohya_name
from .low_rank import factorize, full_rank
from ..network.hypernetwork import Hypernetwork
from ..inference.strength_profile import StrengthProfile

SAVE_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass
class ExportSummary:
    """What an export wrote and how close it is, before any model is run."""

    layers: int = 0
    rank: int | str = "full"
    alpha: int = 1  # the one alpha of every module (shared_alpha)
    exact: bool = True  # affine network: the changes are the hypernetwork's own
    unused_dims: list[int] = field(default_factory=list)
    truncation_error: float = 0.0  # relative Frobenius error of all weight changes from the rank cut
    worst_truncation: tuple[str, float] = ("", 0.0)  # (key stem, relative error) of the worst projection
    value_bias: str = "none"  # 'none' (no value offset), 'to_out diff_b', or 'dropped'
    notes: list[str] = field(default_factory=list)

    def text(self) -> str:
        lines = [f"{self.layers} attention layers, rank {self.rank}, "
                 f"{'exact (linear network)' if self.exact else 'best linear fit of a non-linear network'}"]
        if self.rank != "full":
            lines.append(f"rank truncation leaves {self.truncation_error:.3g} relative error of the weight changes "
                         f"(worst {self.worst_truncation[1]:.3g} at {self.worst_truncation[0]})")
        if self.value_bias == "dropped":
            lines.append("value bias dropped (not in the file): the measured error includes it")
        elif self.value_bias == "to_out diff_b":
            lines.append("value bias written as to_out.0 diff_b (ComfyUI only)")
        if self.unused_dims:
            lines.append(f"dims {self.unused_dims} match no layer of this model: not exported")
        return "\n".join(lines + self.notes)


def build_changes(network: Hypernetwork, layers: Mapping[str, AttentionWeights], strength: float = 1.0,
                  profile: StrengthProfile | None = None, affines=None) -> tuple[dict[str, LayerChange], list[int]]:
    """Weight changes per layer, and the network dims no layer takes. ``affines``: from a fit
    (``linear_fit.NetworkFit.affines()``) for a non-linear network; None = exact (affine networks)."""
    profile = profile if profile is not None else StrengthProfile()
    unused = check_exportable(network, profile, layers)
    if affines is None:
        if not is_affine(network):
            raise ExportError(f"the hypernetwork uses activation {network.config.activation_func!r}"
                              f"{' and layer norm' if network.config.is_layer_norm else ''}: it is not linear, "
                              "so it needs a linear fit on calibration inputs (linear_fit.NetworkFit)")
        affines = exact_affines(network, layers)
    return layer_changes(layers, affines, strength, profile), unused


def lora_state_dict(changes: Mapping[str, LayerChange], *, rank: int = 0, sgm: bool = False,
                    res_blocks_per_level: Sequence[int] = (2, 2, 2, 2), value_bias: bool = False,
                    dtype: torch.dtype = torch.float32) -> tuple[dict[str, torch.Tensor], ExportSummary]:
    """The kohya state dict of ``changes``; refuses a rank some projection cannot hold."""
    if rank < 0:
        raise ExportError(f"rank must be 0 (full) or positive, got {rank}")
    for path, change in changes.items():
        for projection in PROJECTIONS:
            delta = change.projection(projection)
            if rank > full_rank(delta):
                raise ExportError(f"rank {rank} is larger than {path}.{projection} allows: its weight is "
                                  f"{delta.shape[0]}x{delta.shape[1]}, so its rank is at most {full_rank(delta)}. "
                                  "Choose a rank up to that, or 0 for full rank.")
    alpha = shared_alpha(rank or full_rank(change.projection(p)) for change in changes.values() for p in PROJECTIONS)
    state: dict[str, torch.Tensor] = {}
    summary = ExportSummary(layers=len(changes), rank=rank or "full", alpha=alpha)
    dropped = squared_error = squared_total = 0.0
    for path, change in sorted(changes.items()):
        for projection in PROJECTIONS:
            stem = kohya_name(path, projection, sgm=sgm, res_blocks_per_level=res_blocks_per_level)
            delta = change.projection(projection)
            factors = factorize(delta, rank)
            # Readers multiply by alpha / r: fold r / alpha in (in float64, one rounding to dtype).
            state[f"{stem}.lora_up.weight"] = (factors.up * (factors.rank / alpha)).to(dtype).contiguous()
            state[f"{stem}.lora_down.weight"] = factors.down.to(dtype).contiguous()
            # A scalar in float32 whatever dtype: it holds any rank exactly (bf16 rounds 257 to 256).
            state[f"{stem}.alpha"] = torch.tensor(float(alpha), dtype=torch.float32)
            norm = float(delta.square().sum())
            squared_total += norm
            squared_error += factors.relative_error ** 2 * norm
            if factors.relative_error >= summary.worst_truncation[1]:
                summary.worst_truncation = (stem, factors.relative_error)
        if change.to_out_bias is not None:
            if value_bias:
                stem = kohya_name(path, "to_out.0", sgm=sgm, res_blocks_per_level=res_blocks_per_level)
                state[f"{stem}.diff_b"] = change.to_out_bias.to(dtype).contiguous()
            else:
                dropped += float(change.to_out_bias.square().sum())
    if squared_total > 0:
        summary.truncation_error = (squared_error / squared_total) ** 0.5
    if any(c.to_out_bias is not None for c in changes.values()):
        summary.value_bias = "to_out diff_b" if value_bias else "dropped"
    return state, summary


def shared_alpha(ranks: Iterable[int]) -> int:
    """The one alpha of a file: its most common rank (ties: the larger), so most modules keep
    factors at scale 1, and the rank itself for a rank-r file (scale 1 everywhere)."""
    counts = Counter(int(r) for r in ranks)
    if not counts:
        return 1
    return max(counts, key=lambda r: (counts[r], r))


def lora_metadata(network: Hypernetwork, summary: ExportSummary, base_model: str) -> dict[str, str]:
    """safetensors header: kohya's keys that A1111 shows, plus this pack's export record."""
    return {
        "ss_network_module": "networks.lora",
        "ss_network_dim": str(summary.rank),
        "ss_network_alpha": str(summary.alpha),
        "ss_base_model_version": base_model,
        "ss_output_name": network.info.name or "",
        "hn_export": json.dumps({"source": network.info.name, "rank": summary.rank, "alpha": summary.alpha,
                                 "exact": summary.exact, "value_bias": summary.value_bias,
                                 "truncation_error": summary.truncation_error,
                                 "layer_structure": list(network.config.layer_structure),
                                 "activation_func": network.config.activation_func}),
    }


def write_lora(path, state: Mapping[str, torch.Tensor], metadata: Mapping[str, str]) -> None:
    """Write atomically: readers see no file or the whole file, never a part."""
    import safetensors.torch

    data = safetensors.torch.save(dict(state), metadata=dict(metadata))
    atomic_write(path, lambda f: f.write(data))


def export_lora(network: Hypernetwork, layers: Mapping[str, AttentionWeights], path, *, strength: float = 1.0,
                profile: StrengthProfile | None = None, rank: int = 0, sgm: bool = False,
                res_blocks_per_level: Sequence[int] = (2, 2, 2, 2), value_bias: bool = False,
                dtype: torch.dtype = torch.float32, affines=None, base_model: str = "") -> ExportSummary:
    """Everything above in one call, for scripts. Raises ExportError before writing anything."""
    changes, unused = build_changes(network, layers, strength, profile, affines)
    state, summary = lora_state_dict(changes, rank=rank, sgm=sgm, res_blocks_per_level=res_blocks_per_level,
                                     value_bias=value_bias, dtype=dtype)
    summary.exact, summary.unused_dims = affines is None, unused
    write_lora(path, state, lora_metadata(network, summary, base_model or ("sdxl_base_v1-0" if sgm else "sd_v1")))
    return summary

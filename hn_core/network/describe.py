"""A human-readable summary of a hypernetwork, for node outputs and logs."""
from __future__ import annotations

from .hypernetwork import Hypernetwork


def describe_as_text(network: Hypernetwork) -> str:
    d = network.describe()
    dropout = f"yes {d['dropout_structure']}" if d["use_dropout"] else "no"
    lines = [
        f"name: {d['name'] or '(unnamed)'}",
        f"dims: {', '.join(str(x) for x in d['dims'])}",
        f"layer structure: {d['layer_structure']}",
        f"activation: {d['activation_func']}" + ("" if d["activate_output"] else " (not on output)"),
        f"layer norm: {'yes' if d['is_layer_norm'] else 'no'}",
        f"dropout (training only): {dropout}",
        f"parameters: {d['parameter_count']:,}",
        f"trained steps: {d['step']}",
        f"base checkpoint: {d['sd_checkpoint_name'] or 'unknown'}"
        + (f" [{d['sd_checkpoint']}]" if d["sd_checkpoint"] else ""),
    ]
    if d["optional_info"]:
        lines.append(f"info: {d['optional_info']}")
    return "\n".join(lines)

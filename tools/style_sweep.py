"""The strength sweep of a finished job: which strength each picture was drawn at, and its style score.

A workflow's SaveImage nodes do not say which hypernetwork strength made their pictures; the graph
does. ``strength_of`` walks up from a node through its linked inputs to the nearest Apply
Hypernetwork and reads its ``strength``. ``style_sweep`` groups a job's pictures by strength and
scores each group with ``tools.style_score`` against the style pictures (the training set).
"""
from __future__ import annotations

from collections import deque
from pathlib import Path

from .style_score import colour_statistics, frechet_distance

APPLY = "ApplyHypernetwork"
PROMPT_TAGS = "ApplyPromptHypernetworks"


def _sources(node: dict) -> list[str]:
    return [v[0] for v in node.get("inputs", {}).values() if isinstance(v, list) and len(v) == 2 and isinstance(v[0], str)]


def _upstream(prompt: dict, node_id: str, class_type: str) -> dict | None:
    """The nearest node of ``class_type`` upstream of ``node_id`` (breadth first), or None."""
    queue, seen = deque([node_id]), {node_id}
    while queue:
        current = prompt.get(queue.popleft(), {})
        if current.get("class_type") == class_type:
            return current
        for source in _sources(current):
            if source not in seen:
                seen.add(source)
                queue.append(source)
    return None


def strength_of(prompt: dict, node_id: str) -> float | None:
    """The strength of the nearest Apply Hypernetwork upstream of ``node_id``, else the multiplier of the
    one ``<hypernet:…>`` tag of the nearest prompt-tag node (None: neither)."""
    apply = _upstream(prompt, node_id, APPLY)
    if apply is None:
        return _tag_multiplier(_upstream(prompt, node_id, PROMPT_TAGS))
    strength = apply["inputs"].get("strength")
    return float(strength) if isinstance(strength, (int, float)) else None


def _tag_multiplier(node: dict | None) -> float | None:
    from hn_core.prompt.a1111_tags import find_tags
    from hn_core.prompt.tag_requests import hypernet_request

    text = node["inputs"].get("text") if node else None
    tags = [tag for tag in find_tags(text) if tag.kind == "hypernet"] if isinstance(text, str) else []
    return hypernet_request(tags[0]).multiplier if len(tags) == 1 else None


def prompt_text_of(prompt: dict, node_id: str) -> str | None:
    """The positive prompt text of the nearest KSampler upstream of ``node_id``, when it is written out."""
    sampler = _upstream(prompt, node_id, "KSampler")
    positive = sampler["inputs"].get("positive") if sampler else None
    text = prompt.get(positive[0], {}).get("inputs", {}).get("text") if isinstance(positive, list) else None
    return text if isinstance(text, str) else None


def style_sweep(prompt: dict, outputs: list[tuple[str, Path]], style_pictures) -> list[dict]:
    """``[{"strength", "style_distance", "images"}]`` in ascending strength, for the pictures of
    ``outputs`` ((SaveImage node id, path) pairs) that an Apply Hypernetwork drew."""
    groups: dict[float, list[Path]] = {}
    for node_id, path in outputs:
        strength = strength_of(prompt, node_id)
        if strength is not None:
            groups.setdefault(strength, []).append(Path(path))
    reference = colour_statistics(style_pictures)
    return [{"strength": strength, "style_distance": round(frechet_distance(colour_statistics(paths), reference), 5),
             "images": [str(p) for p in sorted(paths)]}
            for strength, paths in sorted(groups.items())]

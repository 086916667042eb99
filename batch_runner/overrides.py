"""``--set NODE.inputs.NAME=VALUE``: one input of a workflow node set to a value, or swept over several.

Address: ``NODE.inputs.NAME`` or ``NODE.NAME``, NODE being a node id (``3``), a node title
(``_meta.title``, what the UI shows) or a class_type (``KSampler``), the latter two only where they
name one node of the workflow.

Value: parsed as JSON where it parses (``42``, ``0.5``, ``true``, ``"a, b"``, ``["4", 0]``), else
  * ``A..B`` or ``A..B:STEP``: a range, both ends included (``1..8``, ``0..1:0.25``), a sweep;
  * ``V1,V2,...``: a list, a sweep; each item parsed as JSON where it parses, else a string;
  * anything else: the string as written (``euler``).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from .errors import BatchError

_RANGE = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*\.\.\s*(-?\d+(?:\.\d+)?)\s*(?::\s*(\d+(?:\.\d+)?))?\s*$")
MAX_SWEEP = 100_000


@dataclass(frozen=True)
class Override:
    spec: str  # as given, for messages
    node: str  # node reference: id, title or class_type
    input: str
    values: tuple

    @property
    def is_sweep(self) -> bool:
        return len(self.values) > 1


def parse_override(spec: str) -> Override:
    address, sep, text = spec.partition("=")
    parts = address.strip().split(".")
    if not sep or len(parts) < 2 or not all(parts):
        raise BatchError(f"--set {spec!r}: expected NODE.inputs.NAME=VALUE (or NODE.NAME=VALUE)")
    name = parts[-1]
    node_parts = parts[:-2] if len(parts) >= 3 and parts[-2] == "inputs" else parts[:-1]
    if not node_parts:
        raise BatchError(f"--set {spec!r}: no node before the input name")
    return Override(spec, ".".join(node_parts), name, tuple(parse_values(text, spec)))


def parse_values(text: str, spec: str = "") -> list:
    """The values a ``--set`` stands for (one for a fixed value, more for a sweep)."""
    try:
        return [json.loads(text)]
    except ValueError:
        pass
    match = _RANGE.match(text)
    if match:
        values = _range(*match.groups(), spec=spec)
    elif "," in text:
        values = [_scalar(item) for item in text.split(",")]
    else:
        return [text]
    if not values:
        raise BatchError(f"--set {spec!r}: the sweep is empty")
    if len({json.dumps(v, sort_keys=True) for v in values}) != len(values):
        raise BatchError(f"--set {spec!r}: a sweep lists the same value twice")
    return values


def _scalar(item: str):
    item = item.strip()
    try:
        return json.loads(item)
    except ValueError:
        return item


def _range(start: str, stop: str, step: str | None, spec: str) -> list:
    # Decimal, so 0..1:0.1 gives 0.3 and not 0.30000000000000004, and ends are hit exactly.
    try:
        a, b, d = Decimal(start), Decimal(stop), Decimal(step or "1")
    except InvalidOperation:
        raise BatchError(f"--set {spec!r}: bad range") from None
    if d <= 0 or b < a:
        raise BatchError(f"--set {spec!r}: a range runs upwards with a positive step (A..B:STEP, A <= B)")
    count = int((b - a) / d) + 1
    if count > MAX_SWEEP:
        raise BatchError(f"--set {spec!r}: {count} values is more than {MAX_SWEEP}")
    integers = all(s is None or "." not in s for s in (start, stop, step))
    values = [a + i * d for i in range(count)]
    return [int(v) if integers else float(v) for v in values]


def resolve_node(workflow: dict, ref: str, spec: str) -> str | None:
    """The id of the node ``ref`` names in ``workflow``: by id, else by title, else by class_type.

    None when nothing matches; BatchError when a title or class_type names several nodes.
    """
    if ref in workflow:
        return ref
    for label, key in (("title", lambda n: (n.get("_meta") or {}).get("title")),
                       ("class_type", lambda n: n.get("class_type"))):
        ids = [node_id for node_id, node in workflow.items() if key(node) == ref]
        if len(ids) == 1:
            return ids[0]
        if len(ids) > 1:
            raise BatchError(f"--set {spec!r}: {len(ids)} nodes have the {label} {ref!r} (ids {', '.join(ids)}); "
                             "use a node id")
    return None

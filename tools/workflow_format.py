"""UI-format workflows (what ComfyUI's frontend saves, ``"version": 0.4``) and their API form.

A UI workflow stores each node's widget values as a positional list (``widgets_values``) and its
connections as a separate ``links`` table; the API form names every input. ``ui_to_api`` does the
frontend's conversion ("Export (API)") using the node definitions from ``GET /object_info``, so a
test can check that a UI workflow and its API twin describe the same graph.

Widget order is the order of the node's inputs (required, then optional) that the frontend shows
as widgets; an INT marked ``control_after_generate`` (and, by the frontend's older rule, any INT
named ``seed`` / ``noise_seed``) is followed by its "control after generate" value, which the
API form does not carry. A workflow saved before a node gained an optional widget lacks its
trailing values; the frontend then uses the widget defaults, as the server does for an optional
input the API form leaves out, so those are left out here too.
"""
from __future__ import annotations

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
# Drawn by the frontend only; never sent to the server.
FRONTEND_ONLY = {"Note", "MarkdownNote"}
_CONTROL = object()  # placeholder for a "control after generate" value


class WorkflowFormatError(ValueError):
    pass


def widget_names(node_def: dict) -> list[tuple[object, bool]]:
    """``(input name, optional)`` in ``widgets_values`` order (``_CONTROL`` where a control value sits)."""
    names: list = []
    for section in ("required", "optional"):
        for name, spec in (node_def.get("input", {}).get(section) or {}).items():
            kind = spec[0]
            options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
            if not (isinstance(kind, list) or kind in WIDGET_TYPES) or options.get("forceInput"):
                continue
            optional = section == "optional"
            names.append((name, optional))
            if kind == "INT" and (options.get("control_after_generate") or name in ("seed", "noise_seed")):
                names.append((_CONTROL, optional))
    return names


def check_ui_workflow(ui: dict) -> None:
    """Structural checks of a 0.4 UI workflow: ids, and links agreeing with both ends."""
    if ui.get("version") != 0.4:
        raise WorkflowFormatError(f"expected a version 0.4 UI workflow, got version {ui.get('version')!r}")
    nodes = {n["id"]: n for n in ui["nodes"]}
    if len(nodes) != len(ui["nodes"]):
        raise WorkflowFormatError("duplicate node ids")
    if max(nodes, default=0) > ui["last_node_id"]:
        raise WorkflowFormatError("last_node_id is below a node id")
    link_ids = [link[0] for link in ui["links"]]
    if len(set(link_ids)) != len(link_ids) or max(link_ids, default=0) > ui["last_link_id"]:
        raise WorkflowFormatError("link ids are duplicated or above last_link_id")
    for link_id, origin, origin_slot, target, target_slot, kind in ui["links"]:
        try:
            out = nodes[origin]["outputs"][origin_slot]
            inp = nodes[target]["inputs"][target_slot]
        except (KeyError, IndexError):
            raise WorkflowFormatError(f"link {link_id} points at a missing node or slot") from None
        if link_id not in (out.get("links") or []) or inp.get("link") != link_id:
            raise WorkflowFormatError(f"link {link_id} is not recorded on both of its ends")
        if not (out["type"] == inp["type"] == kind):
            raise WorkflowFormatError(f"link {link_id} joins {out['type']} to {inp['type']} as {kind}")
    for node in ui["nodes"]:
        for inp in node.get("inputs", []):
            if inp.get("link") is not None and inp["link"] not in link_ids:
                raise WorkflowFormatError(f"node {node['id']} input {inp['name']} uses a missing link")


def ui_to_api(ui: dict, object_info: dict) -> dict:
    """The API-format prompt the frontend would queue for ``ui``."""
    check_ui_workflow(ui)
    links = {link[0]: link for link in ui["links"]}
    prompt = {}
    for node in ui["nodes"]:
        if node["type"] in FRONTEND_ONLY:
            continue
        if node.get("mode", 0) != 0:
            raise WorkflowFormatError(f"node {node['id']} is muted or bypassed; not supported here")
        if node["type"] not in object_info:
            raise WorkflowFormatError(f"node {node['id']}: unknown type {node['type']!r}")
        names = widget_names(object_info[node["type"]])
        values = node.get("widgets_values") or []
        if len(values) > len(names) or not all(optional for _, optional in names[len(values):]):
            raise WorkflowFormatError(f"node {node['id']} ({node['type']}): {len(values)} widget values for "
                                      f"the widgets {[n for n, _ in names if n is not _CONTROL]}")
        inputs = {name: value for (name, _), value in zip(names, values) if name is not _CONTROL}
        for inp in node.get("inputs", []):
            if inp.get("link") is not None:  # a link wins over a widget converted to an input
                link = links[inp["link"]]
                inputs[inp["name"]] = [str(link[1]), link[2]]
        prompt[str(node["id"])] = {"class_type": node["type"], "inputs": inputs}
    return prompt


def api_graph(prompt: dict) -> dict:
    """An API prompt without presentation-only fields (``_meta``), for comparisons."""
    return {node_id: {"class_type": n["class_type"], "inputs": n["inputs"]} for node_id, n in prompt.items()}

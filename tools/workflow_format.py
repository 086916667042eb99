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


def api_to_ui(prompt: dict, object_info: dict, notes: dict[str, str] | None = None,
              titles: dict[str, str] | None = None, workflow_id: str = "") -> dict:
    """A 0.4 UI workflow for an API prompt (the inverse of ``ui_to_api``), laid out left to right.

    Node ids stay the prompt's ids. Each node goes in the column of its depth in the graph (longest
    path from a node without inputs). ``notes`` adds MarkdownNote nodes (title -> text) in a first
    column; ``titles`` names nodes (id -> title) as the frontend shows them.
    """
    depth = _depths(prompt)
    links, next_link = [], 1
    outgoing: dict[tuple[str, int], list[int]] = {}
    nodes = []
    rows: dict[int, int] = {}
    for order, node_id in enumerate(sorted(prompt, key=lambda i: (depth[i], int(i)))):
        node, spec = prompt[node_id], object_info[prompt[node_id]["class_type"]]
        widgets = widget_names(spec)
        widget_set = {name for name, _ in widgets if name is not _CONTROL}
        inputs, socket_inputs, widget_inputs = node["inputs"], [], []
        for section in ("required", "optional"):
            for name, input_spec in (spec.get("input", {}).get(section) or {}).items():
                kind = input_spec[0]
                entry = {"localized_name": name, "name": name, "type": "COMBO" if isinstance(kind, list) else kind,
                         "link": None}
                if section == "optional":
                    entry["shape"] = 7
                value = inputs.get(name)
                if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str):
                    entry["link"] = next_link
                    source = prompt[value[0]]
                    out_type = object_info[source["class_type"]]["output"][value[1]]
                    links.append([next_link, int(value[0]), value[1], int(node_id), None, out_type])
                    outgoing.setdefault((value[0], value[1]), []).append(next_link)
                    next_link += 1
                if name in widget_set:
                    entry["widget"] = {"name": name}
                    widget_inputs.append(entry)
                else:
                    socket_inputs.append(entry)
        node_inputs = socket_inputs + widget_inputs
        for slot, entry in enumerate(node_inputs):
            for link in links:
                if link[0] == entry["link"]:
                    link[4] = slot
        values = []
        for name, optional in widgets:
            if name is _CONTROL:
                values.append("fixed")
            elif name in inputs and not isinstance(inputs[name], list):
                values.append(inputs[name])
            elif name in inputs:  # a widget fed by a link keeps a placeholder: the widget's default
                values.append(_widget_default(spec, name))
            elif optional:
                break
            else:
                raise WorkflowFormatError(f"node {node_id}: widget {name!r} has no value in the prompt")
        column = depth[node_id] + (1 if notes else 0)
        row = rows.get(column, 0)
        height = 46 + 24 * (len(widget_inputs) + max(len(socket_inputs), len(spec.get("output", []))))
        rows[column] = row + height + 40
        ui_node = {"id": int(node_id), "type": node["class_type"], "pos": [40 + 380 * column, 100 + row],
                   "size": [320, height], "flags": {}, "order": order, "mode": 0, "inputs": node_inputs,
                   "outputs": [], "properties": {"Node name for S&R": node["class_type"]}, "widgets_values": values}
        if titles and node_id in titles:
            ui_node["title"] = titles[node_id]
        nodes.append(ui_node)
    by_id = {str(n["id"]): n for n in nodes}
    for node_id, ui_node in by_id.items():
        spec = object_info[prompt[node_id]["class_type"]]
        names = spec.get("output_name") or spec.get("output", [])
        is_list = spec.get("output_is_list") or [False] * len(spec.get("output", []))
        for slot, kind in enumerate(spec.get("output", [])):
            out = {"localized_name": names[slot], "name": names[slot], "type": kind,
                   "links": outgoing.get((node_id, slot), [])}
            if is_list[slot]:
                out["shape"] = 6
            ui_node["outputs"].append(out)
    next_id = max((int(i) for i in prompt), default=0) + 1
    row = 0
    for title, text in (notes or {}).items():
        nodes.append({"id": next_id, "type": "MarkdownNote", "pos": [40, 100 + row], "size": [340, 520], "flags": {},
                      "order": len(nodes), "mode": 0, "inputs": [], "outputs": [], "title": title,
                      "properties": {}, "widgets_values": [text]})
        next_id, row = next_id + 1, row + 560
    ui = {"id": workflow_id, "revision": 0, "last_node_id": next_id - 1, "last_link_id": next_link - 1,
          "nodes": nodes, "links": links, "groups": [], "config": {},
          "extra": {"ds": {"scale": 0.7, "offset": [0, 0]}}, "version": 0.4}
    check_ui_workflow(ui)
    return ui


def _widget_default(node_def: dict, name: str):
    for section in ("required", "optional"):
        spec = (node_def.get("input", {}).get(section) or {}).get(name)
        if spec is not None:
            options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
            return options.get("default", spec[0][0] if isinstance(spec[0], list) and spec[0] else "")
    return ""


def _depths(prompt: dict) -> dict[str, int]:
    """Longest path from a source node, per node id."""
    memo: dict[str, int] = {}

    def depth(node_id: str) -> int:
        if node_id not in memo:
            sources = [v[0] for v in prompt[node_id]["inputs"].values()
                       if isinstance(v, list) and len(v) == 2 and isinstance(v[0], str)]
            memo[node_id] = 1 + max((depth(s) for s in sources), default=-1)
        return memo[node_id]

    for node_id in prompt:
        depth(node_id)
    return memo

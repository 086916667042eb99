"""An A1111 PNG dropped on the real ComfyUI canvas ends in a graph that applies its hypernetworks with
the pack's HypernetworkLoaderA1111 (web/a1111_import.js), in every frontend test_frontend.py uses.

The PNG is made here (PIL, a tEXt ``parameters`` chunk as A1111 writes it) and dropped on the canvas
as a user would (a ``drop`` event carrying the file). Then the live graph is read: the pack's node
with the tag's file and strength, wired checkpoint (-> LoRAs) -> it -> every KSampler, the tag gone
from the prompt; ``app.graphToPrompt()`` gives the API prompt, which the server runs: its image is
bit-identical to Load Hypernetwork -> Apply Hypernetwork at that strength, and differs from the
graph without it. Graphs not made by an A1111 import are never changed.
"""
from __future__ import annotations

import base64
import copy
import io
import shutil

import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from tools.prompts import run_prompt, saved_images

pytestmark = pytest.mark.e2e

PACK_NODE = "HypernetworkLoaderA1111"
NESTED = "a1111_import/nested_demo.pt"  # a subfolder file; A1111 calls it by its stem only

_DROP = """
async ([b64, name]) => {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const transfer = new DataTransfer();
  transfer.items.add(new File([bytes], name, { type: 'image/png' }));
  const target = document.querySelector('#graph-canvas') ?? document.querySelector('canvas');
  const box = target.getBoundingClientRect();
  target.dispatchEvent(new DragEvent('drop', { dataTransfer: transfer, bubbles: true, cancelable: true,
                                               clientX: box.x + box.width / 2, clientY: box.y + box.height / 2 }));
}
"""
_READ = """
() => {
  const graph = app.rootGraph ?? app.graph;
  const linkOf = (node, slot) => {
    const id = node.inputs?.[slot]?.link;
    if (id == null) return null;
    return node.getInputLink?.(slot) ?? (graph.links instanceof Map ? graph.links.get(id) : graph.links[id]);
  };
  return graph.nodes.map((node) => ({
    id: String(node.id), type: node.type,
    widgets: Object.fromEntries((node.widgets || []).map((w) => [w.name, w.value])),
    inputs: Object.fromEntries((node.inputs || []).map((input, slot) => {
      const link = linkOf(node, slot);
      return [input.name, link ? [String(link.origin_id), link.origin_slot] : null];
    })),
  }));
}
"""


def a1111_png(parameters: str) -> bytes:
    image = Image.new("RGB", (64, 64), (200, 80, 40))
    info = PngInfo()
    info.add_text("parameters", parameters)  # latin-1 text: a tEXt chunk, as A1111 writes it
    out = io.BytesIO()
    image.save(out, format="PNG", pnginfo=info)
    return out.getvalue()


def parameters(prompt: str, negative: str, checkpoint: str, extra: str = "") -> str:
    stem = checkpoint.rsplit(".", 1)[0]
    return (f"{prompt}\nNegative prompt: {negative}\n"
            f"Steps: 3, Sampler: DPM++ 2M Karras, CFG scale: 6.5, Seed: 1234, Size: 64x64, "
            f"Model hash: 0123456789, Model: {stem}{extra}")


def drop(page, png: bytes, name: str = "a1111.png", expect_pack_nodes: int = 1, log: list | None = None):
    """Drop ``png`` on the canvas; the live graph's nodes by id once the import is done."""
    page.console.clear()
    if log is not None:  # every console line (the extension logs each swap with console.info)
        page.page.on("console", lambda message: log.append(message.text))
    page.page.evaluate(_DROP, [base64.b64encode(png).decode(), name])
    page.page.wait_for_function(
        "(n) => (app.rootGraph ?? app.graph).nodes.filter((x) => x.type === 'HypernetworkLoaderA1111').length === n"
        " && (app.rootGraph ?? app.graph).nodes.some((x) => x.type === 'KSampler')",
        arg=expect_pack_nodes, timeout=30_000)
    return {node["id"]: node for node in page.page.evaluate(_READ)}


def of_type(nodes: dict, node_type: str) -> list[dict]:
    return [n for n in nodes.values() if n["type"] == node_type]


def positive_and_negative(nodes: dict) -> tuple[dict, dict]:
    sampler = of_type(nodes, "KSampler")[0]
    return nodes[sampler["inputs"]["positive"][0]], nodes[sampler["inputs"]["negative"][0]]


def chain_into(nodes: dict, node: dict) -> list[str]:
    """The node types up the model inputs from ``node`` (nearest first)."""
    types = []
    while node["inputs"].get("model"):
        node = nodes[node["inputs"]["model"][0]]
        types.append(node["type"])
    return types


def real_problems(page) -> list[str]:
    # 1.32 always warns "Unhandled parameters:" (empty or not); the frontend's own business.
    return [p for p in page.console if "Unhandled parameters" not in p]


@pytest.fixture(scope="module")
def nested_file(frontend):
    """A copy of the demo hypernetwork in a subfolder of the server's models/hypernetworks (before the page opens)."""
    folder = frontend[1].base.hypernetworks
    target = folder / NESTED
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(folder / "hn_demo_linear.pt", target)
    yield NESTED
    shutil.rmtree(target.parent)  # the pinned server is shared with other test files


def test_dropped_png_applies_the_hypernetwork_with_the_pack_node(frontend, page, default_checkpoint):
    png = a1111_png(parameters("a red apple on a wooden table, <hypernet:hn_demo:0.7>", "blurry, lowres",
                               default_checkpoint.name))
    log = []
    nodes = drop(page, png, log=log)

    [loader] = of_type(nodes, PACK_NODE)
    assert loader["widgets"]["hypernetwork_name"] == "hn_demo.pt"
    assert loader["widgets"]["strength"] == pytest.approx(0.7)
    assert not of_type(nodes, "HypernetworkLoader")
    [sampler] = of_type(nodes, "KSampler")
    assert chain_into(nodes, sampler) == [PACK_NODE, "CheckpointLoaderSimple"]
    assert sampler["inputs"]["model"] == [loader["id"], 0]
    positive, negative = positive_and_negative(nodes)
    assert "<hypernet:" not in positive["widgets"]["text"] and "a red apple" in positive["widgets"]["text"]
    assert negative["widgets"]["text"] == "blurry, lowres"
    assert sampler["widgets"]["steps"] == 3 and sampler["widgets"]["scheduler"] == "karras"
    assert real_problems(page) == []
    assert any("A1111 import" in line and "hn_demo.pt" in line for line in log), "the swap is logged"

    # Queue-able: the frontend's own API prompt, run on the server.
    prompt = page.page.evaluate("async () => (await app.graphToPrompt()).output")
    [hn_id] = [k for k, n in prompt.items() if n["class_type"] == PACK_NODE]
    [ks_id] = [k for k, n in prompt.items() if n["class_type"] == "KSampler"]
    assert prompt[hn_id]["inputs"]["strength"] == pytest.approx(0.7)
    assert prompt[ks_id]["inputs"]["model"] == [hn_id, 0]
    imported = render(frontend, prompt, f"a1111_{frontend[0].name}")
    twin = render(frontend, with_load_and_apply(prompt, hn_id), f"a1111_twin_{frontend[0].name}")
    plain = render(frontend, without_node(prompt, hn_id), f"a1111_plain_{frontend[0].name}")
    assert imported == twin, "the pack's one-node loader must render exactly what Load + Apply renders"
    assert imported != plain


def test_tags_chain_after_loras_on_every_sampler_and_resolve_subfolders(frontend, nested_file, page,
                                                                        default_checkpoint):
    text = parameters("<hypernet:nested_demo:0.5> an apple <lora:no_such_lora:0.8> <hypernet:hn_demo_linear>",
                      "blurry <hypernet:hn_demo:1>", default_checkpoint.name,
                      ", Denoising strength: 0.5, Hires upscale: 2, Hires upscaler: Latent")
    nodes = drop(page, a1111_png(text), expect_pack_nodes=2)

    samplers = of_type(nodes, "KSampler")
    assert len(samplers) == 2  # hires fix: both samplers get the hypernetworks
    for sampler in samplers:
        assert chain_into(nodes, sampler) == [PACK_NODE, PACK_NODE, "LoraLoader", "CheckpointLoaderSimple"]
    last = nodes[samplers[0]["inputs"]["model"][0]]
    first = nodes[last["inputs"]["model"][0]]
    assert (first["widgets"]["hypernetwork_name"], first["widgets"]["strength"]) == (nested_file, 0.5)
    assert (last["widgets"]["hypernetwork_name"], last["widgets"]["strength"]) == ("hn_demo_linear.pt", 1.0)
    positive, negative = positive_and_negative(nodes)
    assert "<hypernet:" not in positive["widgets"]["text"]
    # A1111 parses tags of the positive prompt only: the negative keeps its text.
    assert negative["widgets"]["text"] == "blurry <hypernet:hn_demo:1>"
    assert not [p for p in page.console if p.startswith("console error")]


def test_legacy_hypernet_field_and_unknown_names(frontend, page, default_checkpoint):
    text = parameters("an apple <hypernet:no_such_network:0.4>", "", default_checkpoint.name,
                      ", Hypernet: hn_demo, Hypernet hash: 0123abcd, Hypernet strength: 0.6")
    nodes = drop(page, a1111_png(text), expect_pack_nodes=2)
    [sampler] = of_type(nodes, "KSampler")
    last = nodes[sampler["inputs"]["model"][0]]
    first = nodes[last["inputs"]["model"][0]]
    # The unknown name is kept (the user picks a file, as for an unknown LoRA) and reported.
    assert (first["widgets"]["hypernetwork_name"], first["widgets"]["strength"]) == ("no_such_network", 0.4)
    assert (last["widgets"]["hypernetwork_name"], last["widgets"]["strength"]) == ("hn_demo.pt", 0.6)
    assert any("no hypernetwork file named 'no_such_network'" in p for p in page.console), page.console


def test_graphs_not_from_an_a1111_import_are_left_alone(page):
    # A user's graph with the built-in loader and tag-like text, arranged: nothing is swapped or added.
    types = page.page.evaluate("""
      () => {
        const graph = app.rootGraph ?? app.graph;
        graph.clear();
        const builtin = LiteGraph.createNode('HypernetworkLoader');
        const ckpt = LiteGraph.createNode('CheckpointLoaderSimple');
        const text = LiteGraph.createNode('CLIPTextEncode');
        const sampler = LiteGraph.createNode('KSampler');
        [ckpt, builtin, text, sampler].forEach((n) => graph.add(n));
        text.widgets.find((w) => w.name === 'text').value = 'apple <hypernet:hn_demo:0.7>';
        ckpt.connect(0, builtin, 0); builtin.connect(0, sampler, 0); text.connect(0, sampler, 1);
        graph.arrange();
        return graph.nodes.map((n) => n.type).sort();
      }""")
    assert types == sorted(["HypernetworkLoader", "CheckpointLoaderSimple", "CLIPTextEncode", "KSampler"])


def test_tag_parsing_and_name_resolution_in_the_page(page):
    # The extension's pure helpers, as the browser loads them from the server.
    result = page.page.evaluate("""
      async () => {
        const m = await import('/extensions/comfyui-hypernetworks/a1111_tags.js');
        const files = ['a/foo.safetensors', 'b/foo.pt', 'foo_v2.pt', 'c/d/foo.pt', 'Bar.pt'];
        return {
          taken: m.takeHypernetTags('x <hypernet:foo:0.25>, <hypernet:bar> <hypernet:bad:> y'),
          foo: m.resolveHypernetworkName('foo', files).value,
          exact: m.resolveHypernetworkName('foo_v2.pt', files).value,
          bar: m.resolveHypernetworkName('bar', files).value,
          none: m.resolveHypernetworkName('foo_v', files).value,
        };
      }""")
    assert [(t["name"], t["strength"]) for t in result["taken"]["tags"]] == [("foo", 0.25), ("bar", 1.0)]
    assert result["taken"]["invalid"] == ["<hypernet:bad:>"]
    assert result["taken"]["text"] == "x ,  <hypernet:bad:> y"  # each tag becomes "", as in A1111
    assert (result["foo"], result["exact"], result["bar"], result["none"]) == ("b/foo.pt", "foo_v2.pt", "Bar.pt", None)


# --- running the imported prompt -------------------------------------------------------------------


def render(frontend, prompt: dict, prefix: str) -> bytes:
    server = frontend[1]
    prompt = copy.deepcopy(prompt)
    [save_id] = [k for k, n in prompt.items() if n["class_type"] == "SaveImage"]
    prompt[save_id]["inputs"]["filename_prefix"] = prefix
    entry = run_prompt(server, prompt, timeout=900)
    [png] = saved_images(entry, prompt, server.base.output)
    return png.read_bytes()


def with_load_and_apply(prompt: dict, hn_id: str) -> dict:
    prompt = copy.deepcopy(prompt)
    inputs = prompt[hn_id]["inputs"]
    prompt["hn_load"] = {"class_type": "LoadHypernetwork", "inputs": {"hypernetwork_name": inputs["hypernetwork_name"]}}
    prompt[hn_id] = {"class_type": "ApplyHypernetwork", "inputs": {
        "model": inputs["model"], "hypernetwork": ["hn_load", 0], "strength": inputs["strength"], "speed_path": True}}
    return prompt


def without_node(prompt: dict, hn_id: str) -> dict:
    prompt = copy.deepcopy(prompt)
    source = prompt.pop(hn_id)["inputs"]["model"]
    for node in prompt.values():
        for name, value in node["inputs"].items():
            if value == [hn_id, 0]:
                node["inputs"][name] = source
    return prompt

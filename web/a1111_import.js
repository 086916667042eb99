// After the ComfyUI frontend imports an A1111 image (a PNG whose tEXt `parameters` holds the
// generation settings), apply the hypernetworks it used with this pack's HypernetworkLoaderA1111.
//
// What the frontend does (importA1111 in src/scripts/pnginfo.ts; the same in 1.32, 1.49 and 1.58):
// it builds CheckpointLoaderSimple -> CLIPSetLastLayer -> two CLIPTextEncode -> KSampler (a second
// one for hires fix) -> VAEDecode -> SaveImage, turns `<lora:name:w>` tags of both prompts into
// LoraLoader nodes (name: the first listed file that starts with it), and ends with graph.arrange().
// It knows no `<hypernet:...>` tag: those stay in the prompt text, where CLIP reads them as words,
// and no hypernetwork is applied. It never creates the built-in HypernetworkLoader either.
//
// What this extension changes, only for a file dropped or opened as an A1111 import (graphs loaded
// from workflows, including saved ones with the built-in HypernetworkLoader, are never touched):
// each `<hypernet:name:w>` of the positive prompt (A1111 parses only that one), and the legacy
// `Hypernet:` field, becomes a HypernetworkLoaderA1111 between the model chain (checkpoint and
// LoRAs) and every KSampler, in tag order, with the file resolved from A1111's stem name to
// ComfyUI's listed name (subfolder, suffix); the tags leave the prompt text. Each step is logged
// to the console. Hooks used, present in all three versions: app.handleFile (the drop handler and
// the file button both call it) marks an A1111 file; the importer's final graph.arrange() is where
// its graph is complete (1.32 does not await the import, so handleFile returning is too early).

import { app } from "../../scripts/app.js";
import { legacyHypernet, resolveHypernetworkName, takeHypernetTags } from "./a1111_tags.js";

const PACK_NODE = "HypernetworkLoaderA1111";
const LOG = "[comfyui-hypernetworks] A1111 import:";
const STRENGTH_LIMIT = 10; // the node's min/max, as the built-in loader's

let pendingImport = null; // {legacy} while an A1111 file is being imported

const rootGraph = () => app.rootGraph ?? app.graph;
const widget = (node, name) => node?.widgets?.find((w) => w.name === name);
const inputSlot = (node, name) => node?.inputs?.findIndex((input) => input.name === name) ?? -1;

function linkOf(graph, node, slot) {
  const id = node.inputs?.[slot]?.link;
  if (id == null) return null;
  const links = graph.links;
  return node.getInputLink?.(slot) ?? (links instanceof Map ? links.get(id) : links?.[id]) ?? null;
}

async function a1111ParametersOf(file) {
  // Mirrors handleFile's choice: an image whose only generation data is A1111's `parameters`.
  try {
    const data = await window.comfyAPI?.parser?.getWorkflowDataFromFile?.(file);
    if (!data || data.workflow || data.prompt || typeof data.parameters !== "string") return null;
    return data.parameters;
  } catch (error) {
    return null; // the frontend reports unreadable files itself
  }
}

function resolvedName(loader, hypernet) {
  const names = widget(loader, "hypernetwork_name");
  let values = names?.options?.values;
  if (typeof values === "function") values = values();
  const { value, candidates } = resolveHypernetworkName(hypernet.name, values);
  if (value === null) {
    console.warn(`${LOG} no hypernetwork file named '${hypernet.name}' (from ${hypernet.tag}); ` +
                 "pick one in the node or add the file to models/hypernetworks");
    return hypernet.name;
  }
  if (candidates.length > 1) {
    console.warn(`${LOG} '${hypernet.name}' matches ${candidates.join(", ")}; using ${value}`);
  }
  return value;
}

function addLoader(graph, hypernet) {
  const loader = LiteGraph.createNode(PACK_NODE);
  if (!loader) return null;
  graph.add(loader);
  widget(loader, "hypernetwork_name").value = resolvedName(loader, hypernet);
  let strength = hypernet.strength;
  if (Math.abs(strength) > STRENGTH_LIMIT) {
    console.warn(`${LOG} ${hypernet.tag}: strength ${strength} clamped to the node's limits`);
    strength = Math.sign(strength) * STRENGTH_LIMIT;
  }
  widget(loader, "strength").value = strength;
  return loader;
}

/** Rewire the imported graph; true when nodes were added. */
function applyHypernetworks(graph, legacy) {
  const samplers = graph.nodes.filter((node) => node.type === "KSampler");
  const positive = [...new Set(samplers.map((s) => s.getInputNode?.(inputSlot(s, "positive"))).filter(Boolean))]
    .filter((node) => node.type === "CLIPTextEncode");
  const hypernets = [];
  for (const encoder of positive) {
    const text = widget(encoder, "text");
    const taken = takeHypernetTags(text?.value);
    taken.invalid.forEach((tag) => console.warn(`${LOG} ignored ${tag}: it needs <hypernet:name> or <hypernet:name:number>`));
    if (taken.tags.length) text.value = taken.text;
    hypernets.push(...taken.tags);
  }
  if (legacy) hypernets.push(legacy); // A1111 appends its legacy setting after the prompt's tags
  if (!hypernets.length) return false;
  if (!LiteGraph.registered_node_types[PACK_NODE]) {
    console.warn(`${LOG} the server has no ${PACK_NODE} node; hypernetworks not applied:`, hypernets.map((h) => h.tag));
    return false;
  }
  // One chain per distinct model source (all samplers share one in the importer's graph).
  const bySource = new Map();
  for (const sampler of samplers) {
    const slot = inputSlot(sampler, "model");
    const link = slot < 0 ? null : linkOf(graph, sampler, slot);
    if (!link) continue;
    const key = `${link.origin_id}:${link.origin_slot}`;
    if (!bySource.has(key)) bySource.set(key, { origin: graph.getNodeById(link.origin_id), slot: link.origin_slot, samplers: [] });
    bySource.get(key).samplers.push({ sampler, slot });
  }
  for (const { origin, slot, samplers: fed } of bySource.values()) {
    let previous = { node: origin, slot };
    for (const hypernet of hypernets) {
      const loader = addLoader(graph, hypernet);
      if (!loader) return false;
      previous.node.connect(previous.slot, loader, inputSlot(loader, "model"));
      previous = { node: loader, slot: 0 };
      console.info(`${LOG} ${hypernet.tag} -> ${PACK_NODE} '${widget(loader, "hypernetwork_name").value}' ` +
                   `at ${widget(loader, "strength").value}`);
    }
    for (const { sampler, slot: modelSlot } of fed) previous.node.connect(previous.slot, sampler, modelSlot);
  }
  return true;
}

function hookArrange() {
  const proto = Object.getPrototypeOf(rootGraph());
  const arrange = proto?.arrange;
  if (typeof arrange !== "function") {
    console.warn(`${LOG} this frontend's graph has no arrange(); hypernet tags will not be applied`);
    return;
  }
  proto.arrange = function (...args) {
    const result = arrange.apply(this, args);
    if (pendingImport && this === rootGraph()) {
      const { legacy } = pendingImport;
      pendingImport = null;
      try {
        if (applyHypernetworks(this, legacy)) arrange.apply(this, args); // lay out the new nodes too
      } catch (error) {
        console.error(`${LOG} could not apply the hypernetworks:`, error);
      }
    }
    return result;
  };
}

function hookHandleFile() {
  const handleFile = app.handleFile;
  app.handleFile = async function (file, ...rest) {
    const parameters = file ? await a1111ParametersOf(file) : null;
    // A new file replaces any mark an earlier one left (e.g. parameters without an A1111 Steps line).
    pendingImport = parameters === null ? null : { legacy: legacyHypernet(parameters) };
    return handleFile.call(this, file, ...rest);
  };
}

app.registerExtension({
  name: "comfyui-hypernetworks.A1111Import",
  setup() {
    hookArrange();
    hookHandleFile();
  },
});

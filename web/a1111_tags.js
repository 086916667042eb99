// A1111's hypernetwork references in generation parameters, and the file each one names.
// Pure functions (no app, no graph): web/a1111_import.js applies them to the imported graph.
//
// Facts from AUTOMATIC1111's webui: an extra-network tag is `<type:arg1:arg2...>` (type \w+, args
// split on ':'); for `hypernet` arg1 is the name and arg2 the multiplier (1.0 when absent). Only
// the positive prompt's tags are parsed; each tag is removed from the prompt text. The name is the
// file's stem: A1111 lists `<stem>.pt` files anywhere under its hypernetworks folder. Images from
// before the tags (late 2022) carry `Hypernet: <name>` and, below 1, `Hypernet strength: <x>` in
// the parameters line instead.

const TAG = /<hypernet:([^>]+)>/g;
const PREFERRED_SUFFIXES = [".pt", ".pth", ".safetensors"]; // A1111's own first, then the pack's forms

/** `{text, tags: [{tag, name, strength}], invalid: [tag]}`: the prompt without its valid hypernet tags. */
export function takeHypernetTags(prompt) {
  const tags = [];
  const invalid = [];
  const text = String(prompt ?? "").replace(TAG, (tag, args) => {
    const items = args.split(":");
    const name = items[0].trim();
    const strength = items.length > 1 ? Number(items[1].trim()) : 1.0;
    if (!name || !Number.isFinite(strength) || (items.length > 1 && items[1].trim() === "")) {
      invalid.push(tag);
      return tag; // left in the text, as A1111 would fail on it rather than guess
    }
    tags.push({ tag, name, strength });
    return "";
  });
  return { text, tags, invalid };
}

/** The legacy `Hypernet:` / `Hypernet strength:` fields of an A1111 parameters text, or null. */
export function legacyHypernet(parameters) {
  const text = String(parameters ?? "");
  const at = text.lastIndexOf("\nSteps:");
  if (at < 0) return null;
  const line = text.slice(at + 1).split("\n")[0];
  const field = (key) => line.match(new RegExp(`(?:^|,)\\s*${key}:\\s*("[^"]*"|[^,]*)`))?.[1]?.replace(/^"|"$/g, "").trim();
  const name = field("Hypernet");
  if (!name || name === "None") return null;
  const strength = Number(field("Hypernet strength") ?? "1");
  return { tag: `Hypernet: ${name}`, name, strength: Number.isFinite(strength) ? strength : 1.0 };
}

const stemOf = (value) => {
  const base = value.split(/[\\/]/).pop();
  const dot = base.lastIndexOf(".");
  return dot > 0 ? base.slice(0, dot) : base;
};
const suffixRank = (value) => {
  const i = PREFERRED_SUFFIXES.findIndex((suffix) => value.toLowerCase().endsWith(suffix));
  return i < 0 ? PREFERRED_SUFFIXES.length : i;
};
const depth = (value) => value.split(/[\\/]/).length;

/**
 * The combo value (a file name as ComfyUI lists it, with subfolder and suffix) an A1111 name means:
 * `{value, candidates}`; value null when no file matches. The exact listed name wins; else files
 * whose stem is the name (case-sensitive before case-insensitive), `.pt` first, the shallowest
 * path, then alphabetical. `candidates` lists every file of the winning rank (more than one: ambiguous).
 */
export function resolveHypernetworkName(name, values) {
  const listed = (values ?? []).map(String);
  if (listed.includes(name)) return { value: name, candidates: [name] };
  for (const same of [(a, b) => a === b, (a, b) => a.toLowerCase() === b.toLowerCase()]) {
    const matches = listed.filter((value) => same(stemOf(value), name) || same(value, name));
    if (!matches.length) continue;
    matches.sort((a, b) => suffixRank(a) - suffixRank(b) || depth(a) - depth(b) || (a < b ? -1 : a > b ? 1 : 0));
    const best = matches[0];
    const tied = matches.filter((value) => suffixRank(value) === suffixRank(best) && depth(value) === depth(best));
    return { value: best, candidates: tied };
  }
  return { value: null, candidates: [] };
}

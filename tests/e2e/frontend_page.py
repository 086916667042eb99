"""The real ComfyUI web frontend, served by a test server, driven in headless Chromium.

``FrontendPage`` opens the page, waits until the app is up, loads a UI-format workflow the way
the frontend's own file loader does (``app.loadGraphData``) and reports what a user would see
go wrong: open dialogs, toasts and notification cards (older frontends report missing node types
in a dialog; 1.49+ in a card whose "View details" opens the error panel, whose groups are read
too), console errors and warnings, uncaught exceptions, nodes without a registered type, widget
values the node's definition does not allow, values the frontend dropped or moved. Node ids are
compared as strings: newer frontends give live ids as strings, files hold numbers.

Requests to hosts other than the test server are aborted: the frontend asks comfy.org for release
notes and node metadata, which must not make a test depend on the internet.
"""
from __future__ import annotations

import math
import os
import shutil
from dataclasses import dataclass, field
from urllib.parse import urlsplit

# Playwright only drives the browser; Chromium comes from Debian (scripts/provision_host.sh).
from playwright.sync_api import Browser, ConsoleMessage, Page

CHROMIUM_ENV = "HN_CHROMIUM"
# Wide enough that a fitted graph stays above LiteGraph's low-quality zoom (no text below ~0.6).
VIEWPORT = {"width": 2400, "height": 1500}

_READ_GRAPH = """
() => {
  const values = (w) => {
    let v = w.options?.values;
    if (typeof v === 'function') v = v();
    return Array.isArray(v) ? v : null;
  };
  const saved = app.graph.serialize();
  return {
    nodes: app.graph.nodes.map((node) => ({
      id: node.id, type: node.type,
      registered: !!LiteGraph.registered_node_types[node.type],
      has_errors: !!node.has_errors,
      widgets: (node.widgets || []).map((w) => ({
        name: w.name, type: w.type, value: w.value, options: values(w),
        min: w.options?.min ?? null, max: w.options?.max ?? null,
      })),
    })),
    widgets_values: Object.fromEntries(saved.nodes.map((n) => [n.id, n.widgets_values ?? []])),
  };
}
"""
_OPEN_OVERLAYS = """
() => [...new Set([...document.querySelectorAll(
          '.p-dialog, .p-toast-message, [role=dialog], [role=alertdialog], [role=alert], [role=status]')]
        .filter((el) => el.getClientRects().length && (el.innerText || '').trim())
        .map((el) => el.innerText.trim().slice(0, 500)))]
"""
# The error panel a notification card's "View details" opens (frontend 1.49+): one group per kind.
_ERROR_GROUPS = "section[data-testid^='error-group-']"


def chromium_path() -> str:
    path = os.environ.get(CHROMIUM_ENV) or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        raise RuntimeError(f"no Chromium found (set {CHROMIUM_ENV}, or run scripts/provision_host.sh, which "
                           "installs Debian's chromium package)")
    return path


@dataclass
class LoadReport:
    nodes: list[dict]
    problems: list[str] = field(default_factory=list)

    @property
    def node_types(self) -> set[str]:
        return {n["type"] for n in self.nodes}


class FrontendPage:
    def __init__(self, browser: Browser, server_url: str):
        self.server_url = server_url.rstrip("/")
        self.page: Page = browser.new_page(viewport=VIEWPORT)
        self.console: list[str] = []
        self.page.on("console", self._on_console)
        self.page.on("pageerror", lambda error: self.console.append(f"uncaught exception: {error}"))
        self.page.route(lambda url: not self._is_server(url), lambda route: route.abort())

    def _is_server(self, url: str) -> bool:
        return urlsplit(url).netloc == urlsplit(self.server_url).netloc

    def _on_console(self, message: ConsoleMessage) -> None:
        if message.type not in ("error", "warning"):
            return
        source = (message.location or {}).get("url", "")
        if message.text.startswith("Failed to load resource") and source and not self._is_server(source):
            return  # one of the aborted outside requests
        self.console.append(f"console {message.type}: {message.text[:1000]}")

    def open(self, timeout_ms: float = 120_000) -> None:
        """Load the app and wait until its graph and node definitions are in place."""
        self.page.goto(self.server_url + "/")
        self.page.wait_for_function(
            "() => window.app?.graph && window.LiteGraph && Object.keys(LiteGraph.registered_node_types).length > 100",
            timeout=timeout_ms)
        self.page.wait_for_load_state("networkidle", timeout=timeout_ms)
        self.console.clear()  # start-up noise (user.css 404 etc.) is not the workflow's doing

    def load_workflow(self, workflow: dict, name: str) -> LoadReport:
        self.console.clear()
        self.page.evaluate("([wf, name]) => app.loadGraphData(wf, true, true, name)", [workflow, name])
        self.page.evaluate("() => app.extensionManager.command.execute('Comfy.Canvas.FitView')")
        self.page.wait_for_timeout(1500)  # let dialogs open and the canvas draw
        graph = self.page.evaluate(_READ_GRAPH)
        report = LoadReport(nodes=graph["nodes"])
        report.problems += [f"open dialog or message: {text!r}" for text in self.page.evaluate(_OPEN_OVERLAYS)]
        report.problems += [f"error panel: {text!r}" for text in self._error_details()]
        report.problems += list(self.console)
        report.problems += _graph_problems(workflow, graph)
        return report

    def version(self) -> str | None:
        """The frontend version the page runs (what the frontend's own About panel shows)."""
        return self.page.evaluate("() => window.__COMFYUI_FRONTEND_VERSION__ ?? null")

    def _error_details(self) -> list[str]:
        # What a user reads after pressing the card's "View details": the error panel's groups.
        details = self.page.locator("[role=status]").get_by_text("View details")
        if not details.count():
            return []
        details.first.click()
        try:
            self.page.wait_for_selector(_ERROR_GROUPS, timeout=10_000)
        except Exception:  # Playwright's TimeoutError: a card without details is reported as it is
            return []
        return [text.strip()[:500] for text in self.page.locator(_ERROR_GROUPS).all_inner_texts() if text.strip()]

    def screenshot(self, path) -> None:
        self.page.screenshot(path=str(path))

    def close(self) -> None:
        self.page.close()


def _graph_problems(workflow: dict, graph: dict) -> list[str]:
    problems = []
    loaded = {str(node["id"]): node for node in graph["nodes"]}  # ids: numbers in files, strings in 1.49+
    for node in workflow["nodes"]:
        where = f"node {node['id']} ({node['type']})"
        live = loaded.get(str(node["id"]))
        if live is None or live["type"] != node["type"]:
            problems.append(f"{where} is not on the loaded graph")
            continue
        if not live["registered"]:
            problems.append(f"{where}: the frontend has no registered node type {node['type']!r}")
        if live["has_errors"]:
            problems.append(f"{where} is marked with errors")
        problems += [f"{where}: {p}" for p in map(_widget_problem, live["widgets"]) if p]
        kept = graph["widgets_values"].get(str(node["id"]), [])
        saved = node.get("widgets_values") or []
        if kept[: len(saved)] != saved:
            problems.append(f"{where}: the frontend holds widget values {kept}, the file has {saved}")
    return problems


def _widget_problem(widget: dict) -> str | None:
    name, kind, value = widget["name"], str(widget["type"]).lower(), widget["value"]
    if kind == "combo":
        if widget["options"] and value not in widget["options"]:
            return f"widget {name}: {value!r} is not one of {widget['options'][:20]}"
    elif kind in ("number", "slider"):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return f"widget {name}: {value!r} is not a number"
        if widget["min"] is not None and value < widget["min"] or widget["max"] is not None and value > widget["max"]:
            return f"widget {name}: {value} is outside [{widget['min']}, {widget['max']}]"
    elif kind == "toggle":
        if not isinstance(value, bool):
            return f"widget {name}: {value!r} is not true/false"
    elif kind in ("text", "customtext", "string", "markdown"):
        if not isinstance(value, str):
            return f"widget {name}: {value!r} is not text"
    else:  # a kind this check does not know would pass unexamined
        return f"widget {name}: unchecked widget type {kind!r}"
    return None

"""Benchmark: load a large A1111 hypernetwork with hn_core vs ComfyUI's built-in loader.

File: all four SD1 dims (320, 640, 768, 1280), layer_structure [1, 2, 2, 1], relu, layer norm.
Both loaders run in this one process, alternating, and the script prints medians and the ratio.
Usage: .venv/bin/python benchmarks/bench_load.py [--repeats 7]
"""
from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import import_comfy_host, interleaved_medians, logger  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=7)
    options = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    import_comfy_host()
    from comfy_extras.nodes_hypernetwork import load_hypernetwork_patch
    from hn_core import Hypernetwork, HypernetworkConfig, load_hypernetwork, save_hypernetwork

    config = HypernetworkConfig(layer_structure=(1, 2, 2, 1), activation_func="relu", is_layer_norm=True)
    network = Hypernetwork.create((320, 640, 768, 1280), config, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "large.pt")
        save_hypernetwork(network, path)
        size_mb = Path(path).stat().st_size / 2**20
        results = interleaved_medians({
            "ours": lambda: load_hypernetwork(path),
            "builtin": lambda: load_hypernetwork_patch(path, 1.0),
        }, options.repeats)
    (ours, ours_all), (builtin, builtin_all) = results["ours"], results["builtin"]
    logger.info("file: dims 320/640/768/1280, [1,2,2,1], relu + layer norm, %d parameters, %.1f MiB",
                network.parameter_count(), size_mb)
    logger.info("hn_core.load_hypernetwork      median %.3f s  (runs: %s)", ours, _fmt(ours_all))
    logger.info("ComfyUI load_hypernetwork_patch median %.3f s  (runs: %s)", builtin, _fmt(builtin_all))
    logger.info("ratio ours/builtin = %.2f  (below 1 = ours faster)", ours / builtin)


def _fmt(times) -> str:
    return ", ".join(f"{t:.3f}" for t in times)


if __name__ == "__main__":
    main()

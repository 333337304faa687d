"""Upscale throughput per tile size: the old fixed 256 px tile against the tile the memory
budget picks (spaces/dlsr/tiling.tile_for_memory), on one LR image, in one run.

    python bench/upscale_tiles.py [SPACE] [CHANNELS] [WIDTH] [HEIGHT] [BACKEND] [REPEATS] [TILE,...]

Defaults: spaces/dlsr/dlsr.yaml, 48 channels (DLSR), a 2000x1500 LR image, onnx, 1 repeat;
TILE,... adds other tile sides to the comparison.
Random weights (speed does not depend on them). One thread, timed in CPU seconds of this
process (a loaded machine delays the wall clock, less the work done), round-robin: read the
ratios. Multi-Adds/s counts the image's own
Multi-Adds (nasflow cost), so recomputed overlap shows as lower throughput.
"""
from __future__ import annotations

import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from search_step import cpu_seconds

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    from nasflow.compile.supernet import compile_graph
    from nasflow.runs.modeldir import load_model, save_model
    from nasflow.space.cost import graph_cost
    from nasflow.space.graph import build_graph
    from nasflow.space.load import load_space
    from nasflow.spaces.dlsr.tiling import (DEFAULT_TILE_MEMORY, activation_bytes_per_pixel, model_predictor,
                                            tile_for_memory, upscale_bands)

    args = sys.argv[1:]
    space_file = args[0] if args else str(ROOT / "spaces" / "dlsr" / "dlsr.yaml")
    channels, w, h = (int(a) for a in (args[1:4] + ["48", "2000", "1500"][len(args[1:4]):]))
    backend = args[4] if len(args) > 4 else "onnx"
    repeats = int(args[5]) if len(args) > 5 else 1
    torch.set_num_threads(1)
    space = load_space(space_file, {"channels": channels})
    graph = build_graph(space)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = save_model(Path(tmp) / "m", space, compile_graph(graph).state_dict(), {"scale": 2})
        model, _, _ = load_model(model_dir)
        predict = model_predictor(model, backend)
        lr = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
        madds = graph_cost(graph, (h, w)).madds
        tiles = {"old 256": 256, "budget": tile_for_memory(graph, DEFAULT_TILE_MEMORY, backend=backend)}
        tiles.update({f"tile {t}": int(t) for t in (args[6].split(",") if len(args) > 6 else [])})
        params = sum(p.numel() for p in model.parameters())
        print(f"{space.name} C{channels} ({params:,} params), {w}x{h} LR, {backend}, 1 thread; "
              f"{madds / 1e9:.1f} G Multi-Adds per image; {activation_bytes_per_pixel(graph, backend):.0f} "
              f"activation bytes per pixel; tiles {tiles} (budget {DEFAULT_TILE_MEMORY >> 20} MiB)", flush=True)
        for tile in tiles.values():  # warm up every tile shape
            for _ in upscale_bands(predict, lr[:min(h, tile + 8), :min(w, tile + 8)].copy(), 2, tile=tile):
                pass
        times: dict[str, list[float]] = {k: [] for k in tiles}
        for _ in range(repeats):
            for name, tile in tiles.items():
                start = cpu_seconds()
                for _ in upscale_bands(predict, lr, 2, tile=tile):
                    pass
                times[name].append(cpu_seconds() - start)
        rate = {k: madds / statistics.median(v) / 1e9 for k, v in times.items()}
        for k in tiles:
            print(f"  {k:8s} tile {tiles[k]:5d}: {statistics.median(times[k]):7.1f} CPU s, {rate[k]:6.2f} G Multi-Adds/s")
        print(f"  budget / old: {rate['budget'] / rate['old 256']:.2f}x")


if __name__ == "__main__":
    main()

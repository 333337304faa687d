"""Upscale throughput per tiling, and where a tiled image loses to untiled speed, in one run.

    python bench/upscale_tiles.py [SPACE] [CHANNELS] [WIDTH] [HEIGHT] [BACKEND] [REPEATS] [TILE[/OVERLAP],...]

Defaults: spaces/dlsr/dlsr.yaml, 48 channels (DLSR), a 2000x1500 LR image, onnx, 1 repeat;
TILE[/OVERLAP],... adds other tilings (a side; the default overlap unless given) to the comparison.
Rows: the old fixed 256 px tile and the tile the memory budget picks (what `nasflow upscale`
uses), both at overlap DEFAULT_OVERLAP. Columns split the
loss against one untiled call:
  computed  pixels the tiles compute / the image's pixels (overlap recompute),
  tiles     calls, and the rate on the Multi-Adds the tiles compute ("per computed");
  image     the rate on the image's own Multi-Adds (nasflow cost): what the user gets.
References: one call on an untiled 640x360 image and one call on the largest tile's shape.
Random weights (speed does not depend on them). One thread, timed in CPU seconds of this
process (a loaded machine delays the wall clock, less the work done), round-robin: read the
ratios.
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
    from nasflow.spaces.dlsr.images import to_tensor
    from nasflow.spaces.dlsr.tiling import (DEFAULT_ALIGN, DEFAULT_OVERLAP, DEFAULT_TILE_MEMORY,
                                            activation_bytes_per_pixel, model_predictor, tile_for_memory,
                                            tile_spans, upscale_bands)

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
        per_px = graph_cost(graph, (h, w)).madds / (h * w)  # Multi-Adds per LR pixel
        tilings: dict[str, tuple[int, int]] = {
            "old 256": (256, DEFAULT_OVERLAP),
            "budget": (tile_for_memory(graph, DEFAULT_TILE_MEMORY, DEFAULT_OVERLAP, backend=backend), DEFAULT_OVERLAP)}
        for extra in (args[6].split(",") if len(args) > 6 else []):
            tile, _, ov = extra.partition("/")
            tilings[f"tile {extra}"] = (int(tile), int(ov or DEFAULT_OVERLAP))
        params = sum(p.numel() for p in model.parameters())
        print(f"{space.name} C{channels} ({params:,} params), {w}x{h} LR, {backend}, 1 thread; "
              f"{per_px * h * w / 1e9:.1f} G Multi-Adds per image; {activation_bytes_per_pixel(graph, backend):.0f} "
              f"activation bytes per pixel; budget {DEFAULT_TILE_MEMORY >> 20} MiB", flush=True)
        shape = {}
        for name, (tile, overlap) in tilings.items():
            rows, cols = tile_spans(h, tile, overlap, DEFAULT_ALIGN), tile_spans(w, tile, overlap, DEFAULT_ALIGN)
            computed = sum(e - s for s, e, _, _ in rows) * sum(e - s for s, e, _, _ in cols)
            shape[name] = (len(rows) * len(cols), computed / (h * w),
                           (rows[0][1] - rows[0][0], cols[0][1] - cols[0][0]))
        refs = {"untiled 640x360": (360, 640), **{f"one {shape[n][2][1]}x{shape[n][2][0]} call": shape[n][2]
                                                   for n in tilings}}
        ref_in = {k: to_tensor(lr[:th, :tw].copy())[None] for k, (th, tw) in refs.items()}
        for name, (tile, overlap) in tilings.items():  # warm up every tile shape
            for _ in upscale_bands(predict, lr[:min(h, tile + 8), :min(w, tile + 8)].copy(), 2, tile=tile,
                                   overlap=overlap):
                pass
        for x in ref_in.values():
            predict(x)
        times: dict[str, list[float]] = {k: [] for k in [*tilings, *refs]}
        for _ in range(repeats):
            for name, (tile, overlap) in tilings.items():
                start = cpu_seconds()
                for _ in upscale_bands(predict, lr, 2, tile=tile, overlap=overlap):
                    pass
                times[name].append(cpu_seconds() - start)
            for name, x in ref_in.items():
                reps = max(1, round(h * w / x.numel() * 3 / 4))  # about one image's pixels
                start = cpu_seconds()
                for _ in range(reps):
                    predict(x)
                times[name].append((cpu_seconds() - start) / reps)
        med = {k: statistics.median(v) for k, v in times.items()}
        untiled = per_px * 360 * 640 / med["untiled 640x360"] / 1e9
        print(f"  {'untiled 640x360':22s} {untiled:6.2f} G Multi-Adds/s (1.00)")
        for name in refs:
            if name != "untiled 640x360":
                th, tw = refs[name]
                r = per_px * th * tw / med[name] / 1e9
                print(f"  {name:22s} {r:6.2f} G Multi-Adds/s ({r / untiled:.2f} of untiled)")
        for name, (tile, overlap) in tilings.items():
            n, factor, (th, tw) = shape[name]
            image = per_px * h * w / med[name] / 1e9
            print(f"  {name:14s} tile {tile:4d} ({tw}x{th} read): {n:3d} tiles, computed {factor:.3f}x the image; "
                  f"{med[name]:6.1f} CPU s; per computed {image * factor:6.2f}, image {image:6.2f} G Multi-Adds/s "
                  f"({image / untiled:.2f} of untiled)")


if __name__ == "__main__":
    main()

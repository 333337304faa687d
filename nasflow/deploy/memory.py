"""What an image model's inference costs in memory, so `nasflow upscale` and `nasflow eval`
stay within `--tile-memory` plus a fixed base whatever the image, backend or cache state.

    bound = memory_bound(1024)                  # bytes: --tile-memory 1024 MiB + BASE_MEMORY_MIB
    side = tile_for_memory(graph, 1 << 30)      # the largest LR tile whose activations fit
    side = timing_side(graph, 1 << 30, ["eager", "onnx", "openvino"])  # timing them all at once
    check_tile(graph, 2000, 1 << 30, "onnx", shape=(1500, 2000))  # --tile by hand: refused if over

The activations are estimated from the graph (channels x relative area of every node); the
base is measured (bench/memory.py, docs/howto/limits.md): the Python and torch runtime with
the model (~290 MB), onnxruntime's or OpenVINO's libraries and OpenVINO's worker process
(~220 MB), the decoded LR image and one band of output rows.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

from nasflow.errors import NasflowError
from nasflow.space.graph import Graph

__all__ = ["BASE_MEMORY_MIB", "DEFAULT_TILE_MEMORY_MIB", "EAGER_SLACK", "RUNTIME_SLACK", "TIMING_SHARE",
           "activation_bytes_per_pixel", "check_tile", "memory_bound", "tile_for_memory", "timing_side"]

DEFAULT_TILE_MEMORY_MIB = 1024
# Measured (bench/memory.py, DLSR-S, 0.5-12 MP, every backend, cold and warm; docs/benchmarks.md):
# the largest peak less --tile-memory was 585 MiB, 618 in a rerun sampled per process (the
# automatic choice on a cold cache, a 6 MP upscale: OpenVINO's worker beside the main
# process); room above it for a larger model's weights and an allocator's rounding.
BASE_MEMORY_MIB = 768
# Eager inference held 1.09-1.19x the sum of the nodes' outputs (DLSR-S at 206 and 412 px
# tiles): the input's channels-last copy, the output's float copy and oneDNN's workspaces.
EAGER_SLACK = 1.25
# onnxruntime / OpenVINO reuse buffers, so a forward pass holds about the live activations,
# but measured peaks were 1.7-1.9x their sum (workspaces, arena rounding): DLSR C48 at a 256 px
# tile 305 MB against 164 MB live; an 11.7K-param model at 1024 px 643 MB against 382 MB.
RUNTIME_SLACK = 2
# The backend timing's share of --tile-memory (timing_side): measured, all backends timed at
# once on a 0.5 MP image with a cold cache peaked at 1937 MB with the whole budget.
TIMING_SHARE = 4
_REUSING = ("onnx", "openvino")


def memory_bound(tile_memory_mib: int = DEFAULT_TILE_MEMORY_MIB) -> int:
    """Bytes `nasflow upscale` / `eval` may hold at most with `--tile-memory tile_memory_mib`."""
    return (tile_memory_mib + BASE_MEMORY_MIB) << 20


def _live_peak(graph: Graph) -> float:
    """Peak of the outputs alive at once (channels x relative area), walking the nodes in
    their topological order: an output lives from its node until its last reader."""
    order = list(graph.nodes)
    last = {name: i for i, name in enumerate(order)}
    for i, name in enumerate(order):
        for src in graph.nodes[name].inputs:
            last[src] = max(last[src], i)
    last[graph.output] = len(order)
    area = {name: node.c_out * float(node.size) ** 2 for name, node in graph.nodes.items()}
    return max(sum(area[m] for m in order[:i + 1] if last[m] >= i) for i in range(len(order)))


def activation_bytes_per_pixel(graph: Graph, backend: str = "eager") -> float:
    """Bytes of float32 activations one input pixel costs in a forward pass on `backend`. The
    eager backends hold every node's output until the pass returns (the compiled supernet
    keeps them for its readers): their sum, times EAGER_SLACK. onnxruntime and OpenVINO free
    what no later node reads: the live peak, times RUNTIME_SLACK."""
    if backend in _REUSING:
        return RUNTIME_SLACK * 4 * _live_peak(graph)
    return EAGER_SLACK * 4 * sum(node.c_out * float(node.size) ** 2 for node in graph.nodes.values())


def tile_for_memory(graph: Graph, budget: int = DEFAULT_TILE_MEMORY_MIB << 20, overlap: int = 32,
                    align: int = 6, backend: str = "eager") -> int:
    """The largest tile side whose activations on `backend` fit in `budget` bytes
    (activation_bytes_per_pixel). Larger tiles recompute less overlap: at overlap 32 a
    256 px tile computes 1.9x the image's pixels, a 666 px one 1.2x. At least the smallest
    tile the overlap leaves room in."""
    per_pixel = activation_bytes_per_pixel(graph, backend)
    return max(math.isqrt(int(budget // max(per_pixel, 1.0))), 2 * overlap + align)


def timing_side(graph: Graph, budget: int, backends: Sequence[str], largest: int | None = None) -> int:
    """The side of the square input the automatic backend choice times on: every backend's
    predictor is alive at once while they are timed round-robin, so their activations add
    up; together they take at most 1/TIMING_SHARE of `budget` bytes, because beside them run
    OpenVINO's worker process and the export's and checks' peaks of a cold cache, and what
    the eager heap keeps of its timing stays while the chosen backend works (at most
    `largest`, the work's tile; at least 16 px, below which timing says little)."""
    per_pixel = sum(activation_bytes_per_pixel(graph, b) for b in dict.fromkeys(backends))
    side = math.isqrt(int(budget // TIMING_SHARE // max(per_pixel, 1.0)))
    return max(min(side, largest) if largest is not None else side, 16)


def check_tile(graph: Graph, tile: int, budget: int, backend: str = "eager", overlap: int = 32,
               shape: tuple[int, int] | None = None) -> None:
    """Refuse a tile side given by hand (`--tile`) whose activations on `backend` exceed
    `budget` bytes (`--tile-memory`): the bound would not hold. `shape` (h, w): the image,
    which the tile covers at most (a large tile on a small image is that image)."""
    h, w = shape if shape is not None else (tile, tile)
    need = min(tile, h) * min(tile, w) * activation_bytes_per_pixel(graph, backend)
    fits = tile_for_memory(graph, budget, overlap, backend=backend)
    if need <= budget or tile <= fits:  # the smallest tile the overlap allows is what the default takes too
        return
    raise NasflowError(f"--tile {tile} needs ~{math.ceil(need / 2**20)} MiB of activations on the {backend} "
                       f"backend, over --tile-memory {budget >> 20}: use --tile {fits} (the largest that fits) "
                       f"or less, or --tile-memory {math.ceil(need / 2**20)}")

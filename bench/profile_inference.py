"""Where an inference's time goes, op by op (bench/profile_step.py runs these as `--only
inference`, `inference-onnx` and `inference-openvino`; `nasflow bench --profile` after the
inference table):

- inference: the Predictor's eager backend (channels-last fp32 under inference_mode, the
  default eager path) on derived DLSR at the bench's inference size (bench/speed.py: a
  640x360 LR image, x2, C48, the released weights where ../shared has them), through
  torch.profiler as the search steps are (bench/op_profile.py);
- inference-onnx: the same model and image through onnxruntime (`nasflow eval`'s default
  backend on the CPU), whose own profiler (SessionOptions.enable_profiling) gives each graph
  node's time and shapes: the ops are onnxruntime's after its graph optimisations (a Conv
  node there carries its fused activation), not ATen's.

Each also counts the page faults of an unprofiled run: on the eager path every tensor above
glibc's mmap threshold (32 MiB: a 48-channel 640x360 activation is 44 MiB) is a fresh
mmap that the kernel maps in and zeroes on its first write, which the profiler charges to
the op that writes it; such ops' limit is named the allocator. `malloc="heap"` runs the
eager path with large tensors from the heap instead, for comparison.

- inference-openvino: the same through OpenVINO's CPU plugin (the openvino backend's
  settings), read from its per-node counters (PERF_COUNT) and its compiled graph's shapes.

torch.profiler sees only eager PyTorch; the two runtimes' tables are their own profilers'.
"""
from __future__ import annotations

import json
import math
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

SIZE = (360, 640)  # LR (h, w): bench/speed.py's INFERENCE_SIZE
WARM = 1  # untimed runs before the timed ones
REPS = 2  # timed runs; their median is the unprofiled time

# onnxruntime's and OpenVINO's nodes that move or reshape data without arithmetic (their
# blocked layouts' reorders among them).
ORT_LAYOUT = {"ReorderInput", "ReorderOutput", "Reshape", "Transpose", "Concat", "DepthToSpace", "SpaceToDepth",
              "Slice", "Pad", "Split", "Squeeze", "Unsqueeze", "Flatten", "Identity", "Gather", "Shape",
              "Reorder", "ShapeOf", "Concatenation", "StridedSlice"}
ORT_CONV = {"Conv", "FusedConv", "NhwcFusedConv", "Convolution", "GroupConvolution"}
OV_TYPES = {"f32": "float", "f16": "float16", "bf16": "bfloat16", "i64": "int64", "i32": "int32"}


def model_and_input(channels: int, scale: int, size: tuple[int, int]) -> tuple[Any, Any, str]:
    """(model, x, what): derived DLSR as bench/inference_speed.py builds it and the bench's
    image at LR `size` (h, w) as a 1 x 3 x h x w float tensor."""
    import numpy as np
    import torch
    from inference_speed import derived_model, test_image

    model, weights = derived_model(scale, channels)
    _, lr, image = test_image(scale, (size[1], size[0]))
    x = torch.from_numpy(np.ascontiguousarray(lr.transpose(2, 0, 1), dtype=np.float32))[None]
    what = f"derived DLSR x{scale}, C{channels}, {image} at LR {size[1]}x{size[0]} ({weights})"
    return model, x, what


def _faults() -> int:
    """Minor page faults of this process so far: each a page the kernel mapped in (and zeroed)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def _timed(fn: Any, reps: int) -> dict[str, float]:
    """Median wall and CPU seconds and page faults of `reps` calls after WARM untimed ones."""
    import statistics

    from search_step import cpu_seconds

    for _ in range(WARM):
        fn()
    walls, cpus, faults = [], [], []
    for _ in range(reps):
        start, cpu, fault = time.perf_counter(), cpu_seconds(), _faults()
        fn()
        walls.append(time.perf_counter() - start)
        cpus.append(cpu_seconds() - cpu)
        faults.append(_faults() - fault)
    return {"step_s": statistics.median(walls), "step_cpu_s": statistics.median(cpus),
            "faults_per_image": int(statistics.median(faults))}


MALLOC = ("default", "heap")


def set_malloc(malloc: str) -> int | None:
    """The eager path's allocator as `malloc` says, after the Predictor set it up: "default"
    keeps nasflow's (keep_freed_memory: glibc's mmap threshold at its 32 MiB maximum, so any
    larger tensor is a fresh mmap, page-faulted in on its first write); "heap" also sets
    M_MMAP_MAX to 0 and never trims the heap, so large tensors come from the heap and are
    reused (a comparison, not nasflow's setting). The mmap threshold in force, or None."""
    import ctypes

    import torch

    from nasflow.accel.levers import keep_freed_memory

    if not keep_freed_memory(torch.device("cpu")):
        return None  # not glibc: its allocator is not described here
    if malloc == "heap":
        m_trim_threshold, m_mmap_max = -1, -4  # glibc's <malloc.h>
        mallopt = ctypes.CDLL("libc.so.6").mallopt
        mallopt(m_mmap_max, 0)
        mallopt(m_trim_threshold, -1)  # as a size_t: never give the heap's top back (it was 1 GiB)
        return None
    return 32 << 20


def _useful(channels: int, scale: int, size: tuple[int, int]) -> int:
    import roofline

    return roofline.inference(channels, scale, size)


def profile_eager(threads: int, channels: int = 48, scale: int = 2, size: tuple[int, int] = SIZE,
                  reps: int = REPS, malloc: str = "default") -> dict[str, Any]:
    """The Predictor's eager fp32 backend: unprofiled runs, then one profiled without shapes
    (the op times) and one with them (shapes, FLOPs), as bench/profile_step.py's steps."""
    import torch
    from profile_step import _profiler

    from nasflow.deploy.predictor import Predictor

    torch.set_num_threads(threads)
    model, x, what = model_and_input(channels, scale, size)
    predict = Predictor(model, "eager", "fp32")
    mmap_bytes = set_malloc(malloc)
    timing = _timed(lambda: predict(x), reps)
    from search_step import cpu_seconds

    # Profiled twice, the second kept: the profiler's own allocations move the heap, so in the
    # first profiled run tensors that the unprofiled runs reused were fresh memory again.
    for _ in range(2):
        with _profiler(False) as timed:
            start, cpu, fault = time.perf_counter(), cpu_seconds(), _faults()
            predict(x)
            wall, cpu, fault = time.perf_counter() - start, cpu_seconds() - cpu, _faults() - fault
    with _profiler(True) as prof:
        predict(x)
    return {"name": "inference", "unit": "image", "title": "eager inference (the Predictor's eager backend: "
            "channels-last fp32)", "what": what, **timing, "profiled_s": wall, "profiled_cpu_s": cpu,
            "profiled_faults": fault,
            "useful_flops": _useful(channels, scale, size), "outside": "Python: the modules' forward code",
            "malloc": malloc, "mmap_bytes": mmap_bytes, "events": prof.events(), "timed": timed.events()}


def ort_session(path: Path, threads: int, profile_prefix: str | None) -> Any:
    """nasflow.deploy.onnx.session's options (every graph optimisation, no memory pattern),
    with onnxruntime's profiler on when `profile_prefix` is given."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.enable_mem_pattern = False
    if profile_prefix is not None:
        options.enable_profiling = True
        options.profile_file_prefix = profile_prefix
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def last_run_nodes(trace: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], float]:
    """The node events of an onnxruntime trace's last model_run, and that run's microseconds."""
    runs = [e for e in trace if e.get("name") == "model_run"]
    if not runs:
        return [], 0.0
    run = runs[-1]
    start, end = run["ts"], run["ts"] + run["dur"]
    nodes = [e for e in trace if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time")
             and start <= e["ts"] <= end]
    return nodes, float(run["dur"])


def profile_onnx(threads: int, channels: int = 48, scale: int = 2, size: tuple[int, int] = SIZE,
                 reps: int = REPS) -> dict[str, Any]:
    """onnxruntime on the exported model: unprofiled runs in nasflow's own session, then one
    run in a session with onnxruntime's profiler on (after a warm-up run there too)."""
    import numpy as np
    import torch

    from nasflow.deploy.onnx import session
    from nasflow.deploy.predictor import Predictor

    torch.set_num_threads(threads)
    model, x, what = model_and_input(channels, scale, size)
    with tempfile.TemporaryDirectory(prefix="nasflow-ort-profile-") as tmp:
        path = Predictor(model, "onnx", cache_dir=tmp).onnx_path
        assert path is not None
        feed = np.ascontiguousarray(x.numpy())
        plain = session(path, threads)
        name = plain.get_inputs()[0].name
        timing = _timed(lambda: plain.run(None, {name: feed}), reps)
        profiled = ort_session(path, threads, str(Path(tmp) / "ort"))
        profiled.run(None, {name: feed})  # warm-up, in this session's trace too
        from search_step import cpu_seconds

        start, cpu, fault = time.perf_counter(), cpu_seconds(), _faults()
        profiled.run(None, {name: feed})
        wall, cpu, fault = time.perf_counter() - start, cpu_seconds() - cpu, _faults() - fault
        trace = json.loads(Path(profiled.end_profiling()).read_text())
    nodes, run_us = last_run_nodes(trace)
    return {"name": "inference-onnx", "unit": "image", "title": "onnxruntime inference (`nasflow eval`'s "
            "default backend on the CPU)", "what": what, **timing, "profiled_s": wall, "profiled_cpu_s": cpu,
            "profiled_faults": fault,
            "useful_flops": _useful(channels, scale, size), "run_us": run_us,
            "inside": "onnxruntime nodes", "outside": "onnxruntime's executor, input and output copies, Python",
            "nodes": [{"op": e["args"].get("op_name", "?"), "dur_us": float(e["dur"]),
                       "inputs": _shapes(e["args"].get("input_type_shape", [])),
                       "outputs": _shapes(e["args"].get("output_type_shape", []))} for e in nodes]}


def profile_openvino(threads: int, channels: int = 48, scale: int = 2, size: tuple[int, int] = SIZE,
                     reps: int = REPS) -> dict[str, Any]:
    """OpenVINO's CPU plugin on the exported model, compiled as the openvino backend compiles
    it (nasflow/deploy/openvino_backend.py: f32, LATENCY hint, `threads`), in this process:
    unprofiled runs, then one run with its per-node counters on (PERF_COUNT), each node's
    shapes read from the compiled model's runtime graph."""
    import numpy as np
    import openvino as ov
    import torch

    from nasflow.deploy.onnx import export_onnx
    from nasflow.deploy.openvino_backend import properties
    from nasflow.tasks.contract import task_class_for

    torch.set_num_threads(threads)
    model, x, what = model_and_input(channels, scale, size)
    with tempfile.TemporaryDirectory(prefix="nasflow-ov-profile-") as tmp:
        path = Path(tmp) / "model.onnx"
        graph = getattr(model, "graph", None)
        export_onnx(model, path, task_class_for(graph.space if graph is not None else None))
        core = ov.Core()
        net = core.read_model(str(path))
        net.reshape({net.inputs[0].get_any_name(): list(x.shape)})
        feed = {0: np.ascontiguousarray(x.numpy())}
        plain = core.compile_model(net, "CPU", properties(threads)).create_infer_request()
        timing = _timed(lambda: plain.infer(feed), reps)
        compiled = core.compile_model(net, "CPU", {**properties(threads), "PERF_COUNT": "YES"})
        request = compiled.create_infer_request()
        request.infer(feed)  # warm-up
        from search_step import cpu_seconds

        start, cpu, fault = time.perf_counter(), cpu_seconds(), _faults()
        request.infer(feed)
        wall, cpu, fault = time.perf_counter() - start, cpu_seconds() - cpu, _faults() - fault
        ops = {op.get_friendly_name(): op for op in compiled.get_runtime_model().get_ordered_ops()}
        nodes = []
        for info in request.get_profiling_info():
            op = ops.get(info.node_name)
            if info.status.name != "EXECUTED" or op is None:  # fused into another node, or a constant
                continue
            nodes.append({"op": info.node_type, "dur_us": info.real_time.total_seconds() * 1e6,
                          "inputs": [_ov_shape(op.input(i)) for i in range(op.get_input_size())],
                          "outputs": [_ov_shape(op.output(i)) for i in range(op.get_output_size())]})
    return {"name": "inference-openvino", "unit": "image", "title": "OpenVINO inference (the openvino backend)",
            "what": what, **timing, "profiled_s": wall, "profiled_cpu_s": cpu, "profiled_faults": fault,
            "useful_flops": _useful(channels, scale, size), "inside": "OpenVINO nodes",
            "outside": "OpenVINO's executor, input and output copies, Python", "nodes": nodes}


def _ov_shape(port: Any) -> tuple[str, list[int]]:
    """An OpenVINO port's (dtype, static shape) in onnxruntime's names."""
    shape = port.get_partial_shape()
    dims = [d.get_length() for d in shape] if shape.is_static else []
    kind = port.get_element_type().get_type_name()
    return OV_TYPES.get(kind, kind), dims


def _shapes(typed: list[dict[str, list[int]]]) -> list[tuple[str, list[int]]]:
    """onnxruntime's [{"float": [1, 48, 360, 640]}, ...] as [(dtype, shape), ...]."""
    return [(dtype, list(shape)) for t in typed for dtype, shape in t.items()]


def ort_flops(op: str, inputs: list[tuple[str, list[int]]], outputs: list[tuple[str, list[int]]]) -> int:
    """FLOPs an onnxruntime node executes: a conv's 2 x N x H_out x W_out x c_out x (c_in /
    groups) x kh x kw from its output and weight shapes (its NCHWc form pads channels to
    blocks of 8 or 16: the padded work is executed, so counted); a matmul's 2 m n k."""
    try:
        if op in ORT_CONV:
            out, w = outputs[0][1], inputs[1][1]
            return 2 * out[0] * math.prod(out[2:4]) * w[0] * math.prod(w[1:])
        if op in ("MatMul", "Gemm"):
            a, b = inputs[0][1], inputs[1][1]
            return 2 * math.prod(a[:-1]) * a[-1] * b[-1]
    except (IndexError, TypeError):
        return 0
    return 0


def _key(node: dict[str, Any]) -> tuple[str, str]:
    tensors = [s for dtype, s in node["inputs"] if dtype not in ("int64", "int32")]  # integers: shape arguments
    extra = ""
    if node["op"] in ORT_CONV and len(tensors) >= 2 and len(tensors[0]) == 4 and tensors[1][1]:
        w = tensors[1]  # OpenVINO's grouped kernel: groups x c_out/g x c_in/g x kh x kw
        groups = w[0] if len(w) == 5 else tensors[0][1] // w[1]
        extra = f" g{groups}" if groups > 1 else ""
    return node["op"], " ".join("x".join(map(str, s)) for s in tensors) + extra


def _bytes(node: dict[str, Any]) -> int:
    width = {"float": 4, "float16": 2, "bfloat16": 2, "int64": 8, "int32": 4}  # onnxruntime's names
    return sum(math.prod(s) * width.get(d, 4) for d, s in node["inputs"] + node["outputs"])


def analyse_nodes(nodes: list[dict[str, Any]], wall_s: float, peak: Any, scale: float = 1.0,
                  overhead_us: float = 0.0, kernels: str = "MLAS") -> dict[str, Any]:
    """bench/op_profile.analyse's table for onnxruntime's or OpenVINO's nodes: rows by op and
    shape with the same columns (layout nodes counted as op_profile's layout conversions);
    `kernels`: whose conv kernels they are (onnxruntime's MLAS, OpenVINO's oneDNN)."""
    import op_profile

    acc: dict[tuple[str, str], dict[str, Any]] = defaultdict(lambda: {"calls": 0, "us": 0.0, "flops": 0, "bytes": 0})
    for n in nodes:
        r = acc[_key(n)]
        r["calls"] += 1
        r["us"] += max(n["dur_us"] * scale - overhead_us, 0.0)
        r["flops"] += ort_flops(n["op"], n["inputs"], n["outputs"])
        r["bytes"] += _bytes(n)
    top = peak.flops("fp32")
    rows = []
    for (op, shape), r in acc.items():
        s = r["us"] / 1e6
        row = {"op": op, "shape": shape, "calls": r["calls"], "ms": r["us"] / 1e3, "flops": r["flops"],
               "gflops": r["flops"] / s / 1e9 if s > 0 else 0.0,
               "pct_peak": 100.0 * r["flops"] / s / top if s > 0 else 0.0,
               "gb_s": r["bytes"] / s / 1e9 if s > 0 else 0.0}
        # op_profile.limit names a layout conversion by ATen's names; onnxruntime's map onto one.
        limit = op_profile.limit({**row, "op": "aten::copy_" if op in ORT_LAYOUT else op}, peak)
        row["limit"] = limit.replace("oneDNN kernel", f"{kernels} kernel")
        rows.append(row)
    rows.sort(key=lambda r: -r["ms"])
    inside = sum(r["ms"] for r in rows) / 1e3
    table = {"wall_s": max(wall_s, inside), "aten_s": inside, "outside_s": max(wall_s - inside, 0.0),
             "executed_flops": sum(r["flops"] for r in rows), "rows": rows,
             "times_from": f"the runtime's own profiler, {len(nodes)} nodes of one run"}
    if inside > wall_s:  # OpenVINO's per-node timers overlap: shares are of their sum
        table["nodes_over_run"] = inside / wall_s
    return table

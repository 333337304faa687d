"""A torch.profiler trace of one step, op by op: time, executed FLOPs and % of peak per op and
shape, and what limits each op that runs below 30% of the peak.

    with torch.profiler.profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        step()
    table = analyse(prof.events(), wall_s, peak)

An op here is a top-level ATen call: one with no ATen op above it (its children, such as the
copies a conv makes to change the memory layout, count in its time). Time outside every
ATen op (Python, the autograd engine, the strategy's bookkeeping) is its own row.

FLOPs are those the kernel executes, read from the recorded shapes and arguments: a conv's
2 x output values x (c_in / groups) x kh x kw, and in its backward the same per gradient its
output mask asks for (input, kernel); a matmul's 2 m n k. A fused mixed op's merged kernel
executes fewer than the cost model counts (a 7x7 conv for 1x1 + 3x3 + 5x5 + 7x7: 49 instead
of 84 Multi-Adds per weight pair), so these differ from nasflow/hardware/flops.py on purpose.
Other ops do no FLOPs the cost model counts; their bytes (inputs read, one output written)
per second are set against the measured triad bandwidth.
"""
from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

LOW = 30.0  # % of peak under which an op's limit is named

# Where a conv op's stride, padding, dilation and groups sit among its arguments.
CONV = {"aten::conv2d": (3, 4, 5, 6), "aten::convolution": (3, 4, 5, 8), "aten::_convolution": (3, 4, 5, 8),
        "aten::mkldnn_convolution": (4, 3, 5, 6)}
LAYOUT = {"aten::copy_", "aten::contiguous", "aten::clone", "aten::to", "aten::_to_copy", "aten::cat",
          "aten::constant_pad_nd", "aten::pad", "aten::pixel_shuffle", "aten::channel_shuffle",
          "aten::reshape", "aten::flatten"}  # a reshape of a channels-last tensor copies it
ALLOC = {"aten::empty", "aten::empty_strided", "aten::empty_like", "aten::zeros", "aten::zeros_like",
         "aten::ones_like", "aten::full", "aten::fill_", "aten::zero_", "aten::resize_", "aten::new_zeros"}
BYTES = {"float": 4, "c10::BFloat16": 2, "c10::Half": 2, "double": 8, "long int": 8, "int": 4, "bool": 1}


def _ancestor_is_aten(e: Any) -> bool:
    p = e.cpu_parent
    while p is not None:
        if p.name.startswith("aten::"):
            return True
        p = p.cpu_parent
    return False


def _conv_out(side: int, k: int, stride: int, pad: Any, dil: int) -> int:
    if pad == "same":
        return math.ceil(side / stride)
    p = 0 if pad == "valid" else pad
    return (side + 2 * p - dil * (k - 1) - 1) // stride + 1


def _pair(v: Any, i: int) -> Any:
    return v[i] if isinstance(v, (list, tuple)) and len(v) > i else (v[0] if isinstance(v, (list, tuple)) else v)


def op_flops(name: str, shapes: list[list[int]], args: list[Any]) -> int:
    """FLOPs a kernel executes, from a profiler event's input shapes and concrete inputs."""
    try:
        if name == "aten::convolution_backward":
            grad_out, w, mask = shapes[0], shapes[2], args[10]
            return 2 * math.prod(grad_out) * math.prod(w[1:]) * (int(mask[0]) + int(mask[1]))
        if name in CONV:
            x, w = shapes[0], shapes[1]
            stride, pad, dil, _ = (args[i] for i in CONV[name])
            oh = _conv_out(x[2], w[2], _pair(stride, 0), _pair(pad, 0), _pair(dil, 0))
            ow = _conv_out(x[3], w[3], _pair(stride, 1), _pair(pad, 1), _pair(dil, 1))
            return 2 * x[0] * w[0] * oh * ow * math.prod(w[1:])
        if name in ("aten::mm", "aten::addmm"):
            a, b = (shapes[0], shapes[1]) if name == "aten::mm" else (shapes[1], shapes[2])
            return 2 * a[0] * a[1] * b[1]
        if name == "aten::bmm":
            return 2 * shapes[0][0] * shapes[0][1] * shapes[0][2] * shapes[1][2]
        if name == "aten::linear":
            return 2 * math.prod(shapes[0][:-1]) * shapes[1][0] * shapes[1][1]
    except (IndexError, TypeError):
        return 0  # an overload with other arguments: not counted rather than guessed
    return -1  # no formula for this op: its children's FLOPs, if any


def event_flops(e: Any) -> int:
    """FLOPs of a profiler event: its own formula, else the sum of its children's (a matmul
    that calls mm)."""
    own = op_flops(e.name, e.input_shapes, e.concrete_inputs)
    return own if own >= 0 else sum(event_flops(c) for c in e.cpu_children)


def _tensor_shapes(e: Any) -> list[list[int]]:
    """The shapes of an event's tensor inputs, a tensor list's (torch.cat's) included."""
    out: list[list[int]] = []
    structured = getattr(e, "structured_input_shapes", None) or e.input_shapes
    for s, d in zip(structured, e.input_dtypes):
        if d == "TensorList" and isinstance(s, list):
            out += [t for t in s if t]
        elif s and all(isinstance(v, int) for v in s):
            out.append(s)
    return out


def _out_bytes(e: Any) -> int:
    """The bytes of an event's output: a conv's from its shapes and arguments, a cat's all its
    inputs, any other op's its largest input's."""
    width = next((BYTES[d] for d in e.input_dtypes if d in BYTES), 4)
    shapes = _tensor_shapes(e)
    if e.name in CONV:
        try:
            x, w = shapes[0], shapes[1]
            stride, pad, dil, _ = (e.concrete_inputs[i] for i in CONV[e.name])
            oh = _conv_out(x[2], w[2], _pair(stride, 0), _pair(pad, 0), _pair(dil, 0))
            ow = _conv_out(x[3], w[3], _pair(stride, 1), _pair(pad, 1), _pair(dil, 1))
            return x[0] * w[0] * oh * ow * width
        except (IndexError, TypeError):
            pass
    sizes = [math.prod(s) * width for s in shapes]
    return sum(sizes) if e.name == "aten::cat" else max(sizes, default=0)


def _bytes(e: Any) -> int:
    """Bytes moved: inputs read, the output written."""
    width = next((BYTES[d] for d in e.input_dtypes if d in BYTES), 4)
    return sum(math.prod(s) * width for s in _tensor_shapes(e)) + _out_bytes(e)


def _key(e: Any) -> tuple[str, str]:
    shapes = _tensor_shapes(e)
    extra = ""
    if e.name in CONV or e.name == "aten::convolution_backward":
        args = e.concrete_inputs
        try:
            groups = args[9] if e.name == "aten::convolution_backward" else args[CONV[e.name][3]]
            extra = f" g{groups}" if isinstance(groups, int) and groups > 1 else ""
            if e.name == "aten::convolution_backward":  # which gradients: input, kernel, bias
                extra += " d" + "".join(n for n, m in zip(("X", "W", "b"), args[10]) if m)
        except (IndexError, TypeError):
            pass
    return e.name, " ".join("x".join(map(str, s)) for s in shapes) + extra


def limit(row: dict[str, Any], peak: Any, mmap_bytes: int | None = None) -> str:
    """What keeps an op below LOW % of peak (an empty string at or above it). `mmap_bytes`:
    the allocator's mmap threshold where it is in force (glibc: an allocation that large is a
    fresh mmap each time, its pages faulted in and zeroed by the kernel on first write)."""
    name, pct = row["op"], row["pct_peak"]
    fresh = mmap_bytes is not None and row.get("out_bytes", 0) >= mmap_bytes and name not in ALLOC
    if row["flops"] > 0:
        if pct >= LOW:
            return ""
        if fresh:
            return f"allocator: output page-faulted in (a fresh {row['out_bytes'] / 2**20:.0f} MiB mmap)"
        if " g" in row["shape"]:
            return "depthwise / grouped kernel: few FLOPs per byte (memory-bound)"
        if row["ms"] / row["calls"] < 0.1:
            return "small kernel: per-call overhead"
        return "oneDNN kernel below peak (few channels or an unblocked layout)"
    bw = row["gb_s"] / (peak.triad_bw / 1e9) * 100
    if fresh and bw < LOW:
        return f"allocator: output page-faulted in (a fresh {row['out_bytes'] / 2**20:.0f} MiB mmap; {bw:.0f}% of triad)"
    if name in LAYOUT:
        return f"layout conversion / copy ({bw:.0f}% of triad bandwidth)"
    if name in ALLOC:
        return "allocation and zero-fill"
    if "adam" in name or "foreach" in name:
        return f"optimizer update, memory-bound ({bw:.0f}% of triad bandwidth)"
    return f"memory-bound element-wise ({bw:.0f}% of triad bandwidth)"


def _events_in(e: Any) -> int:
    """The profiler events an op's time holds: itself and every op it called."""
    return 1 + sum(_events_in(c) for c in e.cpu_children)


def top_level(events: Any) -> list[Any]:
    """The top-level ATen ops of a trace, in the order they ran."""
    return [e for e in events if e.name.startswith("aten::") and not _ancestor_is_aten(e)]


def analyse(events: Any, wall_s: float, peak: Any, dtype: str = "fp32", scale: float = 1.0,
            overhead_us: float = 0.0, timed: Any = None, mmap_bytes: int | None = None) -> dict[str, Any]:
    """Rows by op and shape, sorted by time: calls, ms, executed FLOPs, GFLOP/s, % of the
    `dtype` peak, GB/s, limit; and the time outside ATen ops. `events`: a trace with shapes
    recorded; `timed`: a trace of the same step's ops without shapes (recording shapes and
    arguments made a DLSR step 60% slower, charged to its small ops), whose op times are used
    when its ops match `events`' one for one; `wall_s`: the step's time; `scale`: what the
    profiler's op times are multiplied by (to put them on the peak's clock); `overhead_us`: the
    profiler's own cost per recorded event, taken off each op's time for every event it holds;
    `mmap_bytes`: the allocator's mmap threshold where outputs that large were fresh mmaps
    (page faults seen), so such an op's limit is named the allocator."""
    ops = top_level(events)
    clocked = top_level(timed) if timed is not None else []
    # The two traces' ops pair up one for one while their names agree (a trace may hold a
    # few ops more at its end: the loop's logging); the rest keep the shaped trace's times.
    same = 0
    while same < min(len(ops), len(clocked)) and ops[same].name == clocked[same].name:
        same += 1
    clocks = clocked[:same] + ops[same:]
    acc: dict[tuple[str, str], dict[str, Any]] = defaultdict(lambda: {"calls": 0, "us": 0.0, "flops": 0, "bytes": 0})
    for e, t in zip(ops, clocks):
        r = acc[_key(e)]
        r["calls"] += 1
        r["us"] += max(t.cpu_time_total * scale - overhead_us * _events_in(t), 0.0)
        r["flops"] += event_flops(e)
        r["bytes"] += _bytes(e)
        r["out_bytes"] = max(r.get("out_bytes", 0), _out_bytes(e))
    top = peak.flops(dtype)
    rows = []
    for (op, shape), r in acc.items():
        s = r["us"] / 1e6
        rows.append({"op": op, "shape": shape, "calls": r["calls"], "ms": r["us"] / 1e3, "flops": r["flops"],
                     "gflops": r["flops"] / s / 1e9 if s > 0 else 0.0,
                     "pct_peak": 100.0 * r["flops"] / s / top if s > 0 else 0.0,
                     "gb_s": r["bytes"] / s / 1e9 if s > 0 else 0.0, "out_bytes": r["out_bytes"]})
    for row in rows:
        row["limit"] = limit(row, peak, mmap_bytes)
    rows.sort(key=lambda r: -r["ms"])
    in_ops = sum(r["ms"] for r in rows) / 1e3
    return {"wall_s": wall_s, "aten_s": in_ops, "outside_s": max(wall_s - in_ops, 0.0),
            "executed_flops": sum(r["flops"] for r in rows), "rows": rows,
            "times_from": f"a trace without shapes for {same} of {len(ops)} ops"}


def by_limit(table: dict[str, Any], outside: str = "Python, autograd engine, outside ATen ops") -> list[tuple[str, float]]:
    """Seconds per kind of limit (the text before any parenthesis), the largest first;
    `outside`: what the time outside every op is called."""
    out: dict[str, float] = defaultdict(float)
    for r in table["rows"]:
        kind = r["limit"].split(" (")[0] or "at or above 30% of peak"
        out[kind] += r["ms"] / 1e3
    out[outside] += table["outside_s"]
    return sorted(out.items(), key=lambda kv: -kv[1])

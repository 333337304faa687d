"""Where the default search step's time goes, op by op (by hand; `nasflow bench --profile`
runs it after the speed tables):

    python bench/profile_step.py --threads 2                  # DLSR and DARTS, tables on stdout
    python bench/profile_step.py --threads 2 --only dlsr --json out.json
    python bench/profile_step.py --threads 1 --only inference-onnx --channels 8 --size 90x160

Two steps, each profiled alone in a fresh process after two untimed steps and one timed one:
torch.profiler over one step without shapes (the op times; recording shapes and arguments
made a DLSR step 60% slower, charged to its small ops) and over the next with them (each
op's shape, arguments and so FLOPs, matched to the first trace's ops one for one):
- DLSR: the bench's default row (bench/speed.py: MiLeNAS, C48, batch 16, HR patch 64, x2,
  fused mixed ops, channels-last, kept memory; bench/search_step.py builds it);
- DARTS: what `nasflow search spaces/darts/space.yaml` runs (the classify task's quick
  preset: MiLeNAS, C4, 8 cells, batch 16, the built-in 32x32 set; fused, channels-last).

And inference (bench/profile_inference.py), derived DLSR at the bench's inference size
(640x360 LR, x2, C48: `--channels`, `--scale`, `--size` change it):
- inference: the Predictor's eager backend (channels-last fp32), through torch.profiler;
- inference-onnx: onnxruntime, `nasflow eval`'s default, through onnxruntime's own profiler;
- inference-openvino: OpenVINO's CPU plugin, through its per-node counters.

Per op and shape (bench/op_profile.py): calls, time, executed FLOPs, GFLOP/s, % of this
machine's peak, and for an op under 30% of it what limits it; then the time by limit, and
the step's useful FLOPs (the cost model's, nasflow/hardware/flops.py) against its executed ones.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from child import run_child  # noqa: E402  (each configuration in a child that ends with the bench)

DLSR_CFG = {"batch": 16, "channels": 48, "patch": 64, "scale": 2, "steps": 5, "keep_memory": True,
            "fuse": True, "channels_last": True, "reuse_forward": False, "amp": "none"}
WARM = 2  # untimed steps before the timed and the profiled ones


def _profiler(shapes: bool) -> Any:
    """Without shapes: the op times (the profiler's cost is small); with: shapes and arguments."""
    from torch.profiler import ProfilerActivity, profile

    return profile(activities=[ProfilerActivity.CPU], record_shapes=shapes)


def profile_dlsr(threads: int) -> dict[str, Any]:
    """The bench's default DLSR step: unprofiled step times, then one step profiled."""
    from search_step import StepBench

    cfg = {**DLSR_CFG, "threads": threads}
    bench = StepBench(cfg)
    times = [bench.step(i) for i in range(cfg["steps"] - 1)][WARM:]
    with _profiler(False) as timed:  # the times
        start, cpu = time.perf_counter(), time.process_time()
        bench.step(cfg["steps"] - 1)
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    with _profiler(True) as prof:  # the same ops, with their shapes
        bench.step(cfg["steps"])
    import roofline

    useful = roofline.search_step(cfg["channels"], cfg["scale"], cfg["patch"], cfg["batch"], False)
    what = (f"MiLeNAS on the DLSR supernet, C{cfg['channels']}, batch {cfg['batch']}, HR patch {cfg['patch']}, "
            f"x{cfg['scale']}, fused, channels-last (bench/speed.py's default row)")
    return {"name": "dlsr", "what": what, "step_s": statistics.median(t for t, _ in times),
            "step_cpu_s": statistics.median(c for _, c in times), "profiled_s": wall, "profiled_cpu_s": cpu,
            "useful_flops": useful, "events": prof.events(), "timed": timed.events()}


class _Window:
    """A search Reporter that times `warm` + 1 steps, then profiles the next one without
    shapes (its times) and the one after with them."""

    def __init__(self, warm: int) -> None:
        self.warm, self.timed, self.prof, self.wall, self.cpu = warm, _profiler(False), _profiler(True), 0.0, 0.0
        self.ends: list[tuple[float, float]] = []  # (wall, CPU) at each step's end

    def start(self, step: int, total: int, warmup: int) -> None:
        self.ends.append((time.perf_counter(), time.process_time()))

    def update(self, step: int, logs: dict[str, float], genotype: Any) -> None:
        self.ends.append((time.perf_counter(), time.process_time()))
        if len(self.ends) == self.warm + 2:  # `warm` + 1 steps done
            self.timed.__enter__()
            self.t0 = (time.perf_counter(), time.process_time())
        elif len(self.ends) == self.warm + 3:
            self.wall, self.cpu = (b - a for a, b in zip(self.t0, self.ends[-1]))
            self.timed.__exit__(None, None, None)
            self.prof.__enter__()
        elif len(self.ends) == self.warm + 4:
            self.prof.__exit__(None, None, None)

    def stop(self) -> None:
        pass


def profile_darts(threads: int) -> dict[str, Any]:
    """What `nasflow search spaces/darts/space.yaml` steps (its quick preset), one step profiled."""
    import torch

    from nasflow.hardware.flops import step_flops, strategy_passes
    from nasflow.search.config import SearchConfig
    from nasflow.search.loop import run_search
    from nasflow.space.graph import build_graph
    from nasflow.space.load import load_space
    from nasflow.tasks.presets import apply_preset, preset_section

    torch.set_num_threads(threads)
    path = ROOT / "spaces" / "darts" / "space.yaml"
    space = load_space(path)
    _, settings = preset_section(space.task, None, "search")
    n = WARM + 3  # warm, timed, profiled without shapes, with shapes
    changes = apply_preset(settings, {"steps": n, "warmup": 0, "log_every": n + 1, "checkpoint_every": n + 1,
                                      "snapshot_steps": [], "device": "cpu"}, space.params)
    config = SearchConfig(**changes)
    window = _Window(WARM)
    with tempfile.TemporaryDirectory(prefix="nasflow-profile-") as tmp:
        run_search(config, Path(tmp) / "run", space=space, reporter=window)
    steps = [(b[0] - a[0], b[1] - a[1]) for a, b in zip(window.ends, window.ends[1:])]
    searched = space.with_params(config.overrides)
    graph = build_graph(searched)
    passes = strategy_passes(config.strategy, bool(config.strategy_options.get("reuse_forward", False)))
    useful = step_flops(graph, (32, 32), config.batch_size, passes).total
    what = (f"{config.strategy} on the DARTS cell space, C{config.overrides.get('C')}, "
            f"{searched.params.get('layers')} cells, batch {config.batch_size}, 32x32 (the classify task's quick preset)")
    return {"name": "darts", "what": what, "step_s": steps[WARM][0], "step_cpu_s": steps[WARM][1],
            "profiled_s": window.wall, "profiled_cpu_s": window.cpu, "useful_flops": useful,
            "events": window.prof.events(), "timed": window.timed.events()}


NAMES = ("dlsr", "darts", "inference", "inference-onnx", "inference-openvino")
INFERENCE = {"channels": 48, "scale": 2, "size": (360, 640), "malloc": "default"}  # bench/speed.py's inference row


def one(name: str, threads: int, peak: Any = None, inference: dict[str, Any] | None = None) -> dict[str, Any]:
    """Profile `name` (one of NAMES) in this process; the analysed tables (JSON-ready).
    `peak`: this machine's (measured or cached when None); `inference`: the inference
    profiles' channels, scale and LR size (h, w)."""
    import op_profile
    import profile_inference
    import roofline

    peak = peak if peak is not None else roofline.peak(threads)
    sizes = {**INFERENCE, **(inference or {})}
    if name == "dlsr":
        got = profile_dlsr(threads)
    elif name == "darts":
        got = profile_darts(threads)
    elif name == "inference":
        got = profile_inference.profile_eager(threads, **sizes)
    elif name == "inference-onnx":
        got = profile_inference.profile_onnx(threads, **{k: v for k, v in sizes.items() if k != "malloc"})
    else:
        got = profile_inference.profile_openvino(threads, **{k: v for k, v in sizes.items() if k != "malloc"})
    # With one thread the peak is on CPU time: the profiler's wall times are scaled by the
    # profiled step's CPU / wall (the share of the time it ran, on a shared machine).
    scale = got["profiled_cpu_s"] / got["profiled_s"] if threads == 1 else 1.0
    step = got["step_cpu_s"] if threads == 1 else got["step_s"]
    profiled = got["profiled_cpu_s"] if threads == 1 else got["profiled_s"]
    # The profiler's own cost (recording each event, its shapes and arguments) made the
    # profiled step slower than an unprofiled one: spread over the events recorded, taken off
    # each op for every event it holds, so the rows add up to the unprofiled step. An
    # inference holds ~1,500 events (a step ~50,000), whose cost is within the noise of one run
    # (its page faults vary from run to run by more): its table adds up to the profiled run.
    if got.get("unit") == "image":
        step = profiled
    if "nodes" in got:  # a runtime's own trace: one event per node
        nodes = got.pop("nodes")
        n_events = len(nodes)
        overhead_us = max(profiled - step, 0.0) * 1e6 / max(n_events, 1)
        kernels = "oneDNN" if name == "inference-openvino" else "MLAS"
        table = profile_inference.analyse_nodes(nodes, step, peak, scale=scale, overhead_us=overhead_us,
                                                kernels=kernels)
    else:
        events, timed = got.pop("events"), got.pop("timed")
        n_events = len(timed)
        overhead_us = max(profiled - step, 0.0) * 1e6 / max(n_events, 1)
        table = op_profile.analyse(events, step, peak, scale=scale, overhead_us=overhead_us, timed=timed,
                                   mmap_bytes=got.pop("mmap_bytes", None))
    outside = f"{got.get('outside', 'Python, autograd engine')}, outside {got.get('inside', 'ATen ops')}"
    return {**got, **table, "by_limit": op_profile.by_limit(table, outside), "threads": threads, "scale": scale,
            "clock_step_s": step, "n_events": n_events, "overhead_us": overhead_us}


def run(threads: int, peak: Any = None, only: list[str] | None = None,
        inference: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Each profile alone in a fresh process (so neither inherits the other's caches)."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    sizes = {**INFERENCE, **(inference or {})}
    extra = ["--channels", str(sizes["channels"]), "--scale", str(sizes["scale"]),
             "--size", "x".join(map(str, sizes["size"])), "--malloc", sizes["malloc"]]
    out = []
    for name in only or list(NAMES):
        print(f"  profiling {name} ...", file=sys.stderr, flush=True)
        got, error = run_child([sys.executable, __file__, "--one", name, "--threads", str(threads), *extra], env)
        out.append({"name": name, "error": error} if got is None else got)
    return out


def print_profiles(profiles: list[dict[str, Any]], peak: Any, top: int = 25) -> None:
    for p in profiles:
        if "error" in p:
            print(f"\nprofile of the {p['name']} step failed: {p['error']}")
            continue
        useful, executed = p["useful_flops"], p["executed_flops"]
        step, clock = p["clock_step_s"], "CPU s" if p["threads"] == 1 else "s"
        unit = p.get("unit", "step")
        title = p.get("title", f"the default {p['name']} step")
        print(f"\nWhere {title} goes: {p['what']}, {p['threads']} threads")
        print(f"{unit} {p['step_s']:.3f} s unprofiled ({p['step_cpu_s']:.3f} CPU s), {p['profiled_s']:.3f} s "
              f"profiled ({p['profiled_cpu_s']:.3f} CPU s); in {p.get('inside', 'ATen ops')} {p['aten_s']:.3f} "
              f"{clock}, outside them ({p.get('outside', 'Python, autograd engine')}) {p['outside_s']:.3f} {clock}")
        if p["scale"] != 1.0:
            print(f"(one thread: op times are the profiler's wall times x {p['scale']:.2f}, the profiled "
                  "step's CPU / wall, as the peak is on CPU time)")
        if p.get("unit") == "image":
            print(f"(op times from {p['times_from']}; the rows and the time outside them add up to the profiled "
                  f"run, {step:.3f} {clock}: its {p['n_events']} events cost the profiler little)")
        else:
            print(f"(op times from {p['times_from']}; the profiler's own cost, {p['overhead_us']:.1f} us for each "
                  f"of its {p['n_events']} events, is taken off the ops that hold them)")
        print(f"useful FLOPs (cost model) {useful / 1e9:.2f} G: {useful / step / 1e9:.1f} GFLOP/s, "
              f"{100 * useful / step / peak.flops('fp32'):.1f}% of peak; executed by convs and "
              f"matmuls {executed / 1e9:.2f} G; at peak they would take {executed / peak.flops('fp32'):.3f} {clock}")
        print(f"{'op':28s} {'shape':44s} {'calls':>5s} {'ms':>8s} {'share':>6s} {'GFLOP/s':>8s} "
              f"{'% peak':>7s} {'GB/s':>6s}  limit (under 30% of peak)")
        for r in p["rows"][:top]:
            print(f"{r['op'][:28]:28s} {r['shape'][:44]:44s} {r['calls']:5d} {r['ms']:8.1f} "
                  f"{100 * r['ms'] / 1e3 / p['wall_s']:5.1f}% {r['gflops']:8.1f} {r['pct_peak']:6.1f}% "
                  f"{r['gb_s']:6.1f}  {r['limit']}")
        rest = p["rows"][top:]
        if rest:
            print(f"... {len(rest)} more op/shape rows, {sum(r['ms'] for r in rest):.1f} ms in all (--json has them)")
        if "nodes_over_run" in p:
            print(f"(the nodes' own times add up to {100 * p['nodes_over_run']:.0f}% of the profiled run: the "
                  "runtime's per-node timers overlap, so the shares below are of their sum)")
        if "faults_per_image" in p:
            n = p["faults_per_image"]
            malloc = f"; malloc {p['malloc']}" if "malloc" in p else ""
            print(f"page faults: {n:,} per image unprofiled ({n * 4096 / 2**30:.2f} GiB mapped in and zeroed "
                  f"by the kernel), {p.get('profiled_faults', 0):,} in the profiled run{malloc}")
            if p.get("profiled_faults", 0) > 2 * n + 10_000:
                print("(the profiled run faulted in far more pages than an unprofiled one: the profiler's own "
                      "allocations moved the heap, so its op times hold page faults the unprofiled runs do not "
                      "have; bench/profile_malloc.py times the allocator settings unprofiled)")
        if p["name"] == "inference":
            print("(the eager path only: torch.profiler does not see inside onnxruntime or OpenVINO; "
                  "inference-onnx and inference-openvino read their own profilers)")
        print("time by what limits it:")
        for kind, s in p["by_limit"]:
            print(f"  {kind:58s} {s:7.3f} {clock} {100 * s / p['wall_s']:5.1f}%")


def _size(text: str) -> tuple[int, int]:
    """"360x640" -> (360, 640); argparse turns the ValueError into one line, exit code 2."""
    h, _, w = text.partition("x")
    if not (h.isdigit() and w.isdigit() and int(h) > 0 and int(w) > 0):
        raise argparse.ArgumentTypeError(f"'{text}' is not an LR size HxW, e.g. 360x640")
    return int(h), int(w)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", choices=NAMES)
    parser.add_argument("--top", type=int, default=25, help="op/shape rows printed per step")
    parser.add_argument("--json", type=Path, help="also write every row to this JSON file")
    parser.add_argument("--channels", type=int, default=INFERENCE["channels"], help="inference: derived DLSR's width")
    parser.add_argument("--scale", type=int, default=INFERENCE["scale"], help="inference: the upscaling factor")
    parser.add_argument("--size", type=_size, default=INFERENCE["size"], help="inference: the LR image, HxW")
    parser.add_argument("--malloc", choices=["default", "heap"], default="default",
                        help="inference (eager): nasflow's allocator settings, or large tensors from the heap "
                             "(glibc M_MMAP_MAX 0), to see what page faults cost")
    parser.add_argument("--one", choices=NAMES, help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args(argv)
    sizes = {"channels": args.channels, "scale": args.scale, "size": args.size, "malloc": args.malloc}
    if args.one:
        print(json.dumps(one(args.one, args.threads, inference=sizes)))
        return
    import roofline

    peak = roofline.peak(args.threads)
    profiles = run(args.threads, peak, [args.only] if args.only else None, sizes)
    print_profiles(profiles, peak, args.top)
    if args.json:
        args.json.write_text(json.dumps({"peak": peak.to_json(), "profiles": profiles}, indent=2) + "\n")


if __name__ == "__main__":
    main()

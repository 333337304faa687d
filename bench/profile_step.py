"""Where the default search step's time goes, op by op (by hand; `nasflow bench --profile`
runs it after the speed tables):

    python bench/profile_step.py --threads 2                  # DLSR and DARTS, tables on stdout
    python bench/profile_step.py --threads 2 --only dlsr --json out.json

Two steps, each profiled alone in a fresh process (torch.profiler, shapes recorded), after
two untimed steps:
- DLSR: the bench's default row (bench/speed.py: MiLeNAS, C48, batch 16, HR patch 64, x2,
  fused mixed ops, channels-last, kept memory; bench/search_step.py builds it);
- DARTS: what `nasflow search spaces/darts/space.yaml` runs (the classify task's quick
  preset: MiLeNAS, C4, 8 cells, batch 16, the built-in 32x32 set; fused, channels-last).

Per op and shape (bench/op_profile.py): calls, time, executed FLOPs, GFLOP/s, % of this
machine's peak, and for an op under 30% of it what limits it; then the time by limit, and
the step's useful FLOPs (the cost model's, nasflow/hardware/flops.py) against its executed ones.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

DLSR_CFG = {"batch": 16, "channels": 48, "patch": 64, "scale": 2, "steps": 4, "keep_memory": True,
            "fuse": True, "channels_last": True, "reuse_forward": False, "amp": "none"}
WARM = 2  # untimed steps before the timed and the profiled ones


def _profiler() -> Any:
    from torch.profiler import ProfilerActivity, profile

    return profile(activities=[ProfilerActivity.CPU], record_shapes=True)


def profile_dlsr(threads: int) -> dict[str, Any]:
    """The bench's default DLSR step: unprofiled step times, then one step profiled."""
    from search_step import StepBench

    cfg = {**DLSR_CFG, "threads": threads}
    bench = StepBench(cfg)
    times = [bench.step(i)[0] for i in range(cfg["steps"])][WARM:]
    with _profiler() as prof:
        start = time.perf_counter()
        bench.step(cfg["steps"])
        wall = time.perf_counter() - start
    import roofline

    useful = roofline.search_step(cfg["channels"], cfg["scale"], cfg["patch"], cfg["batch"], False)
    what = (f"MiLeNAS on the DLSR supernet, C{cfg['channels']}, batch {cfg['batch']}, HR patch {cfg['patch']}, "
            f"x{cfg['scale']}, fused, channels-last (bench/speed.py's default row)")
    return {"name": "dlsr", "what": what, "step_s": statistics.median(times), "profiled_s": wall,
            "useful_flops": useful, "events": prof.events()}


class _Window:
    """A search Reporter that profiles the step after `warm` steps (and times those before)."""

    def __init__(self, warm: int) -> None:
        self.warm, self.ends, self.prof, self.wall = warm, [], _profiler(), 0.0

    def start(self, step: int, total: int, warmup: int) -> None:
        self.ends.append(time.perf_counter())

    def update(self, step: int, logs: dict[str, float], genotype: Any) -> None:
        now = time.perf_counter()
        self.ends.append(now)
        if len(self.ends) == self.warm + 2:  # `warm` + 1 steps done: profile the next one
            self.prof.__enter__()
            self.t0 = time.perf_counter()
        elif len(self.ends) == self.warm + 3:
            self.wall = now - self.t0
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
    n = WARM + 2  # warm, timed, profiled
    changes = apply_preset(settings, {"steps": n, "warmup": 0, "log_every": n, "checkpoint_every": n,
                                      "snapshot_steps": [], "device": "cpu"}, space.params)
    config = SearchConfig(**changes)
    window = _Window(WARM)
    with tempfile.TemporaryDirectory(prefix="nasflow-profile-") as tmp:
        run_search(config, Path(tmp) / "run", space=space, reporter=window)
    steps = [b - a for a, b in zip(window.ends, window.ends[1:])]
    searched = space.with_params(config.overrides)
    graph = build_graph(searched)
    passes = strategy_passes(config.strategy, bool(config.strategy_options.get("reuse_forward", False)))
    useful = step_flops(graph, (32, 32), config.batch_size, passes).total
    what = (f"{config.strategy} on the DARTS cell space, C{config.overrides.get('C')}, "
            f"{searched.params.get('layers')} cells, batch {config.batch_size}, 32x32 (the classify task's quick preset)")
    return {"name": "darts", "what": what, "step_s": statistics.median(steps[WARM:WARM + 1]),
            "profiled_s": window.wall, "useful_flops": useful, "events": window.prof.events()}


def one(name: str, threads: int) -> dict[str, Any]:
    """Profile `name` in this process; the analysed tables (JSON-ready)."""
    import op_profile
    import roofline

    peak = roofline.peak(threads)
    got = profile_dlsr(threads) if name == "dlsr" else profile_darts(threads)
    table = op_profile.analyse(got.pop("events"), got["profiled_s"], peak)
    return {**got, **table, "by_limit": op_profile.by_limit(table), "threads": threads}


def run(threads: int, peak: Any = None, only: list[str] | None = None) -> list[dict[str, Any]]:
    """Each profile alone in a fresh process (so neither inherits the other's caches)."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    out = []
    for name in only or ["dlsr", "darts"]:
        print(f"  profiling the default {name} step ...", file=sys.stderr, flush=True)
        proc = subprocess.run([sys.executable, __file__, "--one", name, "--threads", str(threads)],
                              capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            out.append({"name": name, "error": (proc.stderr.strip().splitlines() or ["failed"])[-1]})
            continue
        out.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return out


def print_profiles(profiles: list[dict[str, Any]], peak: Any, top: int = 25) -> None:
    for p in profiles:
        if "error" in p:
            print(f"\nprofile of the {p['name']} step failed: {p['error']}")
            continue
        useful, executed = p["useful_flops"], p["executed_flops"]
        print(f"\nWhere the default {p['name']} step goes: {p['what']}, {p['threads']} threads")
        print(f"step {p['step_s']:.3f} s unprofiled, {p['profiled_s']:.3f} s profiled; in ATen ops "
              f"{p['aten_s']:.3f} s, outside them (Python, autograd engine) {p['outside_s']:.3f} s")
        print(f"useful FLOPs (cost model) {useful / 1e9:.2f} G: {useful / p['step_s'] / 1e9:.1f} GFLOP/s, "
              f"{100 * useful / p['step_s'] / peak.flops('fp32'):.1f}% of peak; executed by convs and "
              f"matmuls {executed / 1e9:.2f} G; at peak they would take {executed / peak.flops('fp32'):.3f} s")
        print(f"{'op':28s} {'shape':44s} {'calls':>5s} {'ms':>8s} {'share':>6s} {'GFLOP/s':>8s} "
              f"{'% peak':>7s} {'GB/s':>6s}  limit (under 30% of peak)")
        for r in p["rows"][:top]:
            print(f"{r['op'][:28]:28s} {r['shape'][:44]:44s} {r['calls']:5d} {r['ms']:8.1f} "
                  f"{100 * r['ms'] / 1e3 / p['profiled_s']:5.1f}% {r['gflops']:8.1f} {r['pct_peak']:6.1f}% "
                  f"{r['gb_s']:6.1f}  {r['limit']}")
        rest = p["rows"][top:]
        if rest:
            print(f"... {len(rest)} more op/shape rows, {sum(r['ms'] for r in rest):.1f} ms in all (--json has them)")
        print("time by what limits it:")
        for kind, s in p["by_limit"]:
            print(f"  {kind:58s} {s:7.3f} s {100 * s / p['profiled_s']:5.1f}%")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", choices=["dlsr", "darts"])
    parser.add_argument("--top", type=int, default=25, help="op/shape rows printed per step")
    parser.add_argument("--json", type=Path, help="also write every row to this JSON file")
    parser.add_argument("--one", choices=["dlsr", "darts"], help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.threads)))
        return
    import roofline

    peak = roofline.peak(args.threads)
    profiles = run(args.threads, peak, [args.only] if args.only else None)
    print_profiles(profiles, peak, args.top)
    if args.json:
        args.json.write_text(json.dumps({"peak": peak.to_json(), "profiles": profiles}, indent=2) + "\n")


if __name__ == "__main__":
    main()

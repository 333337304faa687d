"""nasflow's speed against the plain implementation, side by side in one run (by hand, never
in tests):

    python bench/speed.py --threads 2                      # the README's figures
    python bench/speed.py --batch 4 --channels 16 --steps 1 --reps 1 --json out.json

1. Seconds per MiLeNAS search step on the DLSR supernet (space.yaml), the plain path (every
   candidate separately, NCHW fp32, three forward/backward passes) and then each lever added
   on top of the previous one, so each lever's gain shows: fused kernels, channels_last,
   reuse_forward, bf16 autocast. Each configuration runs alone in a fresh process (warm-up
   step, then the timed ones), where its own peak resident set size (VmHWM, bench/child.py) is read before
   the first step (model, optimizers, data) and after the last. The "auto" row is what
   `nasflow search --levers auto` picks on this machine for this configuration (timed once
   and cached by nasflow/hardware/auto.py), timed here in the same rounds as the other rows,
   and checked against the default row: auto must not be slower than the default.
2. Seconds per image of derived DLSR x2 on a 640x360 image: plain eager fp32 NCHW against
   the Predictor backends (nasflow/inference.py), with max |diff| and PSNR against the HR.
3. Seconds per training step of derived DLSR x2 (bench/train_step.py's rows).

Every row also gives its achieved GFLOP/s, the FLOPs the cost model counts for it (every
candidate of the supernet, forward and the gradients autograd runs: nasflow/hardware/flops.py)
per second, and that as a share of this machine's measured peak (bench/peak.py, cached per
machine and thread count): how far each configuration is from what the machine can do.
`--profile` adds where the default steps' and inference's time goes, op by op
(bench/profile_step.py).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import roofline  # noqa: E402  (bench/, on the path just above)
from child import run_child  # noqa: E402  (each configuration in a child that ends with the bench)

# Cumulative: each row adds one lever to the row above. "default" marks nasflow's default
# on the CPU (SearchConfig: fuse on, channels_last auto = on; reuse_forward and amp opt-in).
SEARCH_ROWS: list[tuple[str, dict[str, Any]]] = [
    ("plain (no fuse, NCHW fp32)", dict(fuse=False, channels_last=False, reuse_forward=False, amp="none")),
    ("+ fused kernels", dict(fuse=True, channels_last=False, reuse_forward=False, amp="none")),
    ("+ channels_last  [default]", dict(fuse=True, channels_last=True, reuse_forward=False, amp="none")),
    ("+ reuse_forward", dict(fuse=True, channels_last=True, reuse_forward=True, amp="none")),
    ("+ bf16 autocast", dict(fuse=True, channels_last=True, reuse_forward=True, amp="bf16")),
]


def search_rows(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Each configuration alone in a fresh process (bench/search_step.py): a warm-up step,
    then `steps` timed ones, and its peak RSS. One process per configuration, because in a
    shared one they disturb each other: oneDNN's primitive cache (1024 entries) overflows
    and the allocator's free lists mix, which slowed the plain path by ~20%. `rounds`
    repeats the sequence, interleaved, so a machine whose load changes slows all alike; the
    reported time is the median over every round's steps."""
    base = {"batch": args.batch, "channels": args.channels, "patch": args.patch, "scale": args.scale,
            "steps": args.steps, "threads": args.threads, "keep_memory": args.malloc == "kept"}
    rows = [{"name": name, **levers} for name, levers in SEARCH_ROWS]
    if args.auto:
        print("  levers auto: what nasflow search picks here ...", file=sys.stderr, flush=True)
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
        got, error = run_child([sys.executable, str(HERE / "search_step.py"), json.dumps({**base, "auto": True})], env)
        if got is None:
            print(f"  levers auto: {error}", file=sys.stderr, flush=True)
            rows.append({"name": "auto", "auto": True, "error": error})
        else:
            picked = got["levers"]
            name = ("fused" if picked["fuse"] else "plain") + (" channels_last" if picked["channels_last"] else " NCHW")
            rows.append({"name": f"auto ({name})", **SEARCH_ROWS[0][1], **picked, "auto": True,
                         "auto_source": got["source"], "auto_timings": got["timings"]})
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    for r in range(args.rounds):
        for row in rows:
            if "error" in row:
                continue
            print(f"  round {r + 1} of {args.rounds}: {row['name']} ...", file=sys.stderr, flush=True)
            cfg = {**base, **{k: row[k] for k in SEARCH_ROWS[0][1]}}  # the levers only
            got, error = run_child([sys.executable, str(HERE / "search_step.py"), json.dumps(cfg)], env)
            if got is None:
                row["error"] = error
                continue
            row.setdefault("times", []).extend(got["times"])
            row.setdefault("cpu_times", []).extend(got["cpu_times"])
            row["peak_rss_mb"] = max(row.get("peak_rss_mb", 0.0), got["peak_rss_mb"])
            row["setup_rss_mb"] = got["setup_rss_mb"]
            row["first_loss"] = got["first_loss"]
    for row in rows:
        if "error" not in row:
            row["s_per_step"] = statistics.median(row["times"])
            row["cpu_s_per_step"] = statistics.median(row["cpu_times"])
    return rows


def print_search(rows: list[dict[str, Any]]) -> None:
    base = rows[0]
    print(f"\nMiLeNAS search step, DLSR supernet: {_search_caption}")
    print(f"{'configuration':30s} {'s/step':>8s} {'speed-up':>9s} {'GFLOP/s':>8s} {'% peak':>7s} {'CPU s':>8s} "
          f"{'CPU x':>7s} {'peak RSS MB':>12s} {'step MB':>8s} {'loss diff':>10s}")
    for r in rows:
        if "error" in r:
            print(f"{r['name']:30s} failed: {r['error']}")
            continue
        step_mb = r["peak_rss_mb"] - r["setup_rss_mb"]
        if "error" in base:  # no plain row to compare with: the figures alone
            base = {"s_per_step": math.nan, "cpu_s_per_step": math.nan, "first_loss": math.nan}
        diff = (r["first_loss"] - base["first_loss"]) / base["first_loss"]
        print(f"{r['name']:30s} {r['s_per_step']:8.2f} {base['s_per_step'] / r['s_per_step']:8.2f}x "
              f"{r['gflops']:8.1f} {r['pct_peak']:6.1f}% {r['cpu_s_per_step']:8.2f} {base['cpu_s_per_step'] / r['cpu_s_per_step']:6.2f}x "
              f"{r['peak_rss_mb']:12.0f} {step_mb:8.0f} {diff:+10.1e}")
    print("s/step: median wall time, each configuration alone in a fresh process; CPU s: the\n"
          "process's CPU time per step (all threads); peak RSS: that process's own (VmHWM);\n"
          "step MB: its growth over the steps (the activations);\n"
          "loss diff: the first step's train loss relative to plain (same weights, arch and batch).")
    print(roofline.peak_line(_peak))
    auto = next((r for r in rows if r.get("auto")), None)
    default = next((r for r in rows if "[default]" in r["name"]), None)
    if auto is not None and default is not None and "error" not in auto and "error" not in default:
        same = all(auto[k] == default[k] for k in SEARCH_ROWS[0][1])
        # on the clock auto chose with (nasflow/hardware/auto.py: CPU time with one thread)
        key, unit = ("cpu_s_per_step", "CPU s/step") if _threads == 1 else ("s_per_step", "s/step")
        ratio = auto[key] / default[key]
        # the same configuration in two processes differs by noise only; another one must be faster
        verdict = ("the default configuration itself" if same else
                   "faster than the default: OK" if ratio <= 1.0 else "SLOWER than the default")
        print(f"levers auto ({auto['auto_source']}) picked {auto['name'][6:-1]}: {auto[key]:.3f} {unit} "
              f"against the default's {default[key]:.3f} in this run ({ratio:.2f}x), {verdict}")


def print_inference(result: dict[str, Any]) -> None:
    rows = result["rows"]
    base = rows[0]
    print(f"\nDerived DLSR x{_scale} inference, {result['image']} ({result['weights']})")
    print(f"{'backend':16s} {'s/image':>8s} {'speed-up':>9s} {'GFLOP/s':>8s} {'% peak':>7s} {'CPU s':>7s} "
          f"{'CPU x':>7s} {'max|diff|':>10s} {'PSNR dB':>8s} {'dPSNR':>8s}")
    for r in rows:
        label = f"{r['backend']} {r['dtype']}"
        if "error" in r:
            print(f"{label:16s} unavailable: {r['error'][:100]}")
            continue
        print(f"{label:16s} {r['s_per_image']:8.3f} {base['s_per_image'] / r['s_per_image']:8.2f}x "
              f"{r['gflops']:8.1f} {r['pct_peak']:6.1f}% {r['cpu_s_per_image']:7.2f} {base['cpu_s_per_image'] / r['cpu_s_per_image']:6.2f}x "
              f"{r['max_abs_diff']:10.2e} {r['psnr']:8.3f} {r['psnr'] - base['psnr']:+8.4f}")
    print(roofline.peak_line(_peak))


_search_caption = ""
_scale = 2
_threads = 2
_peak: Any = None
INFERENCE_SIZE = (360, 640)  # LR (h, w) of inference_speed.test_image


def add_search_rates(rows: list[dict[str, Any]], args: argparse.Namespace, peak: Any) -> None:
    """Each search row's achieved GFLOP/s and % of peak (its passes: reuse_forward saves one);
    with one thread on the CPU time, as the peak was measured (roofline.seconds)."""
    for row in rows:
        if "error" not in row:
            flops = roofline.search_step(args.channels, args.scale, args.patch, args.batch, row["reuse_forward"])
            secs = roofline.seconds(row, "step", args.threads)
            row.update(roofline.rate(flops, secs, peak, "bf16" if row["amp"] == "bf16" else "fp32"))


def add_inference_rates(result: dict[str, Any], args: argparse.Namespace, peak: Any) -> None:
    flops = roofline.inference(args.channels, args.scale, INFERENCE_SIZE)
    for row in result["rows"]:
        if "error" not in row:
            row.update(roofline.rate(flops, roofline.seconds(row, "image", args.threads), peak, row["dtype"]))


def profile_names(only: str | None) -> list[str]:
    """What --profile profiles (bench/profile_step.py's names): the default DLSR and DARTS
    steps with the search section; eager, onnxruntime and (where installed) OpenVINO
    inference with the inference one."""
    import importlib.util

    steps, inference = ["dlsr", "darts"], ["inference", "inference-onnx"]
    if importlib.util.find_spec("openvino") is not None:
        inference.append("inference-openvino")
    return {None: steps + inference, "search": steps, "inference": inference}.get(only, [])


def main(argv: list[str] | None = None) -> dict[str, Any]:
    global _search_caption, _scale, _threads, _peak
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--channels", type=int, default=48)
    parser.add_argument("--patch", type=int, default=64, help="HR patch side")
    parser.add_argument("--scale", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3, help="timed search steps (after one warm-up step)")
    parser.add_argument("--rounds", type=int, default=1, help="runs of every search configuration, interleaved")
    parser.add_argument("--reps", type=int, default=3, help="timed inference runs per backend")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", choices=["search", "inference", "train"], help="run one section only")
    parser.add_argument("--train-patch", type=int, default=96, help="HR patch side of the training rows")
    parser.add_argument("--profile", action="store_true",
                        help="also profile op by op (bench/profile_step.py) the default DLSR and DARTS search "
                             "steps (with the search section) and inference, eager, onnxruntime and OpenVINO "
                             "(with the inference section)")
    parser.add_argument("--no-auto", dest="auto", action="store_false",
                        help="leave out the search's auto row (what --levers auto picks, timed once and cached)")
    parser.add_argument("--malloc", choices=["kept", "default"], default="kept",
                        help="kept: nasflow's keep_freed_memory (levers.py) for every configuration, "
                             "plain included; default: glibc's own thresholds")
    parser.add_argument("--backends", default="eager,compile,onnx,openvino,auto,eager-bf16",
                        help="inference backends beside plain, BACKEND or BACKEND-bf16, comma-separated")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    _scale, _threads = args.scale, args.threads
    _search_caption = (f"C{args.channels}, batch {args.batch}, HR patch {args.patch}, x{args.scale}, "
                       f"{args.threads} threads, median of {args.steps} steps, malloc {args.malloc}")
    out: dict[str, Any] = {"args": vars(args) | {"json": str(args.json) if args.json else None},
                           "torch": torch.__version__}
    print("  this machine's peak (bench/peak.py; measured once, then cached) ...", file=sys.stderr, flush=True)
    _peak = roofline.peak(args.threads)
    out["peak"] = _peak.to_json()
    if args.only in (None, "search"):
        out["search"] = search_rows(args)
        add_search_rates(out["search"], args, _peak)
        print_search(out["search"])
    if args.only in (None, "inference"):
        import inference_speed

        print("  inference ...", file=sys.stderr, flush=True)
        backends = [tuple(b.split("-")) if "-" in b else (b, "fp32") for b in args.backends.split(",") if b]
        out["inference"] = inference_speed.run(args.scale, args.channels, args.reps, backends)
        add_inference_rates(out["inference"], args, _peak)
        print_inference(out["inference"])
    if args.only in (None, "train"):
        import train_step

        arch = str(ROOT / "spaces" / "dlsr" / "dlsr.yaml")
        out["train"] = train_step.rows(arch, args.batch, args.train_patch, args.steps, args.threads)
        train_step.add_rates(out["train"], arch, args.batch, args.train_patch, args.threads)
        train_step.print_train(out["train"], arch, args.batch, args.train_patch, args.threads, args.steps, _peak)
    if args.profile:
        import profile_step

        names = profile_names(args.only)
        sizes = {"channels": args.channels, "scale": args.scale, "size": INFERENCE_SIZE}
        if not names:
            print(f"\n--profile: nothing is profiled with --only {args.only} (search and inference are)")
        out["profile"] = profile_step.run(args.threads, _peak, names, sizes) if names else []
        profile_step.print_profiles(out["profile"], _peak)
    if args.json:
        from nasflow.runs.files import write_text_atomic  # a full disk: one line naming the file, no partial one

        write_text_atomic(args.json, json.dumps(out, indent=2) + "\n")
    return out


if __name__ == "__main__":
    main()

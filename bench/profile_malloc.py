"""What the allocator costs eager inference (by hand; bench/profile_step.py's inference profile
names the ops it slows):

    python bench/profile_malloc.py --threads 1 --rounds 2

Derived DLSR x2 (C48, released weights where ../shared has them) on the bench's 640x360 LR
image through the Predictor's eager backend, in a fresh process per run, the two allocator
settings interleaved round by round (bench/profile_inference.py set_malloc):
- default: nasflow's (glibc's mmap threshold at its 32 MiB maximum): every tensor above it,
  a 48-channel activation at this size (42 MiB) included, is a fresh mmap each time, which
  the kernel maps in and zeroes page by page on its first write;
- heap: large tensors from the heap too (M_MMAP_MAX 0, the heap never trimmed), reused.
Per run: the median CPU (and wall) seconds per image of `--reps` runs after one untimed
one, minor page faults per image, and the process's peak resident set (VmHWM).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from child import run_child  # noqa: E402  (each run in a child that ends with the bench)


def one(malloc: str, threads: int, reps: int) -> dict[str, Any]:
    """One process's runs: unprofiled eager inference with `malloc`'s allocator settings."""
    import profile_inference
    import torch

    from child import peak_rss_mb
    from nasflow.deploy.predictor import Predictor

    torch.set_num_threads(threads)
    model, x, what = profile_inference.model_and_input(48, 2, profile_inference.SIZE)
    predict = Predictor(model, "eager", "fp32")
    profile_inference.set_malloc(malloc)
    timing = profile_inference._timed(lambda: predict(x), reps)
    return {"malloc": malloc, "what": what, **timing, "peak_rss_mb": peak_rss_mb()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=2, help="runs of each setting, interleaved")
    parser.add_argument("--reps", type=int, default=2, help="timed images per run")
    parser.add_argument("--json", type=Path, help="also write the runs to this JSON file")
    parser.add_argument("--one", choices=["default", "heap"], help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(one(args.one, args.threads, args.reps)))
        return
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    runs: list[dict[str, Any]] = []
    for r in range(args.rounds):
        for malloc in ("default", "heap"):
            print(f"  round {r + 1} of {args.rounds}: {malloc} ...", file=sys.stderr, flush=True)
            got, error = run_child([sys.executable, __file__, "--one", malloc, "--threads", str(args.threads),
                                    "--reps", str(args.reps)], env)
            runs.append(got if got is not None else {"malloc": malloc, "error": error})
    done = [r for r in runs if "error" not in r]
    if done:
        print(f"\nEager inference: {done[0]['what']}, {args.threads} threads")
    print(f"{'malloc':8s} {'CPU s/image':>12s} {'s/image':>8s} {'page faults':>12s} {'peak RSS MB':>12s}")
    for r in runs:
        if "error" in r:
            print(f"{r['malloc']:8s} failed: {r['error']}")
            continue
        print(f"{r['malloc']:8s} {r['step_cpu_s']:12.2f} {r['step_s']:8.2f} {r['faults_per_image']:12,d} "
              f"{r['peak_rss_mb']:12.0f}")
    for malloc in ("default", "heap"):
        cpu = [r["step_cpu_s"] for r in done if r["malloc"] == malloc]
        if cpu:
            print(f"median {malloc}: {statistics.median(cpu):.2f} CPU s per image")
    if args.json:
        args.json.write_text(json.dumps(runs, indent=2) + "\n")


if __name__ == "__main__":
    main()

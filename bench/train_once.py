"""Train once, deploy many (issue 23's third proof; run by hand): one MobileNetV2-family
supernet trained with the sandwich rule on the built-in classification set, three budgets
derived from it with inherited weights, each compared with the same subnet retrained from
scratch for as many steps (the gap, as Once-for-All reports it):

    python bench/train_once.py --out runs/train-once                 # the defaults below
    python bench/train_once.py --steps 40 --retrain 40 --out /tmp/t   # a smoke run

1. `nasflow search spaces/mobilenetv2/space.yaml --strategy sandwich --steps S` (the classify
   task's quick preset otherwise: SGD 0.025 cosine, batch 16, the half split);
2. `nasflow derive RUN --budget params=B1 --budget params=B2 --budget params=B3`: SPOS's
   evolution picks each subnet, written as a model directory of inherited weights (BatchNorm
   statistics recomputed for it) and scored on the test split (top-1);
3. each subnet's arch.yaml retrained from scratch, `nasflow train ... --steps R` (the preset's
   train section: Adam, the whole train split), and scored the same way.

Prints the table and writes OUT/results.json. Every command runs with OMP_NUM_THREADS set to
--threads.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cli_runs import nasflow  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SPACE = ROOT / "spaces" / "mobilenetv2" / "space.yaml"


def top1(model: Path, log: Path, threads: int) -> float:
    return float(json.loads(nasflow(["eval", str(model), "--json"], log, threads))["metrics"]["top1"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=600, help="sandwich steps of the supernet")
    parser.add_argument("--retrain", type=int, default=600, help="steps of each from-scratch retraining")
    parser.add_argument("--budgets", default="params=600k,params=1M,params=1.6M")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("runs/train-once"))
    parser.add_argument("--search-args", default="", help="more flags for the supernet's search, e.g. "
                        "'--preset none --lr 3e-3 --batch 32 --task-opt half=false' (the retraining's optimizer)")
    parser.add_argument("--reuse-supernet", action="store_true",
                        help="keep OUT/supernet if it is there (only the subnets and retrainings again)")
    args = parser.parse_args()
    out, log, t = args.out, args.out / "log.txt", args.threads
    out.mkdir(parents=True, exist_ok=True)
    run = out / "supernet"
    start = time.perf_counter()
    if not (args.reuse_supernet and (run / "checkpoint.safetensors").is_file()):
        nasflow(["search", str(SPACE), "--strategy", "sandwich", "--steps", str(args.steps), "--warmup", "0",
                 "--seed", str(args.seed), "--out", str(run), *shlex.split(args.search_args)], log, t)
    supernet_s = time.perf_counter() - start
    if (run / "subnets").is_dir():
        shutil.rmtree(run / "subnets")  # picked again from this supernet
    budgets = args.budgets.split(",")
    nasflow(["derive", str(run), *[x for b in budgets for x in ("--budget", b)]], log, t)
    picked = json.loads((run / "subnets" / "subnets.json").read_text())["subnets"]
    rows: list[dict[str, Any]] = []
    for sub in picked:
        folder = Path(sub["model"]).parent
        inherited = top1(Path(sub["model"]), log, t)
        start = time.perf_counter()
        nasflow(["train", str(folder / "arch.yaml"), "--steps", str(args.retrain), "--seed", str(args.seed),
                 "--out", str(folder / "scratch")], log, t)
        retrain_s = time.perf_counter() - start
        scratch = top1(folder / "scratch" / "model", log, t)
        rows.append({"budget": sub["budget"], "params": sub["cost"], "inherited_top1": inherited,
                     "scratch_top1": scratch, "gap": inherited - scratch, "retrain_s": retrain_s,
                     "genotype": sub["genotype"]})
    print(f"Train once, deploy many: MobileNetV2 space, built-in set, supernet {args.steps} sandwich steps "
          f"({supernet_s:.0f} s{', ' + args.search_args if args.search_args else ''}), each subnet retrained "
          f"{args.retrain} steps from scratch; top-1 % on the test split")
    print(f"{'budget':>14} {'params':>10} {'inherited':>10} {'scratch':>8} {'gap':>6} {'retrain s':>9}")
    for r in rows:
        print(f"{r['budget']:>14} {r['params']:>10,.0f} {r['inherited_top1']:>10.1f} {r['scratch_top1']:>8.1f} "
              f"{r['gap']:>+6.1f} {r['retrain_s']:>9.0f}")
    print(f"load {os.getloadavg()[0]:.1f}")
    (out / "results.json").write_text(json.dumps({"steps": args.steps, "retrain": args.retrain,
                                                  "search_args": args.search_args,
                                                  "supernet_s": supernet_s, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()

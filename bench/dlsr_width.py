"""DLSR with searched widths against DLSR-S, retrained alike (run by hand; issue 23's proof):

    python bench/dlsr_width.py --seeds 0,1,2 --out runs/width-proof            # quick preset
    python bench/dlsr_width.py --seeds 0 --budget params=56k --strategy sandwich --search-steps 1000
    python bench/dlsr_width.py --search-args "--batch 2 --task-opt patch=64" \
        --train-args "--batch 2 --task-opt patch=96" --out runs/width-proof-p96   # larger patches
    python bench/dlsr_width.py --seeds 0,1,2 --derive-budget params=50.4k..56k  # a band, same supernets

Per seed s, with the task's quick preset (the README's main job) and one thread per run:

1. `nasflow search spaces/dlsr/space-width.yaml --strategy STRATEGY --budget BUDGET --seed s`:
   the widths (channels, ESA's inner width) searched with the ops and cell inputs; the
   sandwich rule trains the supernet, SPOS's evolution picks the architecture under the
   budget by Set5 PSNR with inherited weights (so it is under the budget by construction);
2. `nasflow derive`, then `nasflow train` (seed s) and `nasflow eval` (Set5 x2) of it;
3. `nasflow train spaces/dlsr/dlsr-s.yaml` (seed s) and `nasflow eval`: the paper's DLSR-S,
   narrowed by hand to 18 channels, retrained with the same preset, seed and steps.

`--derive-budget B` retrains, instead of the search's own pick, the architecture `nasflow derive
RUN --budget B` picks from the same trained supernet (e.g. a band `params=50.4k..56k`: the
evolution then admits only architectures that use most of the budget).

`--search-args` / `--train-args` add flags to every search / every training (both the searched
architecture's and DLSR-S's, so they stay retrained alike); a variant's runs get their own
folder names (a tag of the flags), DLSR-S's included.

Prints a table (params, Set5 x2 PSNR per seed, and Set14's where ../shared has it; mean and
spread; the paired difference per seed with its standard error) and writes OUT/results.json.
Runs `--parallel` seeds at a time, each command with OMP_NUM_THREADS=1. A finished search or
retraining in OUT is reused, so more seeds can be added to an earlier run's folder.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cli_runs import nasflow  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
WIDTH = ROOT / "spaces" / "dlsr" / "space-width.yaml"
DLSR_S = ROOT / "spaces" / "dlsr" / "dlsr-s.yaml"
SET5 = ROOT / "spaces" / "dlsr" / "data" / "Set5"  # the shipped copy, eval's default
SET14 = ROOT.parent / "shared" / "datasets" / "Set14"


def psnr(model: Path, log: Path) -> dict[str, float]:
    """Set5 x2 PSNR (the bar's), and Set14's when ../shared has it: a second, larger test set."""
    benches = ["--bench", str(SET5), "--bench", str(SET14)] if SET14.is_dir() else []
    metrics = json.loads(nasflow(["eval", str(model), "--json", *benches], log))["metrics"]
    return {name: float(metrics.get(f"{name}/psnr", metrics.get("psnr", float("nan"))))
            for name in (["Set5", "Set14"] if benches else ["Set5"])}


def params_of(arch: Path) -> int:
    from nasflow.space.cost import graph_cost
    from nasflow.space.graph import build_graph
    from nasflow.space.load import load_space

    return graph_cost(build_graph(load_space(arch)), (8, 8)).params


def tag_of(args: list[str]) -> str:
    """A folder-name tag for extra flags: "--batch 2 --task-opt patch=64" -> "-batch2-patch64"."""
    words = [a.lstrip("-").replace("=", "").replace("task-opt", "") for a in args]
    return "".join(f"-{w}" if not w[:1].isdigit() else w for w in words if w)


def one_seed(seed: int, out: Path, budget: str, strategy: str, search_args: list[str],
             train_args: list[str], derive_budget: str | None = None) -> dict[str, Any]:
    # The default search's folders are untagged (width-N); another strategy or flags get their own.
    tag = f"-{strategy}{tag_of(search_args)}" if search_args or strategy != "sandwich" else ""
    train_tag = tag_of(train_args)
    log = out / f"seed{seed}{tag}{train_tag}.log"
    search = out / f"width-{seed}{tag}"
    if not (search / "derived" / "genotype.json").is_file():  # a search shared by training variants
        nasflow(["search", str(WIDTH), "--strategy", strategy, "--budget", budget, "--seed", str(seed),
                 "--out", str(search), *search_args], log)
        nasflow(["derive", str(search)], log)
    picked = search / "derived"
    if derive_budget is not None:  # another pick from the same supernet: its own folders
        subnets = Path(f"{search}-derive-{derive_budget.replace('=', '')}")
        picked = subnets / derive_budget.replace("=", "-")
        if not (picked / "genotype.json").is_file():
            nasflow(["derive", str(search), "--budget", derive_budget, "--out", str(subnets)], log)
    genotype = json.loads((picked / "genotype.json").read_text())
    trained = Path(f"{picked.parent if derive_budget else search}-train{train_tag}")
    if not (trained / "model").is_dir():
        nasflow(["train", str(picked), "--seed", str(seed), "--out", str(trained), *train_args], log)
    width_psnr = psnr(trained / "model", log)
    dlsr_s = out / f"dlsr-s-{seed}-train{train_tag}"
    if not (dlsr_s / "model").is_dir():  # the same for every search of this seed: trained once
        nasflow(["train", str(DLSR_S), "--seed", str(seed), "--out", str(dlsr_s), *train_args], log)
    dlsr_s_psnr = psnr(dlsr_s / "model", log)
    return {"seed": seed, "genotype": genotype, "width_params": params_of(picked / "arch.yaml"),
            "width_psnr": width_psnr["Set5"], "width_set14": width_psnr.get("Set14"),
            "dlsr_s_params": params_of(DLSR_S), "dlsr_s_psnr": dlsr_s_psnr["Set5"],
            "dlsr_s_set14": dlsr_s_psnr.get("Set14")}


def paired(rows: list[dict[str, Any]], width: str, dlsr_s: str) -> str:
    """Mean of the per-seed differences (searched - DLSR-S) and its standard error."""
    diffs = [r[width] - r[dlsr_s] for r in rows if r.get(width) is not None]
    if len(diffs) < 2:
        return "n/a"
    se = statistics.stdev(diffs) / len(diffs) ** 0.5
    wins = sum(d >= 0 for d in diffs)
    return f"{statistics.mean(diffs):+.3f} dB (standard error {se:.3f}; searched >= DLSR-S on {wins} of {len(diffs)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--budget", default="params=56k")
    parser.add_argument("--strategy", default="sandwich")
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("runs/width-proof"))
    parser.add_argument("--search-steps", type=int, help="the search's steps (default: the preset's)")
    parser.add_argument("--search-args", default="", help="more flags for every search, e.g. '--batch 2'")
    parser.add_argument("--train-args", default="", help="more flags for every training (both models)")
    parser.add_argument("--derive-budget", help="retrain `nasflow derive RUN --budget B`'s pick instead")
    args = parser.parse_args()
    search_args = (["--steps", str(args.search_steps)] if args.search_steps else []) + args.search_args.split()
    train_args = args.train_args.split()
    args.out.mkdir(parents=True, exist_ok=True)
    seeds = [int(s) for s in args.seeds.split(",")]
    with ThreadPoolExecutor(args.parallel) as pool:
        rows = list(pool.map(lambda s: one_seed(s, args.out, args.budget, args.strategy, search_args, train_args,
                                              args.derive_budget),
                             seeds))
    w, d = [r["width_psnr"] for r in rows], [r["dlsr_s_psnr"] for r in rows]
    flags = " ".join(search_args) + (f"; train {' '.join(train_args)}" if train_args else "")
    picked = f", derived under {args.derive_budget}" if args.derive_budget else ""
    print(f"DLSR widths searched ({args.strategy}, {args.budget}{picked}{', ' + flags if flags else ''}) vs DLSR-S, "
          "quick preset, Set5 x2 PSNR (dB)")
    set14 = lambda x: f"{x:>10.2f}" if x is not None else f"{'-':>10}"  # noqa: E731
    print(f"{'seed':>4} {'width params':>12} {'width Set5':>10} {'Set14':>10} {'DLSR-S params':>13} "
          f"{'DLSR-S Set5':>11} {'Set14':>10}  genotype")
    for r in rows:
        g = r["genotype"]
        print(f"{r['seed']:>4} {r['width_params']:>12,} {r['width_psnr']:>10.2f} {set14(r['width_set14'])} "
              f"{r['dlsr_s_params']:>13,} {r['dlsr_s_psnr']:>11.2f} {set14(r['dlsr_s_set14'])}  "
              f"{g.get('choices')} {g.get('values')}")
    spread = lambda xs: f"{statistics.mean(xs):.2f} ({min(xs):.2f}..{max(xs):.2f})"  # noqa: E731
    print(f"Set5 mean (min..max): widths {spread(w)}, DLSR-S {spread(d)}; load {os.getloadavg()[0]:.1f}")
    print(f"Set5 paired difference: {paired(rows, 'width_psnr', 'dlsr_s_psnr')}")
    print(f"Set14 paired difference: {paired(rows, 'width_set14', 'dlsr_s_set14')}")
    result = {"budget": args.budget, "derive_budget": args.derive_budget, "strategy": args.strategy,
              "search_args": search_args,
              "train_args": train_args, "rows": rows}
    strategy_tag = f"-{args.strategy}" if args.strategy != "sandwich" else ""
    derive_tag = f"-derive-{args.derive_budget.replace('=', '')}" if args.derive_budget else ""
    name = f"results{strategy_tag}{tag_of(search_args)}{derive_tag}{tag_of(train_args)}.json"
    (args.out / name).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()

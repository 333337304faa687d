"""The SR task's presets: named budgets for `nasflow search` and `nasflow train`.

    nasflow search spaces/dlsr/space.yaml                   # "quick" (the default preset)
    nasflow search spaces/dlsr/space.yaml --preset paper    # the paper's settings exactly

A preset has two sections; explicit command-line flags override what they set.

"search": SearchConfig fields (nasflow/config.py), plus
    overrides      space params, as --set gives them (e.g. {"channels": 48}); only params the
                   searched space declares are applied
    task_options   SRTask options, as --task-opt gives them (merged, explicit ones win)

"train": what `nasflow train` needs to retrain a derived architecture:
    steps           optimizer steps in all
    batch_size      samples per step
    lr              Adam learning rate (betas 0.9, 0.999)
    lr_halve_every  halve the learning rate every this many steps (step schedule)
    schedule        "step" (halving, the paper's) or "cosine" (from lr to 0 over `steps`)
    validate_every  steps between validation PSNR on the task's bench set
    gamma           weight of the cost regularizer (0: retraining has none)
    task_options    SRTask options; "lr_patch" makes the HR patch depend on the scale
                    (HR patch = lr_patch * scale)
"""
from __future__ import annotations

from typing import Any

__all__ = ["PRESETS"]

PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    # A budget for a 2-core CPU on the shipped T91 images: the whole main job (install, search,
    # derive, train, eval) in under 5 minutes on a 2-core Xeon without avx512_bf16, with
    # Set5 x2 above 35.0 dB (bicubic 33.7). Where the time goes, in warm-up steps (one
    # forward/backward of the C16 supernet on 8 patches of 32 px; measured as ratios in one
    # process on a loaded 2-core Zen4): a MiLeNAS step costs 2.6 (three passes), a training step
    # of the derived model 0.34 (patch 48), a validation on Set5 2.8. So the search is
    # 160 + 90 * 2.6 = 394 and training 1200 * 0.34 + 2 * 2.8 = 416 (the earlier preset, 800 /
    # 3000 steps: 1850 + 1030). Shorter searches were measured too: 160 warm-up steps are what
    # keeps the derived model small (with 40, MiLeNAS picked conv_3x3 / conv_7x7: 128K params
    # instead of 31K); the choices settle about 50 strategy steps after the warm-up, and a
    # longer search buys little: retrained alike, the 250-step genotype reaches 35.09 dB, the
    # 320-step one (all conv_1x1) 35.14. The retraining's lever is the schedule: cosine from
    # 4e-3 reaches in 1200 steps what a step schedule from 1e-3 reached in 3000 (from 2e-3
    # 34.59 dB; in 1000 steps from 4e-3 35.01, from 8e-3 34.93, and warm-started from the
    # supernet's weights 34.72: worse than from scratch). Threads: one per idle
    # core (nasflow/runs/threads.py). Enough to derive a valid architecture and train it well
    # past bicubic, not to reproduce the paper's. Learning rates are above the paper's so that
    # weights and alpha / beta move within a few hundred steps (at 3e-4, Adam moves a logit
    # by at most 3e-4 per step: 0.1 in 300 steps).
    "quick": {
        "search": {
            "steps": 250,
            "warmup": 160,
            "batch_size": 8,
            "weights_optim": {"lr": 1e-3},
            "arch_optim": {"lr": 3e-3, "betas": [0.5, 0.999]},
            "snapshot_steps": [200],
            "log_every": 10,
            "checkpoint_every": 100,
            "overrides": {"channels": 16},
            "task_options": {"patch": 32},
        },
        "train": {
            "steps": 1200,
            "batch_size": 8,
            "lr": 4e-3,
            "schedule": "cosine",
            "validate_every": 600,
            "gamma": 0.0,
            "task_options": {"patch": 48},
        },
    },
    # The paper (section IV-B; ../shared/docs/dlsr-facts.md). The data stay the task's
    # default unless --task-opt data=... points at DF2K (3450 images, 450 held out for valid).
    "paper": {
        "search": {
            "strategy": "milenas",
            "steps": 200_000,
            "warmup": 20_000,
            "batch_size": 64,
            "strategy_options": {"lambda": 1.0},
            "gamma": 0.2,
            "regularizer": "params",
            "weights_optim": {"lr": 3e-4, "betas": [0.9, 0.999], "weight_decay": 1e-8},
            "arch_optim": {"lr": 3e-4, "betas": [0.5, 0.999], "weight_decay": 1e-8},
            "snapshot_steps": [50_000, 100_000, 150_000],
            "overrides": {"channels": 48},
            "task_options": {"patch": 64, "mu": 0.2},
        },
        "train": {
            "steps": 2_000_000,
            "batch_size": 32,
            "lr": 3e-4,
            "lr_halve_every": 400_000,
            "validate_every": 10_000,
            "gamma": 0.0,
            "task_options": {"lr_patch": 64, "mu": 0.2},  # HR 128 / 192 / 256 at x2 / x3 / x4
        },
    },
}

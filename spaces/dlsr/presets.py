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
    validate_every  steps between validation PSNR on the task's bench set
    gamma           weight of the cost regularizer (0: retraining has none)
    task_options    SRTask options; "lr_patch" makes the HR patch depend on the scale
                    (HR patch = lr_patch * scale)
"""
from __future__ import annotations

from typing import Any

__all__ = ["PRESETS"]

PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    # A budget for a 2-core CPU on the shipped T91 images, data preparation included. On an
    # idle 2-core Zen4 (2 threads): search ~3.5 min (3.9 steps/s), train ~2 min (28 steps/s;
    # Set5 x2 34.9 dB, above bicubic's 33.7), eval seconds. On a machine shared with other
    # jobs, use one thread (OMP_NUM_THREADS=1): two threads fighting for two busy cores ran
    # 10x slower. Enough to derive a valid architecture and train it past bicubic, not to
    # reproduce the paper's. Learning rates are above the paper's so that weights and
    # alpha / beta move within a few hundred steps (at 3e-4, Adam moves a logit by at most
    # 3e-4 per step: 0.1 in 300 steps).
    "quick": {
        "search": {
            "steps": 800,
            "warmup": 160,
            "batch_size": 8,
            "weights_optim": {"lr": 1e-3},
            "arch_optim": {"lr": 3e-3, "betas": [0.5, 0.999]},
            "snapshot_steps": [400, 600],
            "log_every": 10,
            "checkpoint_every": 100,
            "overrides": {"channels": 16},
            "task_options": {"patch": 32},
        },
        "train": {
            "steps": 3000,
            "batch_size": 8,
            "lr": 1e-3,
            "lr_halve_every": 1000,
            "validate_every": 1000,
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

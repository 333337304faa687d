"""The fields of a search's metrics.jsonl record, where readers look them up.

A search appends one record per logged step (nasflow.search.loop):

    {"step": 50, "phase": "search", "steps_per_s": 3.1, "losses": {"train/loss": ...},
     "weights": {"m": [0.2, 0.8], ...}, "weights_name": "sigmoid", "entropy": {"m": 0.5, ...},
     "genotype": {"choices": {...}, "edges": {...}}}

`weights` holds each decision's weights as the strategy's relaxation computes them;
`weights_name` (only when it is not softmax) names that function. Runs written before the
field had its name call it `softmax` whatever the function: readers take either, so those
runs still plot, report and resume (a resumed old run mixes both names, record by record).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

WEIGHTS = "weights"
OLD_WEIGHTS = "softmax"  # the same field in runs written before it was renamed


def decision_weights(record: Mapping[str, Any]) -> dict[str, list[float]] | None:
    """A record's {decision label: weights}, under its name now or its old one; None for a
    record without them (a training run's, a validation record)."""
    for name in (WEIGHTS, OLD_WEIGHTS):
        value = record.get(name)
        if isinstance(value, dict):
            return value
    return None

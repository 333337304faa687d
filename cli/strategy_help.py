"""The strategy names and options `nasflow search --help` shows, without importing torch.

The built-in strategies' Options models live beside their torch code (nasflow.strategies), so
reading them for a help text cost a torch import (10.8 s and 259 MB on a loaded 2-core
machine). BUILTIN is their help as nasflow.strategies.catalog.options_help() gives it, kept
equal to it by tests/test_strategy_help.py (which prints the new table when it changes).
Plug-in strategies add their names: entry points of the `nasflow.strategies` group (read from
package metadata, not imported), and any strategy registered in this process once
nasflow.strategies has been imported (their options then too).
"""
from __future__ import annotations

import sys
from importlib.metadata import entry_points

# name -> "option=default, ..." ("no options" for none); generated from the Options models.
BUILTIN: dict[str, str] = {
    "darts": "arch_first=False",
    "darts2": "xi=None, eps=0.01",
    "drnas": "reg=l2, reg_scale=0.001, prior=1.0",
    "gdas": "tau_max=10.0, tau_min=0.1, lr_min=0.04, arch_value=soft",
    "milenas": "lambda=1.0, reuse_forward=False",
    "pcdarts": "k=4",
    "sandwich": "population=8, generations=4, parents=4, mutation_prob=0.1, bn_batches=4, executor=local, "
                "ray_address=None, random=2, distill=0.0, focus=True",
    "spos": "population=8, generations=4, parents=4, mutation_prob=0.1, bn_batches=4, executor=local, "
            "ray_address=None",
}


def _loaded() -> dict[str, str]:
    """Strategies registered in this process (only when nasflow.strategies is already
    imported: importing it here would import torch), with their options."""
    if "nasflow.strategies.catalog" not in sys.modules:
        return {}
    from nasflow.strategies.catalog import strategy_catalog

    return {info.name: ", ".join(f"{n}={d}" for n, _, d, _ in info.options) or "no options"
            for info in strategy_catalog()}


def _plugin_names() -> list[str]:
    try:
        return [ep.name for ep in entry_points(group="nasflow.strategies")]
    except Exception:  # broken package metadata must not break --help
        return []


def strategy_names() -> list[str]:
    """Built-in, loaded and entry-point strategy names, sorted."""
    return sorted({*BUILTIN, *_loaded(), *_plugin_names()})


def options_help() -> str:
    """'darts: arch_first=False; ...; milenas: lambda=1.0, reuse_forward=False' for
    --strategy-opt's help (a plug-in known only by its entry point: its name alone)."""
    known = {**BUILTIN, **_loaded()}
    return "; ".join(f"{name}: {known[name]}" for name in sorted(known)) + "".join(
        f"; {name}" for name in sorted(set(_plugin_names()) - set(known)))

"""Search strategies: small objects behind one interface (`Strategy.step`), registered by name.

Built in: `darts` (first-order) and `milenas` (mixed level). Register your own with
`@register_strategy("name")` on a Strategy subclass; `--strategy name` then finds it (from
another package: a `nasflow.strategies` entry point, or `--strategy module:Class`). The
contract (relaxation, mixed op, derivation rule, optimizers, schedule, state, options) is
in base.py and docs/writing-a-strategy.md.
"""
from __future__ import annotations

from . import darts, milenas  # noqa: F401  (they register themselves)
from .base import STRATEGIES, Batch, LossFn, Strategy, get_strategy, register_strategy
from .darts import Darts
from .milenas import MiLeNAS, MiLeNASOptions
from .catalog import StrategyInfo, options_help, strategy_catalog
from .options import StrategyOptions, describe_options

__all__ = ["STRATEGIES", "Batch", "Darts", "LossFn", "MiLeNAS", "MiLeNASOptions", "Strategy",
           "StrategyInfo", "StrategyOptions", "describe_options", "get_strategy", "options_help",
           "register_strategy", "strategy_catalog"]

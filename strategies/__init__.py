"""Search strategies: small objects behind one interface (`Strategy.step`), registered by name.

Built in: `darts` (first-order), `milenas` (mixed level), `gdas` (hard Gumbel),
`pcdarts` (partial channels), `darts2` (second order),
`drnas` (Dirichlet), `spos` (uniform single path, then an evolution), `sandwich` (BigNAS'
largest + smallest + random architectures of value decisions per step, then SPOS's evolution);
docs/strategies.md lists each with its paper and options. Register your own with
`@register_strategy("name")` on a Strategy subclass; `--strategy name` then finds it (from
another package: a `nasflow.strategies` entry point, or `--strategy module:Class`). The
contract (relaxation, mixed op, derivation rule, optimizers, schedule, state, options) is
in base.py and docs/writing-a-strategy.md.
"""
from __future__ import annotations

from . import darts, darts2, drnas, gdas, milenas, pcdarts, sandwich, spos  # noqa: F401  (they register themselves)
from .base import STRATEGIES, Batch, LossFn, Strategy, get_strategy, register_strategy
from .darts import Darts
from .darts2 import DARTS2, DARTS2Options
from .drnas import DrNAS, DrNASOptions
from .gdas import GDAS, GDASOptions
from .pcdarts import PCDARTS, PCDARTSOptions
from .milenas import MiLeNAS, MiLeNASOptions
from .spos import SPOS, SPOSOptions
from .sandwich import Sandwich, SandwichOptions
from .catalog import StrategyInfo, options_help, strategy_catalog
from .options import StrategyOptions, describe_options

__all__ = ["DARTS2", "DARTS2Options", "DrNAS", "DrNASOptions", "GDAS", "GDASOptions", "STRATEGIES", "Batch", "Darts", "LossFn", "MiLeNAS", "MiLeNASOptions", "PCDARTS", "PCDARTSOptions", "SPOS", "Sandwich", "SandwichOptions", "SPOSOptions", "Strategy",
           "StrategyInfo", "StrategyOptions", "describe_options", "get_strategy", "options_help",
           "register_strategy", "strategy_catalog"]

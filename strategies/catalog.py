"""What `nasflow strategies` and `nasflow search --help` show: each registered strategy's
name, the first line of its docstring, and its options with their defaults."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .base import STRATEGIES
from .options import describe_options, first_line


@dataclass
class StrategyInfo:
    name: str
    summary: str  # the class docstring's first line
    options: list[tuple[str, str, Any, str]]  # (name, type, default, description)


def strategy_catalog() -> list[StrategyInfo]:
    """Every registered strategy, by name."""
    out = []
    for name in sorted(STRATEGIES.names()):
        cls = STRATEGIES.get(name)
        out.append(StrategyInfo(name, first_line(cls.__doc__), describe_options(cls.Options)))
    return out


def options_help() -> str:
    """One line for --strategy-opt's help: 'milenas: lambda=1.0, reuse_forward=False; darts: none'."""
    parts = []
    for info in strategy_catalog():
        opts = ", ".join(f"{n}={d}" for n, _, d, _ in info.options) or "no options"
        parts.append(f"{info.name}: {opts}")
    return "; ".join(parts)

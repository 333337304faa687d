"""Ops: the registry every op a space can name (pure-Python spec with its cost, and its module
factory, loaded lazily), and the built-in ops.

Importing any module of this package registers the built-in ops, so OPS is never seen empty.
"""
from nasflow.ops import builtin as _builtin  # noqa: F401  (registers the built-in ops)
from nasflow.ops.registry import OPS, register_op

__all__ = ["OPS", "register_op"]

"""Integer expressions in space files (`C // 2`, `3 * scale * scale`), evaluated safely:
parsed with `ast`, only integer arithmetic on literals and known names, never `eval`."""
from __future__ import annotations

import ast
import operator
from collections.abc import Mapping

_BINOPS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}


class ExprError(ValueError):
    pass


def evaluate(expr: int | str, env: Mapping[str, int]) -> int:
    """Value of an integer expression over the names in `env`."""
    if isinstance(expr, bool):
        raise ExprError(f"expected an integer expression, got {expr!r}")
    if isinstance(expr, int):
        return expr
    try:
        tree = ast.parse(str(expr).strip(), mode="eval")
    except SyntaxError:
        raise ExprError(f"bad expression {expr!r}: not valid integer arithmetic") from None
    return _eval(tree.body, env, str(expr))


def _eval(node: ast.AST, env: Mapping[str, int], text: str) -> int:
    if isinstance(node, ast.Constant) and isinstance(node.value, int) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.Name):
        if node.id not in env:
            known = ", ".join(sorted(env)) or "none"
            raise ExprError(f"bad expression {text!r}: unknown name '{node.id}' (known: {known})")
        return env[node.id]
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        left, right = _eval(node.left, env, text), _eval(node.right, env, text)
        if isinstance(node.op, (ast.FloorDiv, ast.Mod)) and right == 0:
            raise ExprError(f"bad expression {text!r}: division by zero")
        return _BINOPS[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _eval(node.operand, env, text)
        return -value if isinstance(node.op, ast.USub) else value
    raise ExprError(
        f"bad expression {text!r}: only integers, names and + - * // % ** are allowed"
    )

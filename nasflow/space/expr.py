"""Expressions in space files, evaluated safely: parsed with `ast`, only what is listed
here is allowed, never `eval`.

- Integer expressions (`C // 2`, `3 * scale * scale`): integers, names from the scope,
  `+ - * // % **`, parentheses; and, for index-aware stacks, comparisons (`i >= layers // 3`,
  `i in (r1, r2)`, chained `0 < i < n`), `and` / `or` / `not` and `a if cond else b`. A
  comparison or a logical operator is 1 when true, 0 when false, so `C * 2 ** (i >= r)` works.
- Reference expressions (a node's input in a stack, a stack's block): a name (`stem`), an
  instance of a stack (`cell[i - 1]`, `cell[2 * layers // 3]`), or a choice between them
  (`cell[i - 2] if i >= 2 else stem`). The name itself is not looked up in the scope.
"""
from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping
from typing import Any

from nasflow.space.values import Sym

_BINOPS: dict[type, Callable[[int, int], int]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_COMPARE: dict[type, Callable[[int, int], bool]] = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt,
    ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
}
_ALLOWED = "integers, names, + - * // % **, comparisons, and/or/not, x if c else y"
_MAX_POW = 64  # 2 ** huge would hang the validator


class ExprError(ValueError):
    pass


def _fixed(value: int, text: str, what: str = "a condition") -> int:
    """`value` when no value decision moves it; conditions and indices must be fixed."""
    if isinstance(value, Sym):
        raise ExprError(f"bad expression {text!r}: {what} reads the value decision(s) "
                        f"{', '.join(value.deps)}; only numbers (channels, args, a stack's count) may be searched")
    return value


def evaluate(expr: int | str, env: Mapping[str, int]) -> int:
    """Value of an integer expression over the names in `env`."""
    if isinstance(expr, bool):
        raise ExprError(f"expected an integer expression, got {expr!r}")
    if isinstance(expr, int):
        return expr
    return _eval(_parse(expr), env, str(expr))


def evaluate_ref(expr: str, env: Mapping[str, int]) -> tuple[str, int | None]:
    """The (name, instance index or None) a reference expression points at in `env`."""
    node = _parse(expr)
    while isinstance(node, ast.IfExp):  # the branch the condition picks
        node = node.body if _fixed(_eval(node.test, env, expr), expr) else node.orelse
    if isinstance(node, ast.Name):
        return node.id, None
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name):
        return node.value.id, _fixed(_eval(node.slice, env, expr), expr, "an instance index")
    raise ExprError(f"bad reference {expr!r}: write a name (stem), an instance (cell[i - 1]) "
                    "or a choice between them (cell[i - 1] if i > 0 else stem)")


def ref_names(expr: str) -> list[str]:
    """Every name a reference expression may point at, whatever the scope (for checks that
    need no values: the blocks a stack may use, the nodes it may read)."""
    try:
        node = _parse(expr)
    except ExprError:
        return [expr]
    out: list[str] = []
    stack: list[ast.AST] = [node]
    while stack:
        n = stack.pop(0)
        if isinstance(n, ast.IfExp):
            stack += [n.body, n.orelse]
        elif isinstance(n, ast.Name):
            out.append(n.id)
        elif isinstance(n, ast.Subscript) and isinstance(n.value, ast.Name):
            out.append(n.value.id)
        else:
            return [expr]
    return list(dict.fromkeys(out))


def is_plain_name(expr: str) -> bool:
    return expr.isidentifier()


def substitute(expr: int | str, values: Mapping[str, int]) -> int | str:
    """`expr` with the names in `values` replaced by their values (other names stay):
    a stack instance's arguments written out for one index."""
    if isinstance(expr, int):
        return expr
    tree = _parse(expr)

    class _Sub(ast.NodeTransformer):
        def visit_Name(self, node: ast.Name) -> Any:
            return ast.copy_location(ast.Constant(values[node.id]), node) if node.id in values else node

    return ast.unparse(_Sub().visit(tree))


def _parse(expr: int | str) -> ast.AST:
    try:
        return ast.parse(str(expr).strip(), mode="eval").body
    except SyntaxError:
        raise ExprError(f"bad expression {expr!r}: not valid integer arithmetic ({_ALLOWED})") from None


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
        rights = right.values if isinstance(right, Sym) else [right]  # a Sym: every value it takes
        if isinstance(node.op, (ast.FloorDiv, ast.Mod)) and 0 in rights:
            raise ExprError(f"bad expression {text!r}: division by zero")
        if isinstance(node.op, ast.Pow) and not all(0 <= r <= _MAX_POW for r in rights):
            raise ExprError(f"bad expression {text!r}: exponent {right} outside 0..{_MAX_POW}")
        return _BINOPS[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _eval(node.operand, env, text)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        return int(not _fixed(_eval(node.operand, env, text), text))
    if isinstance(node, ast.BoolOp):
        values = (_fixed(_eval(v, env, text), text) for v in node.values)  # short-circuits like Python
        return int(all(values) if isinstance(node.op, ast.And) else any(values))
    if isinstance(node, ast.IfExp):
        return _eval(node.body if _fixed(_eval(node.test, env, text), text) else node.orelse, env, text)
    if isinstance(node, ast.Compare):
        left = _fixed(_eval(node.left, env, text), text)
        for op, comp in zip(node.ops, node.comparators):
            if isinstance(op, (ast.In, ast.NotIn)):
                if not isinstance(comp, (ast.Tuple, ast.List)):
                    raise ExprError(f"bad expression {text!r}: 'in' needs a tuple of values, (a, b)")
                found = left in [_fixed(_eval(e, env, text), text) for e in comp.elts]
                ok = found if isinstance(op, ast.In) else not found
                right = left
            elif type(op) in _COMPARE:
                right = _fixed(_eval(comp, env, text), text)
                ok = _COMPARE[type(op)](left, right)
            else:
                break
            if not ok:
                return 0
            left = right
        else:
            return 1
    raise ExprError(f"bad expression {text!r}: only {_ALLOWED} are allowed")

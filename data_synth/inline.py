"""Straight-line arithmetic programs folded into one `print(<expression>)`.

Small-model prompt profiles constrain a python tool call to a single printed arithmetic
expression (`agentrt.workflows.slow.toolcall.call_schema`), while generators write readable programs
with named quantities (`notebooks = 7 * 5`, `s = [4, 10, 14]` ... `print(s[-1] + s[-2])`). A
gold trace for such a profile needs the same computation in the constrained form: names are
replaced by their defining expressions and constant list items by their values, by rewriting
the parsed syntax tree. Nothing is evaluated here; a program using anything else (imports,
loops, calls other than the final print, booleans) is left alone (None).
"""

from __future__ import annotations

import ast
import copy
import re

__all__ = ["inline_program", "one_line_steps"]

_OPS = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow)


def _number(node: ast.AST) -> bool:
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        return _number(node.operand)
    return isinstance(node, ast.Constant) and type(node.value) in (int, float)


def _fold(node: ast.AST, names: dict[str, ast.expr], lists: dict[str, list[ast.expr]]
          ) -> ast.expr | None:
    if _number(node):
        return copy.deepcopy(node)  # type: ignore[return-value]
    if isinstance(node, ast.Name):
        return copy.deepcopy(names[node.id]) if node.id in names else None
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        operand = _fold(node.operand, names, lists)
        return None if operand is None else ast.UnaryOp(op=node.op, operand=operand)
    if isinstance(node, ast.BinOp) and isinstance(node.op, _OPS):
        left, right = _fold(node.left, names, lists), _fold(node.right, names, lists)
        return None if left is None or right is None else ast.BinOp(left, node.op, right)
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) \
            and node.value.id in lists:
        items, i = lists[node.value.id], _index(node.slice)
        return copy.deepcopy(items[i]) if i is not None and -len(items) <= i < len(items) else None
    return None


def _index(node: ast.AST) -> int | None:
    """A constant integer index (`2`, `-1`), else None."""
    sign = 1
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        sign, node = -1, node.operand
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return sign * node.value
    return None


def _assignments_then_print(program: str) -> tuple[list[tuple[str, ast.expr]], ast.expr] | None:
    """A program's `name = value` statements and the one argument of its final `print(...)`;
    None when it does not parse or has any other shape."""
    try:
        tree = ast.parse(program)
    except SyntaxError:
        return None
    if not tree.body:
        return None
    *body, last = tree.body
    steps = []
    for stmt in body:
        if not (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1
                and isinstance(stmt.targets[0], ast.Name)):
            return None
        steps.append((stmt.targets[0].id, stmt.value))
    call = last.value if isinstance(last, ast.Expr) else None
    if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name)
            and call.func.id == "print" and len(call.args) == 1 and not call.keywords):
        return None
    return steps, call.args[0]


def inline_program(program: str) -> str | None:
    """The program as one `print(expression)`, or None when it is not straight-line arithmetic.

    Example:
        >>> inline_program("a = 7 * 5\\nb = 4 * 8\\nprint(a + b)")
        'print(7 * 5 + 4 * 8)'
    """
    shape = _assignments_then_print(program)
    if shape is None:
        return None
    names: dict[str, ast.expr] = {}
    lists: dict[str, list[ast.expr]] = {}
    for target, value in shape[0]:
        if isinstance(value, ast.List) and all(_number(e) for e in value.elts):
            lists[target] = list(value.elts)
            continue
        folded = _fold(value, names, lists)
        if folded is None:
            return None
        names[target] = folded
    expr = _fold(shape[1], names, lists)
    return None if expr is None else f"print({ast.unparse(expr)})"


def one_line_steps(program: str) -> str | None:
    """A straight-line arithmetic program as one line of named steps, `a = ...; print(a)`.

    The form the compact python call takes (`agentrt.workflows.slow.toolcall.COMPACT_CODE_PATTERN`):
    every statement but the last assigns arithmetic of numbers and earlier names to a lowercase
    name, the last prints one such expression; a leading parenthesis inside `print(` gets a
    space (see `agentrt.data_synth.teacher`). None when the program has any other statement.

    Example:
        >>> one_line_steps("now_sum = 61 - 2 * 11\\nprint((now_sum - 3) // 2)")
        'now_sum = 61 - 2 * 11; print( (now_sum - 3) // 2)'
    """
    shape = _assignments_then_print(program)
    if shape is None:
        return None
    known: set[str] = set()

    def arithmetic(node: ast.AST) -> bool:
        if _number(node):
            return True
        if isinstance(node, ast.Name):
            return node.id in known
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            return arithmetic(node.operand)
        return isinstance(node, ast.BinOp) and isinstance(node.op, _OPS) \
            and arithmetic(node.left) and arithmetic(node.right)

    parts = []
    for target, value in shape[0]:
        if not (re.fullmatch(r"[a-z][a-z0-9_]*", target) and arithmetic(value)):
            return None
        known.add(target)
        parts.append(f"{target} = {ast.unparse(value)}")
    if not arithmetic(shape[1]):
        return None
    shown = ast.unparse(shape[1])
    parts.append(f"print( {shown})" if shown.startswith("(") else f"print({shown})")
    return "; ".join(parts)

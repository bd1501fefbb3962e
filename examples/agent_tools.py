"""The client-side tools of the example agents: plain Python, nothing Ostinato-specific.

- `calculate(expression)`: arithmetic, evaluated by walking the expression's `ast` (numbers,
  + - * / // % **, unary signs, parentheses); anything else is refused, never `eval`ed.
- `search_docs(query)`: the best-matching documents of a small local corpus
  (examples/data/docs/*.md), ranked by how often the query's words occur in them.

`TOOLS` maps each tool's name to its declaration in OpenAI's function-tool format. The parameter schemas
carry `examples`: a real model reads them as hints; the simulated model of `ostinato up`
fills a tool call's arguments from them (workers/sim/json_instance.py), so its calls are
well-formed ones these tools can answer.
"""

from __future__ import annotations

import ast
import json
import math
import operator
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

DOCS_DIR = Path(__file__).resolve().parent / "data" / "docs"
MAX_EXPRESSION_CHARS = 200
MAX_RESULT_DIGITS = 1000  # a power that would be larger is refused before it is computed

CALCULATOR_TOOL: dict[str, Any] = {"type": "function", "function": {
    "name": "calculator",
    "description": "Evaluate an arithmetic expression exactly: numbers, + - * / // % ** and parentheses.",
    "parameters": {
        "type": "object",
        "properties": {"expression": {"type": "string", "description": "The expression",
                                      "examples": ["(17 + 25) * 3"]}},
        "required": ["expression"],
        "additionalProperties": False,
    },
}}
SEARCH_TOOL: dict[str, Any] = {"type": "function", "function": {
    "name": "search_docs",
    "description": "Search the local documents about Lyon; returns the best matches with a snippet.",
    "parameters": {
        "type": "object",
        "properties": {"query": {"type": "string", "description": "Words to look for",
                                 "examples": ["silk weavers Croix-Rousse"]}},
        "required": ["query"],
        "additionalProperties": False,
    },
}}
TOOLS = {"calculator": CALCULATOR_TOOL, "search_docs": SEARCH_TOOL}

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {ast.UAdd: operator.pos, ast.USub: operator.neg}


class CalculatorError(ValueError):
    pass


def _evaluate(node: ast.AST) -> int | float:
    if isinstance(node, ast.Expression):
        return _evaluate(node.body)
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return node.value  # type: ignore[no-any-return]
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_evaluate(node.operand))  # type: ignore[no-any-return]
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _evaluate(node.left), _evaluate(node.right)
        # an integer n > 0 has floor(log10(n)) + 1 digits: past MAX_RESULT_DIGITS once the
        # power's log10 reaches it (10 ** 1000 has 1001; docs review 2026-12-06)
        if isinstance(node.op, ast.Pow) and abs(left) > 1 and \
                abs(right) * math.log10(abs(left)) >= MAX_RESULT_DIGITS:
            raise CalculatorError(f"the power has more than {MAX_RESULT_DIGITS} digits")
        try:
            value = _BINARY[type(node.op)](left, right)
        except ZeroDivisionError:
            raise CalculatorError("division by zero") from None
        if isinstance(value, complex):
            raise CalculatorError("the result is not a real number")
        return value  # type: ignore[no-any-return]
    raise CalculatorError(f"not arithmetic: {ast.dump(node)[:60]}")


def calculate(expression: str) -> str:
    """The value of `expression` as text, or "error: ..." (an answer the model can read)."""
    if len(expression) > MAX_EXPRESSION_CHARS:
        return f"error: the expression is longer than {MAX_EXPRESSION_CHARS} characters"
    try:
        value = _evaluate(ast.parse(expression.strip(), mode="eval"))
    except SyntaxError:
        return f"error: {expression!r} is not an arithmetic expression"
    except (CalculatorError, OverflowError) as exc:
        return f"error: {exc}"
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    return str(value)


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def search_docs(query: str, k: int = 2, docs_dir: Path = DOCS_DIR) -> str:
    """The `k` documents where the query's words occur most, each with its best line."""
    terms = {w for w in _words(query) if len(w) > 2}
    scored = []
    for path in sorted(docs_dir.glob("*.md")):
        text = path.read_text()
        words = _words(text)
        score = sum(words.count(t) for t in terms)
        if score:
            body = " ".join(ln for ln in text.splitlines() if not ln.startswith("#"))
            sentences = [s.strip() for s in re.split(r"(?<=[.;])\s+", body) if s.strip()]
            best = max(sentences, key=lambda s: sum(w in terms for w in _words(s)))
            scored.append((score, path.name, best))
    if not scored:
        return f"no document mentions {query!r}"
    scored.sort(key=lambda s: (-s[0], s[1]))
    return "\n".join(f"{name}: {line}" for _, name, line in scored[:k])


def run_tool(name: str, arguments: str | dict[str, Any]) -> str:
    """Runs the tool a model called; bad calls come back as "error: ..." text, as agents do."""
    try:
        args = json.loads(arguments) if isinstance(arguments, str) else dict(arguments)
    except json.JSONDecodeError:
        return f"error: the arguments are not JSON: {arguments!r}"
    if name == "calculator" and isinstance(args.get("expression"), str):
        return calculate(args["expression"])
    if name == "search_docs" and isinstance(args.get("query"), str):
        return search_docs(args["query"])
    return f"error: no tool {name!r} taking {sorted(args)}"

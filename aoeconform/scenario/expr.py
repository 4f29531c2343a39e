"""A small, safe evaluator for the integer expressions suites may write.

Suites say things like ``"$capacity - 1"`` or ``"$lba_base + 2 * $max_sectors"``.
Python's ``eval`` would run anything, so expressions are tokenised and parsed
here by recursive descent. The language:

* integers (decimal, ``0x`` hex, ``0b`` binary, ``_`` separators), ``$name`` variables
* ``+ - * // %`` and unary ``-``/``~``, bit operators ``& | ^ << >>``, parentheses
* ``min(a, b, ...)``, ``max(a, b, ...)``, ``len($bytes_var)``

Precedence follows Python's. Division by zero and unknown names raise
``ExprError`` with a message that names the problem.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Mapping

_TOKEN = re.compile(
    r"\s*(?:"
    r"(?P<num>0[xX][0-9a-fA-F_]+|0[bB][01_]+|[0-9][0-9_]*)"
    r"|(?P<var>\$[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<op>//|<<|>>|[-+*%&|^~(),])"
    r")"
)

_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "min": min,
    "max": max,
    "len": len,
}

# binary operators by precedence level, loosest first (Python's order)
_LEVELS = [
    {"|": lambda a, b: a | b},
    {"^": lambda a, b: a ^ b},
    {"&": lambda a, b: a & b},
    {"<<": lambda a, b: a << b, ">>": lambda a, b: a >> b},
    {"+": lambda a, b: a + b, "-": lambda a, b: a - b},
    {"*": lambda a, b: a * b, "//": lambda a, b: a // b, "%": lambda a, b: a % b},
]

#: no shift may build a number beyond this many bits (a suite typo must not eat memory)
_MAX_SHIFT = 4096


class ExprError(ValueError):
    """The expression is malformed or cannot be evaluated."""


def tokenize(text: str) -> list[tuple[str, str]]:
    tokens = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise ExprError(f"unexpected {text[pos:].strip()[:10]!r} in expression {text!r}")
        kind = m.lastgroup
        assert kind is not None  # every alternative of _TOKEN is a named group
        tokens.append((kind, m.group(kind)))
        pos = m.end()
    return tokens


class _Parser:
    def __init__(self, text: str, variables: Mapping[str, Any], syntax_only: bool = False):
        self.syntax_only = syntax_only
        self.text = text
        self.tokens = tokenize(text)
        self.pos = 0
        self.variables = variables

    def peek(self):
        return self.tokens[self.pos] if self.pos < len(self.tokens) else (None, None)

    def take(self, value=None):
        kind, tok = self.peek()
        if kind is None:
            raise ExprError(f"expression {self.text!r} ends too early")
        if value is not None and tok != value:
            raise ExprError(f"expected {value!r} but found {tok!r} in expression {self.text!r}")
        self.pos += 1
        return kind, tok

    def parse(self):
        if not self.tokens:
            raise ExprError("empty expression")
        value = self.binary(0)
        if self.pos != len(self.tokens):
            raise ExprError(f"unexpected {self.tokens[self.pos][1]!r} in expression {self.text!r}")
        return value

    def binary(self, level: int):
        if level == len(_LEVELS):
            return self.unary()
        left = self.binary(level + 1)
        ops = _LEVELS[level]
        while self.peek()[1] in ops:
            _, op = self.take()
            right = self.binary(level + 1)
            left = self.apply(op, ops[op], left, right)
        return left

    def apply(self, op, fn, left, right):
        if self.syntax_only:
            return 1
        for side in (left, right):
            if not isinstance(side, int):
                raise ExprError(f"{op!r} needs numbers, got {type(side).__name__} in expression {self.text!r}")
        if op in ("//", "%") and right == 0:
            raise ExprError(f"division by zero in expression {self.text!r}")
        if op in ("<<", ">>") and not 0 <= right <= _MAX_SHIFT:
            raise ExprError(f"shift by {right} is out of range in expression {self.text!r}")
        return fn(left, right)

    def unary(self):
        kind, tok = self.peek()
        if tok in ("-", "+", "~"):
            self.take()
            value = self.unary()
            if self.syntax_only:
                return 1
            if not isinstance(value, int):
                raise ExprError(f"{tok!r} needs a number in expression {self.text!r}")
            return {"-": -value, "+": value, "~": ~value}[tok]
        return self.atom()

    def atom(self):
        kind, tok = self.take()
        if kind == "num":
            return int(tok, 0)
        if kind == "var":
            name = tok[1:]
            if self.syntax_only:
                return 1
            if name not in self.variables:
                known = ", ".join("$" + n for n in sorted(self.variables))
                raise ExprError(f"unknown variable ${name} (known: {known})")
            return self.variables[name]
        if kind == "name":
            if tok not in _FUNCTIONS:
                raise ExprError(f"unknown function {tok!r} in expression {self.text!r} (known: {', '.join(_FUNCTIONS)})")
            self.take("(")
            args = [self.binary(0)]
            while self.peek()[1] == ",":
                self.take()
                args.append(self.binary(0))
            self.take(")")
            if self.syntax_only:
                return 1
            try:
                return _FUNCTIONS[tok](*args) if len(args) > 1 or tok == "len" else args[0]
            except TypeError as exc:
                raise ExprError(f"{tok}() {exc} in expression {self.text!r}") from None
        if tok == "(":
            value = self.binary(0)
            self.take(")")
            return value
        raise ExprError(f"unexpected {tok!r} in expression {self.text!r}")


def evaluate(text: str, variables: Mapping[str, Any]) -> Any:
    """The value of ``text``; variables may hold ints or bytes (bytes only for len())."""
    return _Parser(text, variables).parse()


def check_syntax(text: str) -> None:
    """Parse without knowing the variables' values (ExprError if malformed)."""
    _Parser(text, {}, syntax_only=True).parse()


def variables_in(text: str) -> list[str]:
    return [tok[1:] for kind, tok in tokenize(text) if kind == "var"]

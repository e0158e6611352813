"""A small subset of CEL, enough for the validation rules CRDs commonly use.

Supported: ``self`` and ``oldSelf``, field selection (``self.spec.code``), ``has(x.f)``,
``size(x)``, literals (true, false, null, integers, doubles, strings), ``!``, ``-``, ``==``,
``!=``, ``<``, ``<=``, ``>``, ``>=``, ``&&``, ``||`` with CEL's error-absorbing short circuit,
and parentheses. Anything else is refused when the rule is compiled, so that a CRD never
carries a rule this server would silently ignore.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<number>\d+\.\d+|\d+)
    | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
    | (?P<op>&&|\|\||==|!=|<=|>=|[!<>().,-])
    | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
    )""",
    re.VERBOSE,
)
_RESERVED = {"true": True, "false": False, "null": None}


class CelSyntaxError(ValueError):
    """The rule uses syntax or functions outside the supported subset."""


class CelEvaluationError(ValueError):
    """The rule could not be evaluated for this object (e.g. a missing field)."""


Node = Callable[[dict[str, Any]], Any]


@dataclass(frozen=True)
class CompiledRule:
    """A rule ready to evaluate against ``self`` (and ``oldSelf`` for transition rules)."""

    source: str
    uses_old_self: bool
    _node: Node

    def evaluate(self, self_value: Any, old_value: Any = None) -> bool:
        """True when the rule holds; raises CelEvaluationError when it cannot be evaluated."""
        result = self._node({"self": self_value, "oldSelf": old_value})
        if not isinstance(result, bool):
            raise CelEvaluationError(f"rule {self.source!r} did not evaluate to a boolean")
        return result


def _tokenize(source: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    position = 0
    while position < len(source):
        if source[position:].strip() == "":
            break
        match = _TOKEN.match(source, position)
        if not match or match.end() == position:
            raise CelSyntaxError(f"unexpected text at {source[position : position + 20]!r}")
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
        position = match.end()
    return tokens


class _Parser:
    def __init__(self, source: str) -> None:
        self.tokens = _tokenize(source)
        self.index = 0
        self.uses_old_self = False

    def peek(self) -> str | None:
        return self.tokens[self.index][1] if self.index < len(self.tokens) else None

    def take(self, expected: str | None = None) -> tuple[str, str]:
        if self.index >= len(self.tokens):
            raise CelSyntaxError("the rule ends too early")
        token = self.tokens[self.index]
        if expected is not None and token[1] != expected:
            raise CelSyntaxError(f"expected {expected!r}, found {token[1]!r}")
        self.index += 1
        return token

    def parse(self) -> Node:
        node = self.disjunction()
        if self.index != len(self.tokens):
            raise CelSyntaxError(f"unexpected {self.peek()!r}")
        return node

    def disjunction(self) -> Node:
        node = self.conjunction()
        while self.peek() == "||":
            self.take()
            node = _or(node, self.conjunction())
        return node

    def conjunction(self) -> Node:
        node = self.comparison()
        while self.peek() == "&&":
            self.take()
            node = _and(node, self.comparison())
        return node

    def comparison(self) -> Node:
        node = self.unary()
        while self.peek() in {"==", "!=", "<", "<=", ">", ">="}:
            operator = self.take()[1]
            node = _compare(operator, node, self.unary())
        return node

    def unary(self) -> Node:
        if self.peek() == "!":
            self.take()
            inner = self.unary()
            return lambda env: not _boolean(inner(env))
        if self.peek() == "-":
            self.take()
            inner = self.unary()
            return lambda env: -_number(inner(env))
        return self.selection()

    def selection(self) -> Node:
        node = self.primary()
        while self.peek() == ".":
            self.take()
            kind, name = self.take()
            if kind != "name":
                raise CelSyntaxError(f"expected a field name after '.', found {name!r}")
            node = _select(node, name)
        return node

    def primary(self) -> Node:
        kind, text = self.take()
        if kind == "number":
            value: Any = float(text) if "." in text else int(text)
            return lambda env: value
        if kind == "string":
            literal = _unquote(text)
            return lambda env: literal
        if text == "(":
            node = self.disjunction()
            self.take(")")
            return node
        if kind == "name" and text in _RESERVED:
            constant = _RESERVED[text]
            return lambda env: constant
        if kind == "name" and text in {"self", "oldSelf"}:
            self.uses_old_self = self.uses_old_self or text == "oldSelf"
            return lambda env: env[text]
        if kind == "name" and text == "has":
            return self.has_macro()
        if kind == "name" and text == "size":
            self.take("(")
            inner = self.disjunction()
            self.take(")")
            return lambda env: _size(inner(env))
        raise CelSyntaxError(f"{text!r} is not supported")

    def has_macro(self) -> Node:
        self.take("(")
        target = self.primary()
        fields: list[str] = []
        while self.peek() == ".":
            self.take()
            fields.append(self.take()[1])
        self.take(")")
        if not fields:
            raise CelSyntaxError("has() needs a field selection such as has(self.field)")
        parent_fields, last = fields[:-1], fields[-1]

        def has(env: dict[str, Any]) -> bool:
            value = target(env)
            for name in parent_fields:
                if not isinstance(value, dict) or name not in value:
                    raise CelEvaluationError(f"no such key: {name}")
                value = value[name]
            return isinstance(value, dict) and last in value

        return has


def _unquote(text: str) -> str:
    body = text[1:-1]
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), body)


def _select(node: Node, name: str) -> Node:
    def select(env: dict[str, Any]) -> Any:
        value = node(env)
        if not isinstance(value, dict):
            raise CelEvaluationError(f"cannot select {name!r} from a non-object value")
        if name not in value:
            raise CelEvaluationError(f"no such key: {name}")
        return value[name]

    return select


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise CelEvaluationError("expected a boolean")
    return value


def _number(value: Any) -> float | int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CelEvaluationError("expected a number")
    return value


def _size(value: Any) -> int:
    if isinstance(value, str | list | dict):
        return len(value)
    raise CelEvaluationError("size() needs a string, list or map")


def _absorbing(left: Node, right: Node, short: bool) -> Node:
    # CEL's && and || are commutative over errors: `false && <error>` is false.
    def evaluate(env: dict[str, Any]) -> bool:
        outcomes = []
        for side in (left, right):
            try:
                value = _boolean(side(env))
            except CelEvaluationError as error:
                outcomes.append(error)
                continue
            if value is short:
                return short
            outcomes.append(value)
        for outcome in outcomes:
            if isinstance(outcome, CelEvaluationError):
                raise outcome
        return not short

    return evaluate


def _and(left: Node, right: Node) -> Node:
    return _absorbing(left, right, short=False)


def _or(left: Node, right: Node) -> Node:
    return _absorbing(left, right, short=True)


def _compare(operator: str, left: Node, right: Node) -> Node:
    def compare(env: dict[str, Any]) -> bool:
        a, b = left(env), right(env)
        if operator == "==":
            return _equal(a, b)
        if operator == "!=":
            return not _equal(a, b)
        if isinstance(a, str) and isinstance(b, str):
            pair: tuple[Any, Any] = (a, b)
        else:
            pair = (_number(a), _number(b))
        return {
            "<": pair[0] < pair[1],
            "<=": pair[0] <= pair[1],
            ">": pair[0] > pair[1],
            ">=": pair[0] >= pair[1],
        }[operator]

    return compare


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return a == b


def compile_rule(source: str) -> CompiledRule:
    """Compile ``source``; raises CelSyntaxError for anything outside the subset."""
    parser = _Parser(source)
    node = parser.parse()
    return CompiledRule(source=source, uses_old_self=parser.uses_old_self, _node=node)

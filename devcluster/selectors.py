"""Label and field selectors as `kubectl -l` / `--field-selector` send them."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from devcluster.errors import bad_request

Predicate = Callable[[dict[str, Any]], bool]
_SET_EXPR = re.compile(r"^\s*(!?)\s*([A-Za-z0-9_./-]+)\s*(?:(notin|in)\s*\((.*)\))?\s*$")


def _split_top(text: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    parts, depth, current = [], 0, []
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [p for p in (p.strip() for p in parts) if p]


def parse_label_selector(text: str | None) -> Predicate | None:
    """Compile `a=b,c!=d,e in (f,g),!h,i` into a predicate over a labels dict."""
    if not text:
        return None
    checks: list[Predicate] = []
    for term in _split_top(text):
        for operator in ("!=", "==", "="):
            if operator in term and "(" not in term:
                key, value = (s.strip() for s in term.split(operator, 1))
                if operator == "!=":
                    checks.append(lambda labels, k=key, v=value: labels.get(k) != v)
                else:
                    checks.append(lambda labels, k=key, v=value: labels.get(k) == v)
                break
        else:
            match = _SET_EXPR.match(term)
            if not match:
                raise bad_request(
                    f"unable to parse requirement: found '{term}', expected: "
                    f"'=', '!=', '==', 'in', notin'"
                )
            negate, key, operator, values = match.groups()
            if operator:
                allowed = {v.strip() for v in values.split(",") if v.strip()}
                if operator == "in":
                    checks.append(lambda labels, k=key, a=allowed: labels.get(k) in a)
                else:
                    checks.append(lambda labels, k=key, a=allowed: labels.get(k) not in a)
            elif negate:
                checks.append(lambda labels, k=key: k not in labels)
            else:
                checks.append(lambda labels, k=key: k in labels)
    return lambda labels: all(check(labels) for check in checks)


def match_label_selector_object(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    """A `LabelSelector` object (matchLabels/matchExpressions); empty selects everything."""
    if not selector:
        return True
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or ():
        key, operator = expression.get("key"), expression.get("operator")
        values = set(expression.get("values") or ())
        if (
            (operator == "In" and labels.get(key) not in values)
            or (operator == "NotIn" and labels.get(key) in values)
            or (operator == "Exists" and key not in labels)
            or (operator == "DoesNotExist" and key in labels)
        ):
            return False
    return True


def dotted(obj: dict[str, Any], path: str) -> Any:
    value: Any = obj
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _as_field_string(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def parse_field_selector(text: str | None, labels_allowed: dict[str, str]) -> Predicate | None:
    """Compile a field selector; unsupported fields are refused as the real server does."""
    if not text:
        return None
    allowed = {"metadata.name": "metadata.name", "metadata.namespace": "metadata.namespace"}
    allowed.update(labels_allowed)
    checks: list[Predicate] = []
    for term in _split_top(text):
        for operator in ("!=", "==", "="):
            if operator in term:
                field, value = (s.strip() for s in term.split(operator, 1))
                break
        else:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{term}'")
        path = allowed.get(field)
        if path is None:
            raise bad_request(f"field label not supported: {field}")
        if operator == "!=":
            checks.append(lambda o, p=path, v=value: _as_field_string(dotted(o, p)) != v)
        else:
            checks.append(lambda o, p=path, v=value: _as_field_string(dotted(o, p)) == v)
    return lambda obj: all(check(obj) for check in checks)


def name_from_field_selector(text: str | None) -> str:
    """The name a `metadata.name=x` field selector pins (authorization uses it)."""
    for term in _split_top(text or ""):
        for operator in ("==", "="):
            if operator in term and "!=" not in term:
                field, value = (s.strip() for s in term.split(operator, 1))
                if field == "metadata.name":
                    return value
                break
    return ""

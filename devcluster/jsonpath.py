"""The small JSONPath subset printer columns use: `.a.b`, `[0]`, `[*]`, `[?(@.k=="v")].x`."""

from __future__ import annotations

import functools
import re
from typing import Any

_TOKEN = re.compile(
    r"""\.([A-Za-z0-9_\-$]+)"""  # .field
    r"""|\[(\d+|\*)\]"""  # [0] or [*]
    r"""|\[\?\(@\.([A-Za-z0-9_.\-]+)\s*==\s*["']([^"']*)["']\)\]"""  # [?(@.k=="v")]
    r"""|\['([^']+)'\]"""  # ['field.with.dots']
)


@functools.cache
def compile_path(path: str) -> tuple[tuple[str, Any], ...]:
    """Parse once; printer columns are evaluated for every row."""
    text = path.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1]
    if text.startswith("$"):
        text = text[1:]
    steps: list[tuple[str, Any]] = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if not match:
            raise ValueError(f"unsupported JSONPath {path!r} at {text[position:]!r}")
        field, index, filter_key, filter_value, quoted = match.groups()
        if field is not None or quoted is not None:
            steps.append(("field", field if field is not None else quoted))
        elif index is not None:
            steps.append(("all", None) if index == "*" else ("index", int(index)))
        else:
            steps.append(("filter", (filter_key, filter_value)))
        position = match.end()
    return tuple(steps)


def evaluate(obj: Any, path: str) -> list[Any]:
    """All values the path selects (empty when nothing matches)."""
    current = [obj]
    for kind, arg in compile_path(path):
        following: list[Any] = []
        for value in current:
            if (kind == "field" and isinstance(value, dict) and arg in value) or (
                kind == "index" and isinstance(value, list) and -len(value) <= arg < len(value)
            ):
                following.append(value[arg])
            elif kind == "all" and isinstance(value, list):
                following.extend(value)
            elif kind == "all" and isinstance(value, dict):
                following.extend(value.values())
            elif kind == "filter" and isinstance(value, list):
                key, wanted = arg
                for item in value:
                    got: Any = item
                    for part in key.split("."):
                        got = got.get(part) if isinstance(got, dict) else None
                    if got is not None and str(got) == wanted:
                        following.append(item)
        current = following
    return current

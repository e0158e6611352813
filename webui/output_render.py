"""Turns a snippet's captured output into safe HTML that looks like a terminal's final screen.

Pure. Terminal control is interpreted rather than shown raw: ``\\r`` returns to the start of
the line so later text overwrites earlier text (progress bars show their last state), ``\\b``
steps back, erase-line and cursor-column sequences work, ANSI colours and bold become CSS
classes from a fixed list, and every other escape sequence is dropped. Remaining control
characters are shown as visible symbols. All text is HTML-escaped.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, replace

from markupsafe import Markup, escape

TAB_SIZE = 8

_TOKEN = re.compile(
    r"(?P<csi>\x1b\[(?P<params>[0-?]*)[ -/]*(?P<final>[@-~]))"
    r"|(?P<osc>\x1b\][^\x07\x1b]*(?:\x07|\x1b\\|\Z))"
    r"|(?P<esc>\x1b[ -/]*[0-~]?)"
    r"|(?P<cr>\r)"
    r"|(?P<backspace>\x08)"
    r"|(?P<tab>\t)"
    r"|(?P<control>[\x00-\x07\x0a-\x0c\x0e-\x1a\x1c-\x1f\x7f-\x9f]+)"
    r"|(?P<text>[^\x00-\x1f\x7f-\x9f]+)"
)


@dataclass(frozen=True)
class Style:
    """Character attributes set by ANSI SGR sequences; colours are palette indexes 0-15."""

    bold: bool = False
    dim: bool = False
    italic: bool = False
    underline: bool = False
    inverse: bool = False
    fg: int | None = None
    bg: int | None = None

    def css_classes(self) -> str:
        """The CSS classes for this style (empty for the default style)."""
        classes = [
            name
            for name, on in (
                ("ansi-bold", self.bold),
                ("ansi-dim", self.dim),
                ("ansi-italic", self.italic),
                ("ansi-underline", self.underline),
            )
            if on
        ]
        fg, bg = (self.bg, self.fg) if self.inverse else (self.fg, self.bg)
        if fg is not None:
            classes.append(f"ansi-fg-{fg}")
        elif self.inverse:
            classes.append("ansi-fg-inverse")
        if bg is not None:
            classes.append(f"ansi-bg-{bg}")
        elif self.inverse:
            classes.append("ansi-bg-inverse")
        return " ".join(classes)


PLAIN = Style()
# Anything that needs interpreting: control characters other than newline, and escapes.
_NEEDS_TERMINAL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]")
# The same within one line, where a tab alone can be expanded without interpreting anything.
_LINE_NEEDS_TERMINAL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _extended_colour(numbers: list[int], index: int) -> tuple[int | None, int]:
    """Reads a 38/48 colour starting at ``index``; returns (palette index or None, next index)."""
    if index < len(numbers) and numbers[index] == 5 and index + 1 < len(numbers):
        value = numbers[index + 1]
        # Only the 16 basic colours have classes; the 240 others fall back to the default.
        return (value if 0 <= value < 16 else None), index + 2
    if index < len(numbers) and numbers[index] == 2:
        return None, index + 4  # 24-bit colour: dropped
    return None, index + 1


def apply_sgr(style: Style, params: str) -> Style:
    """The style after one SGR (``ESC [ params m``) sequence."""
    numbers = [int(part) if part.isdigit() else 0 for part in params.replace(":", ";").split(";")]
    index = 0
    while index < len(numbers):
        code = numbers[index]
        index += 1
        if code == 0:
            style = PLAIN
        elif code in (1, 2, 3, 4, 7):
            name = {1: "bold", 2: "dim", 3: "italic", 4: "underline", 7: "inverse"}[code]
            style = replace(style, **{name: True})
        elif code == 22:
            style = replace(style, bold=False, dim=False)
        elif code in (23, 24, 27):
            name = {23: "italic", 24: "underline", 27: "inverse"}[code]
            style = replace(style, **{name: False})
        elif 30 <= code <= 37:
            style = replace(style, fg=code - 30)
        elif 90 <= code <= 97:
            style = replace(style, fg=code - 90 + 8)
        elif 40 <= code <= 47:
            style = replace(style, bg=code - 40)
        elif 100 <= code <= 107:
            style = replace(style, bg=code - 100 + 8)
        elif code == 39:
            style = replace(style, fg=None)
        elif code == 49:
            style = replace(style, bg=None)
        elif code in (38, 48):
            colour, index = _extended_colour(numbers, index)
            style = replace(style, **{"fg" if code == 38 else "bg": colour})
    return style


# Control characters left after interpretation are shown as visible symbols: the Unicode
# "control pictures" (such as ␀ and ␇) for C0 and DEL, and U+FFFD for the C1 range.
_VISIBLE_CONTROLS = (
    {code: 0x2400 + code for code in range(0x20)}
    | {0x7F: 0x2421}
    | dict.fromkeys(range(0x80, 0xA0), 0xFFFD)
)


class _Line:
    """One terminal line: characters, their styles and a cursor column."""

    __slots__ = ("chars", "column", "styled", "styles")

    def __init__(self) -> None:
        self.chars: list[str] = []
        self.styles: list[Style] = []
        self.column = 0
        self.styled = False

    def write(self, text: str, style: Style) -> None:
        if self.column > len(self.chars):
            gap = self.column - len(self.chars)
            self.chars.extend(" " * gap)
            self.styles.extend([PLAIN] * gap)
        end = self.column + len(text)
        self.chars[self.column : end] = text
        self.styles[self.column : end] = [style] * len(text)
        self.column = end
        self.styled = self.styled or style != PLAIN

    def erase(self, mode: int) -> None:
        if mode == 0:
            del self.chars[self.column :], self.styles[self.column :]
        elif mode == 1:
            count = min(self.column + 1, len(self.chars))
            self.chars[:count] = " " * count
            self.styles[:count] = [PLAIN] * count
        elif mode == 2:
            self.chars, self.styles = [], []

    def html(self) -> str:
        if not self.styled:
            return str(escape("".join(self.chars)))
        parts: list[str] = []
        start = 0
        for index in range(1, len(self.chars) + 1):
            if index == len(self.chars) or self.styles[index] != self.styles[start]:
                text = escape("".join(self.chars[start:index]))
                classes = self.styles[start].css_classes()
                parts.append(f'<span class="{classes}">{text}</span>' if classes else str(text))
                start = index
        return "".join(parts)

    def text(self) -> str:
        return "".join(self.chars)


def _first_number(params: str, default: int) -> int:
    head = params.split(";", maxsplit=1)[0]
    return int(head) if head.isdigit() else default


def _interpret_line(raw: str, style: Style) -> tuple[_Line, Style]:
    line = _Line()
    for match in _TOKEN.finditer(raw):
        kind = match.lastgroup
        if kind == "text":
            line.write(match.group(), style)
        elif kind == "cr":
            line.column = 0
        elif kind == "backspace":
            line.column = max(0, line.column - 1)
        elif kind == "tab":
            line.write(" " * (TAB_SIZE - line.column % TAB_SIZE), PLAIN)
        elif kind == "control":
            line.write(match.group().translate(_VISIBLE_CONTROLS), style)
        elif kind == "csi":
            params, final = match.group("params"), match.group("final")
            if final == "m":
                style = apply_sgr(style, params)
            elif final == "K":
                line.erase(_first_number(params, 0))
            elif final == "G":
                line.column = max(0, _first_number(params, 1) - 1)
            elif final == "C":
                line.column += max(1, _first_number(params, 1))
            elif final == "D":
                line.column = max(0, line.column - max(1, _first_number(params, 1)))
            # Other sequences (cursor up, clear screen, ...) have no meaning in a log: dropped.
        # "osc" and "esc" (window titles, hyperlinks, charset switches) are dropped.
    return line, style


def _interpret(output: str) -> list[str | _Line]:
    """The final screen, line by line: plain lines stay strings (fast), others are cells."""
    lines: list[str | _Line] = []
    style = PLAIN
    for raw in output.split("\n"):
        if style == PLAIN and not _LINE_NEEDS_TERMINAL.search(raw):
            lines.append(raw.expandtabs(TAB_SIZE))
        else:
            line, style = _interpret_line(raw, style)
            lines.append(line)
    return lines


def _line_text(line: str | _Line) -> str:
    return line if isinstance(line, str) else line.text()


def output_html(output: str) -> Markup:
    """Safe HTML (for inside a ``<pre>``) showing the final screen of ``output``."""
    if not _NEEDS_TERMINAL.search(output):
        return escape(output)  # the common case: plain text needs escaping only
    return _interpreted_html(output)


# Output full of control codes costs up to a few hundred milliseconds to interpret, and a
# finished run's output never changes: keep the last few results so reloading is cheap.
@functools.lru_cache(maxsize=16)
def _interpreted_html(output: str) -> Markup:
    parts: list[str] = []
    plain: list[str] = []
    for line in _interpret(output):
        if isinstance(line, str):
            plain.append(line)
            continue
        if plain:
            parts.append(str(escape("\n".join(plain))))
            plain = []
        parts.append(line.html())
    if plain:
        parts.append(str(escape("\n".join(plain))))
    return Markup("\n".join(parts))


def output_text(output: str) -> str:
    """The final screen of ``output`` as plain text, with all styling removed."""
    if not _NEEDS_TERMINAL.search(output):
        return output
    return "\n".join(_line_text(line) for line in _interpret(output))

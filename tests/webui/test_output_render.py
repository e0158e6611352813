"""Output is escaped, carriage returns and ANSI codes are interpreted, never shown raw."""

import pytest

from webui.output_render import Style, apply_sgr, output_html, output_text


def test_markup_in_output_is_escaped():
    html = str(output_html("</pre><script>alert(1)</script><b>bold</b>\n"))
    assert "<script>" not in html and "</pre>" not in html
    assert "&lt;/pre&gt;&lt;script&gt;alert(1)&lt;/script&gt;&lt;b&gt;bold&lt;/b&gt;" in html


def test_plain_output_is_unchanged():
    assert output_text("out1\nout2\n") == "out1\nout2\n"
    assert str(output_html("a & b")) == "a &amp; b"


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("10%\r50%\r100%\n", "100%\n"),  # a progress bar shows its last state
        ("abcdef\rXY\n", "XYcdef\n"),  # a shorter rewrite overwrites the start only
        ("line one\r\nline two\r\n", "line one\nline two\n"),  # Windows line ends
        ("abc\bX", "abX"),
        ("loading...\r\x1b[Kdone\n", "done\n"),  # erase to the end of the line
        ("abc\x1b[1Gz", "zbc"),
        ("a\tb", "a       b"),
        ("tail\r", "tail"),
    ],
)
def test_terminal_control_shows_the_final_screen(raw, shown):
    assert output_text(raw) == shown


def test_colour_codes_become_classes_and_never_show_raw():
    html = str(output_html("\x1b[1;31mred bold\x1b[0m plain \x1b[42mon green\x1b[m"))
    assert "\x1b" not in html and "[31m" not in html
    assert '<span class="ansi-bold ansi-fg-1">red bold</span>' in html
    assert " plain " in html
    assert '<span class="ansi-bg-2">on green</span>' in html


def test_other_escape_sequences_are_dropped():
    raw = "\x1b]0;window title\x07\x1b[2Jhello\x1b(B \x1b[?25lworld"
    assert output_text(raw) == "hello world"


def test_other_control_characters_are_visible_symbols():
    assert output_text("bell\x07 nul\x00 del\x7f") == "bell\u2407 nul\u2400 del\u2421"


def test_escaped_text_inside_styled_spans():
    html = str(output_html("\x1b[32m<b>&\x1b[0m"))
    assert html == '<span class="ansi-fg-2">&lt;b&gt;&amp;</span>'


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ("", Style()),
        ("1", Style(bold=True)),
        ("1;22", Style()),
        ("91", Style(fg=9)),
        ("38;5;4", Style(fg=4)),
        ("38;5;200", Style()),  # outside the 16 basic colours: default colour
        ("38;2;10;20;30;1", Style(bold=True)),  # 24-bit colour dropped, the rest applied
        ("7", Style(inverse=True)),
        ("33;39", Style()),
    ],
)
def test_sgr_parameters(params, expected):
    assert apply_sgr(Style(), params) == expected


def test_inverse_swaps_colours():
    assert Style(inverse=True).css_classes() == "ansi-fg-inverse ansi-bg-inverse"
    assert Style(inverse=True, fg=1).css_classes() == "ansi-fg-inverse ansi-bg-1"


def test_a_large_output_renders_quickly():
    import time

    raw = ("y" * 999 + "\n") * 128
    started = time.perf_counter()
    assert output_text(raw) == raw
    assert time.perf_counter() - started < 1.0


def test_colours_carry_over_line_ends():
    html = str(output_html("\x1b[31mred\nstill red\x1b[0m\nplain"))
    assert html == (
        '<span class="ansi-fg-1">red</span>\n<span class="ansi-fg-1">still red</span>\nplain'
    )


def test_tabs_expand_to_eight_columns_with_or_without_other_control():
    assert output_text("a\tb\nc") == "a       b\nc"
    assert output_text("x\ry\tb\x07") == "y       b\u2407"

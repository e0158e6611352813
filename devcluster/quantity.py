"""Kubernetes resource quantities (`100m`, `1Gi`, `0.5`) as exact fractions."""

from __future__ import annotations

import re
from fractions import Fraction

_SUFFIX = {
    "n": Fraction(1, 10**9),
    "u": Fraction(1, 10**6),
    "m": Fraction(1, 1000),
    "": Fraction(1),
    "k": Fraction(10**3),
    "M": Fraction(10**6),
    "G": Fraction(10**9),
    "T": Fraction(10**12),
    "P": Fraction(10**15),
    "E": Fraction(10**18),
    "Ki": Fraction(2**10),
    "Mi": Fraction(2**20),
    "Gi": Fraction(2**30),
    "Ti": Fraction(2**40),
    "Pi": Fraction(2**50),
    "Ei": Fraction(2**60),
}
_QUANTITY = re.compile(r"^([+-]?[0-9.]+)(e[+-]?\d+|E[+-]?\d+)?([a-zA-Z]*)$")


def parse(value: str | int | float) -> Fraction:
    """Parse a quantity; raises ValueError for malformed ones."""
    if isinstance(value, int | float):
        return Fraction(value)
    match = _QUANTITY.match(value.strip())
    if not match or match.group(3) not in _SUFFIX:
        raise ValueError(
            f"quantities must match the regular expression "
            f"'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$': {value!r}"
        )
    number = Fraction(match.group(1))
    if match.group(2):
        number *= Fraction(10) ** int(match.group(2)[1:])
    return number * _SUFFIX[match.group(3)]


def format_quantity(value: Fraction, memory: bool = False) -> str:
    """A canonical short string (`500m`, `2`, `128Mi`)."""
    if value == 0:
        return "0"
    if memory:
        for suffix in ("Ei", "Pi", "Ti", "Gi", "Mi", "Ki"):
            unit = _SUFFIX[suffix]
            if value % unit == 0:
                return f"{value // unit}{suffix}"
        return str(int(value)) if value.denominator == 1 else f"{int(value * 1000)}m"
    if value.denominator == 1:
        return str(value.numerator)
    milli = value * 1000
    return f"{int(milli)}m" if milli.denominator == 1 else f"{int(value * 10**9)}n"

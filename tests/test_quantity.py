"""Kubernetes quantities parse to exact values."""

from decimal import Decimal

import pytest

from coderun_operator.quantity import QuantityError, parse_quantity


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("500m", Decimal("0.5")),
        ("1", Decimal(1)),
        ("1.5", Decimal("1.5")),
        ("256Mi", Decimal(256 * 2**20)),
        ("1Gi", Decimal(2**30)),
        ("1G", Decimal(10**9)),
        ("1k", Decimal(1000)),
        ("1e3", Decimal(1000)),
        (".5", Decimal("0.5")),
        (2, Decimal(2)),
    ],
)
def test_parse(text, value):
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", ["", "Mi", "1 Gi", "1.2.3", "1KB", "one", True])
def test_refused(text):
    with pytest.raises(QuantityError):
        parse_quantity(text)

"""Resource quantities: parsing, canonical strings (as kube-apiserver stores them), order."""
from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pybernetes.machinery.quantity import (ERR_FORMAT, ERR_NUMERIC, ERR_SUFFIX, Quantity,
                                           QuantityError, canonical, compare, format_quantity,
                                           parse_quantity, validate_quantity)


@pytest.mark.parametrize("text,value", [
    ("1", 1), ("100m", Fraction(1, 10)), ("1.5", Fraction(3, 2)), ("1Ki", 1024),
    ("1.5Gi", 1536 * 1024**2), ("2e3", 2000), ("1E-3", Fraction(1, 1000)), ("5n", Fraction(5, 10**9)),
    ("-2k", -2000), ("+3M", 3 * 10**6), (".5", Fraction(1, 2)), ("1.", 1), ("0.0000000001", Fraction(1, 10**9)),
    (3, 3), (0.25, Fraction(1, 4)),
])
def test_parse(text, value):
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text,canon", [
    ("0", "0"), ("0Mi", "0"), ("1000", "1k"), ("1500m", "1500m"), ("1.5", "1500m"), ("0.1", "100m"),
    ("100m", "100m"), ("1000m", "1"), ("1024", "1024"), ("1Ki", "1Ki"), ("1024Ki", "1Mi"),
    ("1.5Gi", "1536Mi"), ("0.5Ki", "512"), ("1e3", "1e3"), ("1E6", "1e6"), ("1.5e3", "1500"),
    ("12e2", "1200"), ("-1500m", "-1500m"), ("0.0000000001", "1n"), ("128974848", "128974848"),
    ("129e6", "129e6"), ("129M", "129M"), ("123Mi", "123Mi"), ("2000000k", "2G"),
])
def test_canonical_form(text, canon):
    assert canonical(text) == canon


@pytest.mark.parametrize("bad,msg", [
    ("", ERR_FORMAT), ("abc", ERR_FORMAT), ("1 Gi", ERR_FORMAT), ("1..2", ERR_NUMERIC),
    ("1Kb", ERR_FORMAT), ("1K", ERR_SUFFIX), ("1mi", ERR_SUFFIX), ("1e", ERR_SUFFIX),
])
def test_invalid(bad, msg):
    with pytest.raises(QuantityError) as ei:
        parse_quantity(bad)
    assert str(ei.value) == msg
    assert validate_quantity(bad) == [msg]


def test_compare_and_arithmetic():
    assert compare("1Gi", "1G") == 1 and compare("1000m", "1") == 0 and compare("1", "2") == -1
    assert Quantity.parse("500m") + Quantity.parse("1500m") == Quantity.parse("2")
    assert str(Quantity.parse("1Gi") - Quantity.parse("512Mi")) == "512Mi"
    assert Quantity.parse("250m").milli_value() == 250
    assert Quantity.parse("1.2").int_value() == 2
    assert sorted([Quantity.parse(x) for x in ("1Gi", "1", "10m")])[0] == Quantity.parse("10m")


def test_format_quantity():
    assert format_quantity(Fraction(3, 2)) == "1500m"
    assert format_quantity(2048, "BinarySI") == "2Ki"
    assert format_quantity(Fraction(1, 3)) == "333333334n"  # rounded up to nano precision


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=-10**15, max_value=10**15), st.sampled_from(
    ["", "m", "k", "M", "G", "n", "u", "Ki", "Mi", "Gi", "e3", "e-3", "E2"]))
def test_canonical_round_trip(n, suffix):
    q = Quantity.parse(f"{n}{suffix}")
    again = Quantity.parse(str(q))
    assert again.value == q.value
    assert str(again) == str(q)

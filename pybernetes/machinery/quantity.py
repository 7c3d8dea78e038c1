"""Resource quantities (`resource.Quantity`): parsing, canonical form, comparison.

Values are exact Fractions. Like upstream, anything finer than a nano-unit is
rounded up (away from zero) to 1n, and the canonical string keeps the format the
value was written in: BinarySI (Ki..Ei), DecimalSI (n u m "" k M G T P E) or
DecimalExponent (1e3).
"""
from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

BINARY_SI, DECIMAL_SI, DECIMAL_EXPONENT = "BinarySI", "DecimalSI", "DecimalExponent"

_BIN = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DEC = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_DEC_BY_EXP = {v: k for k, v in _DEC.items()}
_BIN_BY_EXP = {v: k for k, v in _BIN.items()}

ERR_FORMAT = ("quantities must match the regular expression "
              "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")
ERR_NUMERIC = "unable to parse numeric part of quantity"
ERR_SUFFIX = "unable to parse quantity's suffix"

_SPLIT = re.compile(r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$")
_NUMBER = re.compile(r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)$")
_EXP_SUFFIX = re.compile(r"^[eE][-+]?[0-9]+$")
_NANO = Fraction(1, 10**9)


class QuantityError(ValueError):
    pass


@dataclass(frozen=True, order=False)
class Quantity:
    value: Fraction
    format: str = DECIMAL_SI

    @classmethod
    def parse(cls, s: Any) -> "Quantity":
        return _parse(_as_text(s))

    def __str__(self) -> str:
        return format_quantity(self.value, self.format)

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, Quantity) and self.value == other.value

    def __lt__(self, other: "Quantity") -> bool:
        return self.value < other.value

    def __le__(self, other: "Quantity") -> bool:
        return self.value <= other.value

    def __gt__(self, other: "Quantity") -> bool:
        return self.value > other.value

    def __ge__(self, other: "Quantity") -> bool:
        return self.value >= other.value

    def __hash__(self) -> int:
        return hash(self.value)

    def __add__(self, other: "Quantity") -> "Quantity":
        return Quantity(self.value + other.value, self.format)

    def __sub__(self, other: "Quantity") -> "Quantity":
        return Quantity(self.value - other.value, self.format)

    def milli_value(self) -> int:
        """Value in thousandths, rounded up (upstream MilliValue)."""
        return math.ceil(self.value * 1000)

    def int_value(self) -> int:
        """Value rounded up to an integer (upstream Value)."""
        return math.ceil(self.value)


def _as_text(s: Any) -> str:
    if isinstance(s, bool):
        raise QuantityError(ERR_FORMAT)
    if isinstance(s, int):
        return str(s)
    if isinstance(s, float):
        return repr(s) if not s.is_integer() else str(int(s))
    if not isinstance(s, str):
        raise QuantityError(ERR_FORMAT)
    return s


@functools.lru_cache(maxsize=4096)
@functools.lru_cache(maxsize=8192)  # the same few strings recur in every pod
def _parse(s: str) -> Quantity:
    if not s:
        raise QuantityError("quantities must match the regular expression "
                            "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")
    m = _SPLIT.match(s)
    if not m:
        raise QuantityError(ERR_FORMAT)
    num, suffix = m.groups()
    if not _NUMBER.match(num):
        raise QuantityError(ERR_NUMERIC)
    value = Fraction(num if not num.endswith(".") else num[:-1] or "0")
    if suffix in _BIN:
        value *= 2 ** _BIN[suffix]
        fmt = BINARY_SI
    elif suffix in _DEC:
        value *= Fraction(10) ** _DEC[suffix]
        fmt = DECIMAL_SI
    elif _EXP_SUFFIX.match(suffix):
        value *= Fraction(10) ** int(suffix[1:])
        fmt = DECIMAL_EXPONENT
    else:
        raise QuantityError(ERR_SUFFIX)
    return Quantity(_round_up_nano(value), fmt)


def _round_up_nano(v: Fraction) -> Fraction:
    scaled = v / _NANO
    if scaled.denominator == 1:
        return v
    n = math.ceil(abs(scaled))
    return Fraction(n if v > 0 else -n, 10**9)


def parse_quantity(s: Any) -> Fraction:
    """The exact value of a quantity string (or JSON number); QuantityError if malformed."""
    return Quantity.parse(s).value


def validate_quantity(s: Any) -> list[str]:
    """Messages (empty when valid), for strategies to wrap in FieldErrors."""
    try:
        Quantity.parse(s)
    except QuantityError as e:
        return [str(e)]
    return []


def canonical(s: Any) -> str:
    """A quantity string in the canonical form kube-apiserver stores and returns."""
    return str(Quantity.parse(s))


@functools.lru_cache(maxsize=8192)
def format_quantity(value: Fraction | int, fmt: str = DECIMAL_SI) -> str:
    value = _round_up_nano(Fraction(value))
    if value == 0:
        return "0"
    sign = "-" if value < 0 else ""
    mag = abs(value)
    if fmt == BINARY_SI and (mag < 1024 or mag.denominator != 1):
        fmt = DECIMAL_SI  # small or fractional binary values print as decimal, as upstream
    if fmt == BINARY_SI:
        n, exp = int(mag), 0
        while exp < 60 and n % 1024 == 0:
            n //= 1024
            exp += 10
        return f"{sign}{n}{_BIN_BY_EXP.get(exp, '')}"
    mantissa, exp = _base1000(mag)
    if fmt == DECIMAL_EXPONENT:
        return f"{sign}{mantissa}" + (f"e{exp}" if exp else "")
    suffix = _DEC_BY_EXP.get(exp)
    if suffix is None:
        suffix = f"e{exp}"
    return f"{sign}{mantissa}{suffix}"


def _base1000(mag: Fraction) -> tuple[int, int]:
    """mag = mantissa * 10**exp with exp a multiple of 3, mantissa an integer, exp maximal."""
    exp = 0
    while mag.denominator != 1:
        mag *= 1000
        exp -= 3
    n = int(mag)
    while n % 1000 == 0 and exp < 18:
        n //= 1000
        exp += 3
    return n, exp


def compare(a: Any, b: Any) -> int:
    """-1, 0 or 1 like upstream's Quantity.Cmp."""
    x, y = parse_quantity(a), parse_quantity(b)
    return (x > y) - (x < y)

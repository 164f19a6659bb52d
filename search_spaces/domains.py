"""Parameter domains: how one spec value says "search over this".

A spec value is fixed unless it is written as a one-key mapping naming a domain:

    depth: 3                       # Fixed(3)
    depth: {int: [2, 6]}           # IntRange(2, 6), both ends included
    dropout: {float: [0.0, 0.5]}   # FloatRange, searched on a linear scale
    lr: {log: [1.0e-4, 1.0e-1]}    # LogRange, searched on a log scale
    activation: {choice: [relu, gelu]}

`parse_domain` turns the raw YAML value into one of the frozen dataclasses below and checks the
rules every domain obeys (bounds in order, positive log bounds, non-empty distinct choices).
Field-specific rules (`depth >= 1`, valid activation names) are checked by `check_domain`.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

DOMAIN_KEYS = ("int", "float", "log", "choice")


@dataclass(frozen=True)
class Fixed:
    """A value that is not searched."""

    value: Any


@dataclass(frozen=True)
class IntRange:
    """Integers from `low` to `high`, both included."""

    low: int
    high: int


@dataclass(frozen=True)
class FloatRange:
    """Reals from `low` to `high`, sampled uniformly."""

    low: float
    high: float


@dataclass(frozen=True)
class LogRange:
    """Positive reals from `low` to `high`, sampled uniformly in log space."""

    low: float
    high: float


@dataclass(frozen=True)
class Choice:
    """One of a list of distinct values."""

    values: tuple[Any, ...]


Domain = Fixed | IntRange | FloatRange | LogRange | Choice


def is_searched(domain: Domain) -> bool:
    """True when the domain holds more than one value to try."""
    return not isinstance(domain, Fixed)


def domain_values(domain: Domain) -> tuple[Any, ...] | None:
    """Every value of a finite domain, or None for a continuous one."""
    if isinstance(domain, Fixed):
        return (domain.value,)
    if isinstance(domain, Choice):
        return domain.values
    if isinstance(domain, IntRange):
        return tuple(range(domain.low, domain.high + 1))
    return None


def parse_domain(raw: Any, *, field: str) -> Domain:
    """Read one spec value as a domain; raise ValueError naming `field` when it is malformed."""
    if not isinstance(raw, dict):
        return Fixed(raw)

    if len(raw) != 1:
        raise ValueError(
            f"{field}: a domain is a mapping with exactly one of the keys {', '.join(DOMAIN_KEYS)}, "
            f"got {show_value(raw)}; write e.g. {{int: [2, 6]}}"
        )
    ((kind, body),) = raw.items()
    if kind not in DOMAIN_KEYS:
        raise ValueError(
            f"{field}: unknown domain kind {kind!r}{did_you_mean(str(kind), DOMAIN_KEYS)}; "
            f"use one of {', '.join(DOMAIN_KEYS)}"
        )

    if kind == "choice":
        return _parse_choice(body, field=field)
    low, high = _parse_bounds(body, kind=kind, field=field)
    if kind == "int":
        return IntRange(low, high)
    if kind == "float":
        return FloatRange(float(low), float(high))
    return LogRange(float(low), float(high))


def _parse_choice(body: Any, *, field: str) -> Choice:
    if not isinstance(body, list) or not body:
        raise ValueError(
            f"{field}: choice needs a non-empty list of values, got {show_value(body)}; "
            "write e.g. {choice: [relu, gelu]}"
        )

    seen: list[Any] = []
    for value in body:
        # True == 1 in Python, so compare type and value to call [1, true] distinct.
        if any(type(value) is type(other) and value == other for other in seen):
            raise ValueError(
                f"{field}: choice lists {show_value(value)} more than once in {show_value(body)}; "
                "list each value once"
            )
        seen.append(value)
    return Choice(tuple(body))


def _parse_bounds(body: Any, *, kind: str, field: str) -> tuple[Any, Any]:
    if not isinstance(body, list) or len(body) != 2:
        raise ValueError(
            f"{field}: {kind} range needs a list of two bounds [low, high], got {show_value(body)}"
        )
    low, high = body

    for bound in (low, high):
        if not _is_number(bound) or not math.isfinite(bound):
            raise ValueError(
                f"{field}: {kind} range bounds must be finite numbers, got {show_value(body)}"
                f"{number_text_hint(bound)}"
            )
        if kind == "int" and not _is_int(bound):
            raise ValueError(
                f"{field}: int range bounds must be integers, got {show_value(body)}; "
                f"write {{float: {show_value(body)}}} for a real-valued range"
            )

    if low > high:
        raise ValueError(
            f"{field}: lower bound {low} is greater than upper bound {high}; swap them"
        )
    if kind != "int" and low == high:
        raise ValueError(
            f"{field}: {kind} range [{low}, {high}] holds a single value; write {field.split('.')[-1]}: "
            f"{low} to fix it"
        )
    if kind == "log" and low <= 0:
        raise ValueError(
            f"{field}: log range lower bound {low} must be > 0 (a log scale has no zero); "
            "use {float: [...]} to include zero"
        )
    return low, high


def check_domain(
    domain: Domain,
    *,
    field: str,
    kind: type | tuple[type, ...],
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    options: Sequence[Any] | None = None,
) -> Domain:
    """Check that every value the domain can produce is of `kind` and within the limits."""
    kinds = kind if isinstance(kind, tuple) else (kind,)

    if isinstance(domain, (FloatRange, LogRange)) and int in kinds and float not in kinds:
        raise ValueError(
            f"{field}: takes whole numbers, got a real-valued range; write {{int: [a, b]}}"
        )
    if isinstance(domain, IntRange) and int not in kinds and float not in kinds:
        raise ValueError(
            f"{field}: takes {_kind_name(kinds)}, not an int range; "
            "list the values with {choice: [...]}"
        )
    if isinstance(domain, (FloatRange, LogRange)) and float not in kinds:
        raise ValueError(
            f"{field}: takes {_kind_name(kinds)}, not a numeric range; "
            "list the values with {choice: [...]}"
        )

    if isinstance(domain, (IntRange, FloatRange, LogRange)):
        _check_limits(domain.low, field=field, which="lower bound ", ge=ge, gt=gt, le=le, lt=lt)
        _check_limits(domain.high, field=field, which="upper bound ", ge=ge, gt=gt, le=le, lt=lt)
        return domain

    for value in domain_values(domain) or ():
        _check_value(value, field=field, kinds=kinds, options=options)
        if _is_number(value):
            _check_limits(value, field=field, which="", ge=ge, gt=gt, le=le, lt=lt)
    return domain


def _check_value(
    value: Any, *, field: str, kinds: tuple[type, ...], options: Sequence[Any] | None
):
    if options is not None and value not in options:
        raise ValueError(
            f"{field}: unknown value {show_value(value)}{did_you_mean(str(value), options)}; "
            f"valid values are {', '.join(map(str, options))}"
        )
    accepted = (
        (bool in kinds and isinstance(value, bool))
        or (int in kinds and _is_int(value))
        or (float in kinds and _is_number(value))
        or (str in kinds and isinstance(value, str))
    )
    if not accepted:
        hint = number_text_hint(value) if str not in kinds else ""
        raise ValueError(f"{field}: expected {_kind_name(kinds)}, got {show_value(value)}{hint}")


def _check_limits(value: float, *, field: str, which: str, **limits: float | None) -> None:
    rules = {
        "ge": (">=", lambda a, b: a >= b),
        "gt": (">", lambda a, b: a > b),
        "le": ("<=", lambda a, b: a <= b),
        "lt": ("<", lambda a, b: a < b),
    }
    for name, limit in limits.items():
        symbol, holds = rules[name]
        if limit is not None and not holds(value, limit):
            raise ValueError(f"{field}: {which}{value} must be {symbol} {limit}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _kind_name(kinds: tuple[type, ...]) -> str:
    names = {bool: "true/false", int: "an integer", float: "a number", str: "a string"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def show_value(value: Any) -> str:
    """Render a value the way the user wrote it in YAML, on one line."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, str) and _needs_quotes(value):
        # Text that YAML would read as a number, bool or null is shown quoted, so "got '3'"
        # tells the user why 3 was refused; repr also keeps line breaks on one line.
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(show_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {show_value(v)}" for k, v in value.items()) + "}"
    return str(value)


def number_text_hint(value: Any) -> str:
    """A hint for text that reads as a number: the YAML loader kept it as a string."""
    if not isinstance(value, str):
        return ""
    try:
        number = float(value)
    except ValueError:
        return ""
    if not math.isfinite(number):
        return ""

    # YAML 1.1 (PyYAML) needs a dot and a signed exponent: 1e-3 and 1.0e5 are text.
    mantissa, e, exponent = value.lower().partition("e")
    if e and ("." not in mantissa or exponent[:1] not in ("-", "+")):
        mantissa = mantissa if "." in mantissa else f"{mantissa}.0"
        exponent = exponent if exponent[:1] in ("-", "+") else f"+{exponent}"
        return f"; YAML reads {value} as text, write {mantissa}e{exponent}"
    return "; remove the quotes to make it a number"


def _needs_quotes(text: str) -> bool:
    if not text or text != text.strip() or not text.isprintable():
        return True
    if text.lower() in ("true", "false", "yes", "no", "on", "off", "null", "~"):
        return True
    try:
        float(text)
    except ValueError:
        return False
    return True


def did_you_mean(word: str, candidates: Sequence[Any]) -> str:
    """' (did you mean 'x'?)' for the closest candidate, or '' when none is close."""
    close = difflib.get_close_matches(word, [str(c) for c in candidates], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""

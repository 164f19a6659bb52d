"""Tests for search_spaces.domains: parsing spec values into domains and checking them."""

from __future__ import annotations

import math

import pytest

from search_spaces.domains import (
    Choice,
    Fixed,
    FloatRange,
    IntRange,
    LogRange,
    check_domain,
    did_you_mean,
    domain_values,
    is_searched,
    number_text_hint,
    parse_domain,
    show_value,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (3, Fixed(3)),
        (0.25, Fixed(0.25)),
        ("relu", Fixed("relu")),
        (True, Fixed(True)),
        (None, Fixed(None)),
        ([1, 2], Fixed([1, 2])),
        ({"int": [2, 6]}, IntRange(2, 6)),
        ({"int": [4, 4]}, IntRange(4, 4)),
        ({"int": [-3, 0]}, IntRange(-3, 0)),
        ({"float": [0.0, 0.5]}, FloatRange(0.0, 0.5)),
        ({"log": [1.0e-4, 1.0e-1]}, LogRange(1.0e-4, 1.0e-1)),
        ({"choice": ["relu", "gelu"]}, Choice(("relu", "gelu"))),
        ({"choice": [32]}, Choice((32,))),
        # True == 1 in Python, yet they are different YAML values.
        ({"choice": [1, True]}, Choice((1, True))),
        ({"choice": [None, "x"]}, Choice((None, "x"))),
    ],
)
def test_parse_domain_kinds(raw, expected):
    assert parse_domain(raw, field="model.x") == expected


@pytest.mark.parametrize("kind", ["float", "log"])
def test_parse_domain_turns_integer_bounds_into_floats(kind):
    domain = parse_domain({kind: [1, 10]}, field="f")

    assert (domain.low, domain.high) == (1.0, 10.0)
    assert type(domain.low) is float and type(domain.high) is float


def test_parse_domain_keeps_integer_bounds_as_int():
    domain = parse_domain({"int": [2, 6]}, field="model.depth")

    assert type(domain.low) is int and type(domain.high) is int


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"int": [1, 3], "choice": [1]}, r"^model\.x: a domain is a mapping with exactly one of "),
        ({}, r"^model\.x: a domain is a mapping with exactly one of the keys int, float, log"),
        (
            {"integer": [1, 3]},
            r"^model\.x: unknown domain kind 'integer' \(did you mean 'int'\?\)",
        ),
        ({"uniform": [0, 1]}, r"^model\.x: unknown domain kind 'uniform'; use one of int, float"),
        ({"choice": []}, r"^model\.x: choice needs a non-empty list of values, got \[\]"),
        ({"choice": "relu"}, r"^model\.x: choice needs a non-empty list of values, got relu;"),
        ({"choice": [1, 2, 1]}, r"^model\.x: choice lists 1 more than once in \[1, 2, 1\]"),
        ({"choice": ["a", "a"]}, r"^model\.x: choice lists a more than once"),
        ({"int": [1, 2, 3]}, r"^model\.x: int range needs a list of two bounds \[low, high\]"),
        ({"float": 0.5}, r"^model\.x: float range needs a list of two bounds .*, got 0\.5$"),
        ({"int": [1.5, 4]}, r"^model\.x: int range bounds must be integers, got \[1\.5, 4\]; "),
        (
            {"int": [True, 4]},
            r"^model\.x: int range bounds must be finite numbers, got \[true, 4\]$",
        ),
        ({"int": ["1", 4]}, r"got \['1', 4\]; remove the quotes to make it a number$"),
        ({"float": ["a", 1.0]}, r"^model\.x: float range bounds must be finite numbers"),
        ({"float": [0.0, math.inf]}, r"^model\.x: float range bounds must be finite numbers"),
        ({"log": [1e-4, math.nan]}, r"^model\.x: log range bounds must be finite numbers"),
        ({"log": ["1e-4", 0.1]}, r"got \['1e-4', 0\.1\]; YAML reads 1e-4 as text, write 1\.0e-4$"),
        ({"int": [5, 2]}, r"^model\.x: lower bound 5 is greater than upper bound 2; swap them$"),
        ({"float": [0.5, 0.1]}, r"^model\.x: lower bound 0\.5 is greater than upper bound 0\.1"),
        ({"float": [0.2, 0.2]}, r"^model\.x: float range \[0\.2, 0\.2\] holds a single value; "),
        ({"log": [0.1, 0.1]}, r"holds a single value; write x: 0\.1 to fix it$"),
        ({"log": [0, 1]}, r"^model\.x: log range lower bound 0 must be > 0 \(a log scale"),
        ({"log": [-1.0, 1.0]}, r"^model\.x: log range lower bound -1\.0 must be > 0"),
    ],
)
def test_parse_domain_errors(raw, message):
    with pytest.raises(ValueError, match=message):
        parse_domain(raw, field="model.x")


@pytest.mark.parametrize(
    ("domain", "rule"),
    [
        (Fixed(3), {"kind": int, "ge": 1, "le": 64}),
        (IntRange(1, 64), {"kind": int, "ge": 1, "le": 64}),
        (Choice((1, 8, 64)), {"kind": int, "ge": 1, "le": 64}),
        (FloatRange(0.0, 0.99), {"kind": float, "ge": 0.0, "lt": 1.0}),
        (LogRange(1e-5, 10.0), {"kind": float, "gt": 0.0, "le": 10.0}),
        # An int range or int values are fine where reals are expected.
        (IntRange(1, 3), {"kind": float, "gt": 0.0}),
        (Fixed(0), {"kind": float, "ge": 0.0}),
        (Fixed(True), {"kind": bool}),
        (Choice((True, False)), {"kind": bool}),
        (Choice(("relu", "gelu")), {"kind": str, "options": ("relu", "gelu", "tanh")}),
    ],
)
def test_check_domain_accepts_and_returns_the_domain(domain, rule):
    assert check_domain(domain, field="f", **rule) is domain


@pytest.mark.parametrize(
    ("domain", "rule", "message"),
    [
        (Fixed(0), {"kind": int, "ge": 1}, r"^f: 0 must be >= 1$"),
        (Fixed(65), {"kind": int, "le": 64}, r"^f: 65 must be <= 64$"),
        (Fixed(0.0), {"kind": float, "gt": 0.0}, r"^f: 0\.0 must be > 0\.0$"),
        (Fixed(1.0), {"kind": float, "lt": 1.0}, r"^f: 1\.0 must be < 1\.0$"),
        (Fixed(math.nan), {"kind": float, "ge": 0.0}, r"^f: nan must be >= 0\.0$"),
        (IntRange(0, 3), {"kind": int, "ge": 1}, r"^f: lower bound 0 must be >= 1$"),
        (IntRange(2, 100), {"kind": int, "le": 64}, r"^f: upper bound 100 must be <= 64$"),
        (FloatRange(0.0, 1.0), {"kind": float, "lt": 1.0}, r"^f: upper bound 1\.0 must be < 1"),
        (LogRange(1e-3, 20.0), {"kind": float, "le": 10.0}, r"^f: upper bound 20\.0 must be <="),
        (Choice((32, 0)), {"kind": int, "ge": 1}, r"^f: 0 must be >= 1$"),
        (FloatRange(1.0, 3.0), {"kind": int}, r"^f: takes whole numbers, got a real-valued range"),
        (LogRange(1.0, 8.0), {"kind": int}, r"write \{int: \[a, b\]\}$"),
        (IntRange(0, 1), {"kind": bool}, r"^f: takes true/false, not an int range; list the"),
        (FloatRange(0.0, 1.0), {"kind": str}, r"^f: takes a string, not a numeric range; list"),
        (Fixed("three"), {"kind": int}, r"^f: expected an integer, got three$"),
        (Fixed(True), {"kind": int}, r"^f: expected an integer, got true$"),
        (Fixed(2.5), {"kind": int}, r"^f: expected an integer, got 2\.5$"),
        (Fixed("yes"), {"kind": bool}, r"^f: expected true/false, got 'yes'$"),
        (Fixed(None), {"kind": float}, r"^f: expected a number, got null$"),
        (Fixed(1), {"kind": str}, r"^f: expected a string, got 1$"),
        (Fixed("3"), {"kind": int}, r"got '3'; remove the quotes to make it a number$"),
        (Fixed("1e-3"), {"kind": float}, r"got '1e-3'; YAML reads 1e-3 as text, write 1\.0e-3$"),
        (Choice((1, True)), {"kind": int}, r"^f: expected an integer, got true$"),
        (
            Fixed("rleu"),
            {"kind": str, "options": ("relu", "gelu")},
            r"^f: unknown value rleu \(did you mean 'relu'\?\); valid values are relu, gelu$",
        ),
        (
            Choice(("relu", "swish")),
            {"kind": str, "options": ("relu", "gelu")},
            r"^f: unknown value swish; valid values are relu, gelu$",
        ),
    ],
)
def test_check_domain_errors(domain, rule, message):
    with pytest.raises(ValueError, match=message):
        check_domain(domain, field="f", **rule)


@pytest.mark.parametrize(
    ("domain", "expected"),
    [
        (Fixed(7), (7,)),
        (Fixed(None), (None,)),
        (Choice(("a", "b", "c")), ("a", "b", "c")),
        (IntRange(2, 5), (2, 3, 4, 5)),
        (IntRange(4, 4), (4,)),
        (FloatRange(0.0, 1.0), None),
        (LogRange(1e-4, 1e-1), None),
    ],
)
def test_domain_values(domain, expected):
    assert domain_values(domain) == expected


@pytest.mark.parametrize(
    ("domain", "expected"),
    [
        (Fixed(3), False),
        (IntRange(1, 2), True),
        (FloatRange(0.0, 1.0), True),
        (LogRange(0.1, 1.0), True),
        (Choice((1,)), True),
    ],
)
def test_is_searched(domain, expected):
    assert is_searched(domain) is expected


@pytest.mark.parametrize(
    ("word", "candidates", "expected"),
    [
        ("rleu", ("relu", "gelu", "tanh"), " (did you mean 'relu'?)"),
        ("optimiser", ("model", "optimizer"), " (did you mean 'optimizer'?)"),
        ("3", (1, 3, 5), " (did you mean '3'?)"),
        ("xyz", ("relu", "gelu"), ""),
        ("anything", (), ""),
    ],
)
def test_did_you_mean(word, candidates, expected):
    assert did_you_mean(word, candidates) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, "true"),
        (None, "null"),
        (3, "3"),
        ("relu", "relu"),
        ("my search", "my search"),
        # Text YAML would read as something else is quoted; line breaks stay escaped.
        ("3", "'3'"),
        ("yes", "'yes'"),
        ("", "''"),
        ("a\nb", "'a\\nb'"),
        ([1, "x", None], "[1, x, null]"),
        ({"int": [2, 6]}, "{int: [2, 6]}"),
    ],
)
def test_show_value(value, expected):
    assert show_value(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1e-3", "; YAML reads 1e-3 as text, write 1.0e-3"),
        ("1.0e5", "; YAML reads 1.0e5 as text, write 1.0e+5"),
        ("-2E4", "; YAML reads -2E4 as text, write -2.0e+4"),
        ("12", "; remove the quotes to make it a number"),
        ("nan", ""),
        ("relu", ""),
        (0.001, ""),
    ],
)
def test_number_text_hint(value, expected):
    assert number_text_hint(value) == expected


@pytest.mark.parametrize("text", ["1e-3", "1.0e5", "-2E4", "5e+2"])
def test_number_text_hint_suggests_what_yaml_reads_as_that_number(text):
    yaml = pytest.importorskip("yaml")
    suggestion = number_text_hint(text).rpartition("write ")[2]

    assert yaml.safe_load(text) == text
    assert yaml.safe_load(suggestion) == float(text)

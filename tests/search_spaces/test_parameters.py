"""Tests for search_spaces.parameters: flat names, conditions, samples back into configs."""

from __future__ import annotations

import pytest

from search_spaces.domains import Choice, Domain, Fixed, FloatRange, IntRange, LogRange
from search_spaces.parameters import (
    CONDITIONS,
    Condition,
    Parameter,
    check_conditions,
    flat_values,
    flatten,
    resolve,
    searched,
    value_kind,
)

SGD_OR_ADAM = Choice(("sgd", "adam"))


def _sections(optimizer_name: Domain = SGD_OR_ADAM) -> dict[str, dict]:
    # Sections given out of SEARCHABLE_SECTIONS order, to show flatten imposes that order.
    return {
        "optimizer": {
            "name": optimizer_name,
            "lr": LogRange(1e-4, 1e-1),
            "momentum": FloatRange(0.5, 0.95),
            "batch_size": Fixed(32),
        },
        "model": {"family": Fixed("mlp"), "depth": IntRange(1, 3), "width": Choice((16, 32))},
        "regularization": {"dropout": FloatRange(0.0, 0.5), "l2": Fixed(0.0)},
    }


def test_flatten_names_and_order():
    parameters = flatten(_sections())

    assert [p.name for p in parameters] == [
        "model.family",
        "model.depth",
        "model.width",
        "regularization.dropout",
        "regularization.l2",
        "optimizer.name",
        "optimizer.lr",
        "optimizer.momentum",
        "optimizer.batch_size",
    ]
    assert parameters[1].domain == IntRange(1, 3)
    assert parameters[4].domain == Fixed(0.0)


def test_flatten_ignores_sections_that_are_not_searchable():
    parameters = flatten({"model": {"depth": Fixed(2)}, "training": {"epochs": Fixed(3)}})

    assert [p.name for p in parameters] == ["model.depth"]


def test_flatten_attaches_conditions_only_where_defined():
    by_name = {p.name: p for p in flatten(_sections())}

    assert by_name["optimizer.momentum"].condition == Condition(
        "optimizer.name", ("sgd", "rmsprop")
    )
    assert by_name["optimizer.momentum"].condition is CONDITIONS["optimizer.momentum"]
    assert all(p.condition is None for n, p in by_name.items() if n != "optimizer.momentum")


def test_searched_keeps_only_searched_parameters():
    names = [p.name for p in searched(flatten(_sections()))]

    assert names == [
        "model.depth",
        "model.width",
        "regularization.dropout",
        "optimizer.name",
        "optimizer.lr",
        "optimizer.momentum",
    ]
    assert Parameter("a.b", Fixed(1)).searched is False
    assert Parameter("a.b", Choice((1,))).searched is True


@pytest.mark.parametrize(
    ("config", "holds"),
    [
        ({"optimizer.name": "sgd"}, True),
        ({"optimizer.name": "rmsprop"}, True),
        ({"optimizer.name": "adam"}, False),
        ({}, False),
    ],
)
def test_condition_holds(config, holds):
    assert CONDITIONS["optimizer.momentum"].holds(config) is holds


def _sample(name: str) -> dict:
    return {
        "model.depth": 2,
        "model.width": 32,
        "regularization.dropout": 0.1,
        "optimizer.name": name,
        "optimizer.lr": 0.01,
        "optimizer.momentum": 0.8,
    }


def test_resolve_fills_fixed_values_and_nests_by_section():
    config = resolve(flatten(_sections()), _sample("sgd"))

    assert config == {
        "model": {"family": "mlp", "depth": 2, "width": 32},
        "regularization": {"dropout": 0.1, "l2": 0.0},
        "optimizer": {"name": "sgd", "lr": 0.01, "momentum": 0.8, "batch_size": 32},
    }


def test_resolve_sets_momentum_to_none_for_adam():
    config = resolve(flatten(_sections()), _sample("adam"))

    assert config["optimizer"]["momentum"] is None
    assert config["optimizer"]["lr"] == 0.01


def test_resolve_applies_conditions_to_fixed_values_too():
    parameters = flatten(_sections(optimizer_name=Fixed("adam")))
    sample = {k: v for k, v in _sample("adam").items() if k != "optimizer.name"}

    assert resolve(parameters, sample)["optimizer"]["momentum"] is None


def test_resolve_ignores_extra_sample_keys_and_fixed_values_win():
    sample = {**_sample("sgd"), "optimizer.batch_size": 999, "model.unknown": 1}

    config = resolve(flatten(_sections()), sample)

    assert config["optimizer"]["batch_size"] == 32
    assert "unknown" not in config["model"]


def test_resolve_always_returns_every_searchable_section():
    assert resolve(flatten({"model": {"depth": Fixed(2)}}), {}) == {
        "model": {"depth": 2},
        "regularization": {},
        "optimizer": {},
    }


def test_resolve_raises_key_error_on_a_missing_sampled_name():
    sample = _sample("sgd")
    del sample["optimizer.lr"]

    with pytest.raises(KeyError, match="the strategy did not sample optimizer.lr"):
        resolve(flatten(_sections()), sample)


def test_flat_values_inverts_the_nesting_of_resolve():
    parameters = flatten(_sections())
    config = resolve(parameters, _sample("sgd"))

    flat = flat_values(config)

    fixed = {"model.family": "mlp", "regularization.l2": 0.0, "optimizer.batch_size": 32}
    assert flat == {**_sample("sgd"), **fixed}
    assert list(flat) == [p.name for p in parameters]


def test_check_conditions_accepts_a_parent_that_can_switch_the_parameter_on():
    check_conditions(flatten(_sections(optimizer_name=Choice(("adam", "rmsprop")))))
    check_conditions(flatten(_sections(optimizer_name=Fixed("sgd"))))


def test_check_conditions_accepts_a_fixed_parameter_whatever_the_parent():
    sections = _sections(optimizer_name=Fixed("adam"))
    sections["optimizer"]["momentum"] = Fixed(0.9)

    check_conditions(flatten(sections))


def test_check_conditions_accepts_a_parameter_whose_parent_is_absent():
    check_conditions(flatten({"optimizer": {"momentum": FloatRange(0.1, 0.9)}}))


@pytest.mark.parametrize("name", [Fixed("adam"), Choice(("adam",))])
def test_check_conditions_refuses_momentum_searched_while_always_adam(name):
    message = (
        r"^optimizer\.momentum: is searched but optimizer\.name is never one of sgd, rmsprop, "
        r"so it has no effect; remove optimizer\.momentum or add one of those to optimizer\.name$"
    )
    with pytest.raises(ValueError, match=message):
        check_conditions(flatten(_sections(optimizer_name=name)))


def test_check_conditions_refuses_nesterov_searched_without_sgd():
    sections = _sections(optimizer_name=Choice(("adam", "rmsprop")))
    sections["optimizer"]["nesterov"] = Choice((True, False))

    with pytest.raises(ValueError, match=r"^optimizer\.nesterov: .* never one of sgd, so"):
        check_conditions(flatten(sections))


@pytest.mark.parametrize(
    ("domain", "kind"),
    [
        (Fixed(True), bool),
        (Choice((True, False)), bool),
        (Fixed(3), int),
        (IntRange(1, 4), int),
        (Choice((16, 32)), int),
        (Fixed(0.5), float),
        (FloatRange(0.0, 1.0), float),
        (LogRange(1e-4, 1e-1), float),
        (Choice((1, 2.5)), float),
        (Fixed("relu"), str),
        (Choice(("relu", "gelu")), str),
        (Choice((1, "a")), str),
        (Choice((True, 1)), str),
        (Choice((None, 3)), int),
        (Fixed(None), str),
    ],
)
def test_value_kind(domain, kind):
    assert value_kind(domain) is kind

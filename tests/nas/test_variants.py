"""Grid and random search plans, sampled from Tune's generator directly (no Ray cluster)."""

from __future__ import annotations

import logging
import math
import re
import statistics
from pathlib import Path
from typing import Any

import pytest

from nas.strategies import SearchPlan, build_search, sampled_values
from nas.variants import GRID_KEY, grid_points
from search_spaces.domains import Choice, Fixed, FloatRange, IntRange, LogRange
from search_spaces.errors import SpecError
from search_spaces.parameters import Parameter, flatten, resolve


def _trainable(config: dict[str, Any]) -> None:
    """Reports a score of the sampled values (Tune also needs it to build trials from a spec)."""
    from ray import tune

    values = sampled_values(config)
    for epoch in (1, 2):
        score = values["model.depth"] + epoch / 10
        tune.report({"epoch": epoch, "accuracy": score, "last_report": epoch == 2})


def _experiment(plan: SearchPlan, num_samples: int, storage: Path) -> dict[str, Any]:
    # Tune writes a marker file to check the storage path, so point it at a scratch folder.
    spec = {"run": _trainable, "config": plan.param_space, "num_samples": num_samples}
    return {"exp": {**spec, "storage_path": str(storage)}}


def _configs(plan: SearchPlan, storage: Path) -> list[dict[str, Any]]:
    """Every trial config the plan's generator produces, in order."""
    generator = plan.search_alg
    generator.add_configurations(_experiment(plan, plan.num_samples, storage))
    configs = []
    while (trial := generator.next_trial()) is not None:
        configs.append(trial.config)
    assert generator.is_finished()
    return configs


def _plan(parameters: list[Parameter], strategy: str, **overrides: Any) -> SearchPlan:
    options = {"trials": None, "metric": "accuracy", "mode": "max", "seed": 0, "max_concurrent": 0}
    return build_search(parameters, strategy=strategy, **{**options, **overrides})


SPACE = flatten(
    {
        "model": {
            "family": Fixed("mlp"),
            "depth": IntRange(1, 3),
            "activation": Choice(("relu", "gelu")),
        },
        "regularization": {"dropout": FloatRange(0.0, 0.5), "batch_norm": Choice((True, False))},
        "optimizer": {"lr": LogRange(1.0e-4, 1.0), "batch_size": Choice((32, 64))},
    }
)
SEARCHED = {p.name for p in SPACE if p.searched}


# --- random -------------------------------------------------------------------------------


def test_random_configs_hold_exactly_the_searched_names_with_plain_values(tmp_path: Path) -> None:
    configs = _configs(_plan(SPACE, "random", trials=300), tmp_path)

    assert len(configs) == 300
    for config in configs:
        assert set(config) == SEARCHED
        assert type(config["model.depth"]) is int
        assert type(config["optimizer.batch_size"]) is int
        assert type(config["regularization.batch_norm"]) is bool
        assert config["model.activation"] in ("relu", "gelu")
        assert type(config["regularization.dropout"]) is float
        assert 0.0 <= config["regularization.dropout"] <= 0.5
        assert 1.0e-4 <= config["optimizer.lr"] <= 1.0

    # Tune's randint excludes its upper bound; ours must still be drawn.
    assert {c["model.depth"] for c in configs} == {1, 2, 3}


def test_random_log_range_spans_decades_around_the_geometric_mean(tmp_path: Path) -> None:
    configs = _configs(_plan(SPACE, "random", trials=400), tmp_path)
    exponents = [math.log10(c["optimizer.lr"]) for c in configs]

    # Uniform in log10 over [-4, 0]: a uniform draw in lr would put almost nothing below 1e-2.
    assert min(exponents) < -3.5 and max(exponents) > -0.5
    assert statistics.median(exponents) == pytest.approx(-2.0, abs=0.3)
    assert sum(e < -2 for e in exponents) == pytest.approx(200, abs=40)


def test_random_same_seed_same_configs_other_seed_other_configs(tmp_path: Path) -> None:
    first = _configs(_plan(SPACE, "random", trials=10, seed=7), tmp_path)
    again = _configs(_plan(SPACE, "random", trials=10, seed=7), tmp_path)
    other = _configs(_plan(SPACE, "random", trials=10, seed=8), tmp_path)

    assert first == again
    assert first != other


def test_random_plan_sizes_and_default_trials() -> None:
    plan = _plan(SPACE, "random", trials=None)
    assert (plan.num_samples, plan.total_trials) == (20, 20)
    assert set(plan.param_space) == SEARCHED


def test_random_respects_max_concurrent(tmp_path: Path) -> None:
    plan = _plan(SPACE, "random", trials=5, max_concurrent=2)
    plan.search_alg.add_configurations(_experiment(plan, 5, tmp_path))
    started = [plan.search_alg.next_trial() for _ in range(3)]
    assert started[2] is None and all(t is not None for t in started[:2])


# --- grid ---------------------------------------------------------------------------------

GRID_SPACE = flatten(
    {
        "model": {
            "family": Fixed("mlp"),
            "depth": IntRange(2, 4),
            "activation": Choice(("relu", "gelu")),
        },
        "optimizer": {"lr": Fixed(0.01)},
    }
)


def test_grid_enumerates_every_combination_in_product_order(tmp_path: Path) -> None:
    plan = _plan(GRID_SPACE, "grid")

    expected = [
        {"model.depth": d, "model.activation": a} for d in (2, 3, 4) for a in ("relu", "gelu")
    ]
    assert (plan.num_samples, plan.total_trials) == (1, 6)
    configs = _configs(plan, tmp_path)
    assert [sampled_values(c) for c in configs] == expected
    assert all(set(c) == {GRID_KEY} for c in configs)


def test_grid_order_is_the_same_on_every_build(tmp_path: Path) -> None:
    first = [sampled_values(c) for c in _configs(_plan(GRID_SPACE, "grid", seed=1), tmp_path)]
    again = [sampled_values(c) for c in _configs(_plan(GRID_SPACE, "grid", seed=1), tmp_path)]
    assert first == again


OPTIMIZER_SPACE = flatten(
    {
        "optimizer": {
            "name": Choice(("sgd", "adam", "rmsprop")),
            "momentum": Choice((0.0, 0.5, 0.9)),
            "nesterov": Choice((True, False)),
        }
    }
)


def test_grid_collapses_parameters_their_condition_switches_off() -> None:
    points = grid_points(OPTIMIZER_SPACE)

    # sgd: 3 momenta x 2 nesterov; adam: neither applies; rmsprop: momentum only.
    by_name = {
        name: [p for p in points if p["optimizer.name"] == name]
        for name in ("sgd", "adam", "rmsprop")
    }
    assert [len(by_name[n]) for n in ("sgd", "adam", "rmsprop")] == [6, 1, 3]
    assert len(points) == 10

    # Inactive parameters hold the first value, and every point resolves to a distinct config.
    assert by_name["adam"] == [
        {"optimizer.name": "adam", "optimizer.momentum": 0.0, "optimizer.nesterov": True}
    ]
    assert {p["optimizer.nesterov"] for p in by_name["rmsprop"]} == {True}
    resolved = {repr(resolve(OPTIMIZER_SPACE, p)) for p in points}
    assert len(resolved) == 10


def test_grid_condition_on_a_fixed_parent() -> None:
    space = flatten({"optimizer": {"name": Fixed("adam"), "momentum": Choice((0.0, 0.9))}})
    assert grid_points(space) == [{"optimizer.momentum": 0.0}]


def test_grid_with_nothing_searched_is_one_empty_point(tmp_path: Path) -> None:
    plan = _plan(flatten({"model": {"depth": Fixed(3)}}), "grid")
    assert plan.total_trials == 1
    assert [sampled_values(c) for c in _configs(plan, tmp_path)] == [{}]


@pytest.mark.parametrize(
    ("domain", "shown"),
    [
        (LogRange(1.0e-4, 1.0e-1), "{log: [0.0001, 0.1]}"),
        (FloatRange(0.0, 0.5), "{float: [0.0, 0.5]}"),
    ],
)
def test_grid_refuses_a_continuous_range(domain: LogRange | FloatRange, shown: str) -> None:
    space = flatten({"model": {"depth": IntRange(1, 2)}, "optimizer": {"lr": domain}})
    message = (
        f"search.strategy: grid cannot enumerate optimizer.lr, a continuous range {shown}; "
        "list values with {choice: [...]} or use strategy random"
    )
    with pytest.raises(SpecError, match=f"^{re.escape(message)}$"):
        _plan(space, "grid")


def test_grid_refuses_fewer_trials_than_points() -> None:
    with pytest.raises(
        SpecError,
        match=r"^search\.trials: 4 is fewer than the 6 points of the grid; .*set it to 6",
    ):
        _plan(GRID_SPACE, "grid", trials=4)


def test_grid_runs_whole_grid_when_more_trials_asked(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="nas.strategies"):
        plan = _plan(GRID_SPACE, "grid", trials=50)
    assert plan.total_trials == 6
    assert "search.trials is 50 but the grid has 6 points" in caplog.text


# --- shared -------------------------------------------------------------------------------


def test_sampled_values_keeps_parameter_names_only() -> None:
    config = {"model.depth": 3, "optimizer.lr": 0.1, "data_ref": object(), "seed": 1}
    assert sampled_values(config) == {"model.depth": 3, "optimizer.lr": 0.1}
    assert sampled_values({GRID_KEY: {"model.depth": 2}, "seed": 1}) == {"model.depth": 2}


def test_sampled_values_turns_numpy_scalars_into_python() -> None:
    import numpy as np

    values = sampled_values({"model.depth": np.int64(3), "optimizer.lr": np.float64(0.5)})
    assert values == {"model.depth": 3, "optimizer.lr": 0.5}
    assert type(values["model.depth"]) is int and type(values["optimizer.lr"]) is float


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (
            {"strategy": "gird"},
            r"^search\.strategy: unknown strategy 'gird' \(did you mean 'grid'\?\)",
        ),
        ({"mode": "maximize"}, r"^evaluation\.mode: must be min or max, got 'maximize'"),
        ({"trials": 0}, r"^search\.trials: 0 must be >= 1"),
    ],
)
def test_build_search_refuses_bad_settings(overrides: dict[str, Any], match: str) -> None:
    options = {"strategy": "random", **overrides}
    with pytest.raises(SpecError, match=match):
        _plan(SPACE, **options)


# --- a real Tune run ----------------------------------------------------------------------


@pytest.mark.slow
def test_tune_runs_every_grid_point_once(local_ray: object, tmp_path: Path) -> None:
    from ray import tune

    space = flatten(
        {
            "model": {"depth": IntRange(1, 2)},
            "optimizer": {"name": Choice(("sgd", "adam")), "momentum": Choice((0.0, 0.9))},
        }
    )
    plan = _plan(space, "grid", max_concurrent=1)
    tuner = tune.Tuner(
        _trainable,
        param_space=plan.param_space,
        tune_config=tune.TuneConfig(search_alg=plan.search_alg, num_samples=plan.num_samples),
        run_config=tune.RunConfig(storage_path=str(tmp_path), name="grid", verbose=0),
    )
    results = tuner.fit()

    # 2 depths x (sgd x 2 momenta + adam): 6 trials, not 8.
    assert plan.total_trials == len(results) == 6 and results.num_errors == 0
    seen = sorted(tuple(sampled_values(r.config).values()) for r in results)
    expected = [(d, "sgd", m) for d in (1, 2) for m in (0.0, 0.9)] + [
        (1, "adam", 0.0),
        (2, "adam", 0.0),
    ]
    assert seen == sorted(expected)
    assert sorted(r.metrics["accuracy"] for r in results) == pytest.approx([1.2] * 3 + [2.2] * 3)

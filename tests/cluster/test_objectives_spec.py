"""Spec fields of multi-objective searches: objectives, cost bounds, compression settings."""

from __future__ import annotations

from cluster.spec import parse_spec
from nas.objectives import Objective, violations


def _spec(**sections) -> dict:
    return {"name": "t", "data": {"dataset": "digits"}, "model": {"family": "mlp"}, **sections}


def test_first_metric_among_the_objectives_is_the_primary_one() -> None:
    objectives = [{"latency_ms": "min"}, {"f1": "max"}, {"accuracy": "max"}]
    spec = parse_spec(_spec(evaluation={"objectives": objectives}))

    assert (spec.objective, spec.mode) == ("f1_mean", "max")
    assert spec.multi_objective
    assert [(o.key, o.mode) for o in spec.objectives] == [
        ("latency_ms", "min"),
        ("f1_mean", "max"),
        ("accuracy_mean", "max"),
    ]


def test_a_metric_named_among_the_objectives_stays_primary() -> None:
    objectives = [{"accuracy": "max"}, {"f1": "max"}, {"macs": "min"}]
    spec = parse_spec(_spec(evaluation={"metric": "f1", "objectives": objectives}))
    assert spec.objective == "f1_mean"


def test_without_objectives_the_metric_is_the_only_objective() -> None:
    spec = parse_spec(_spec(evaluation={"metric": "accuracy"}))
    assert spec.objectives == [Objective("accuracy", "max")] and not spec.multi_objective
    assert spec.search.constraints.bounds() == {}
    assert spec.compression.prune_rates == [0.5] and spec.compression.quantize


def test_bounds_and_their_violations() -> None:
    spec = parse_spec(_spec(search={"constraints": {"max_params": 1000, "max_latency_ms": 0.5}}))
    bounds = spec.search.constraints.bounds()
    assert bounds == {"max_params": 1000, "max_latency_ms": 0.5}

    within = {"params_count": 1000, "macs": 10**9, "latency_ms": 0.5}
    assert violations(within, bounds) == []
    over = {"params_count": 1001, "macs": 1, "latency_ms": 0.61234}
    assert violations(over, bounds) == [
        "params_count 1001 > max_params 1000",
        "latency_ms 0.612 > max_latency_ms 0.5",
    ]

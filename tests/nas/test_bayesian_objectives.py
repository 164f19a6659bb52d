"""BayesianSearch with several objectives and cost bounds, driven as Tune drives it (real Ax)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ax.core.optimization_config import MultiObjectiveOptimizationConfig

from nas.bayesian import BayesianSearch
from nas.numbering import FinishedTrial
from nas.objectives import INFEASIBLE_KEY, Objective
from search_spaces.domains import Choice, Fixed, LogRange
from search_spaces.parameters import flatten

SPACE = flatten(
    {
        "model": {"family": Fixed("mlp"), "width": Choice((8, 64, 512))},
        "optimizer": {"lr": LogRange(1.0e-3, 1.0e-1)},
    }
)
OBJECTIVES = [Objective("accuracy", "max"), Objective("latency_ms", "min")]
BOUND = 10_000


def _search(state_path: Path | None = None) -> BayesianSearch:
    # Seed 2's two Sobol points are widths 64 and 512: one feasible, one over the bound. The
    # test stays within Sobol's start, since each multi-objective BoTorch step takes Ax a
    # minute on a busy 2-core machine.
    return BayesianSearch(
        SPACE,
        metric="accuracy_mean",
        mode="max",
        seed=2,
        max_trials=6,
        state_path=None if state_path is None else str(state_path),
        objectives=OBJECTIVES,
        bounds={"max_params": BOUND},
    )


def _result(config: dict[str, Any]) -> dict[str, Any]:
    """What a trial would report: wider is more accurate, slower and bigger."""
    width = config["model.width"]
    params = 70 * width
    result = {"params_count": params, "latency_ms": 0.01 * width, "last_report": True}
    if params > BOUND:
        return result | {INFEASIBLE_KEY: True, "accuracy_mean": math.nan}
    return result | {"accuracy_mean": 1.0 - 1.0 / width}


def _run(search: BayesianSearch, trials: int) -> list[dict[str, Any]]:
    configs = []
    for i in range(trials):
        config = search.suggest(f"t{i}")
        assert isinstance(config, dict)
        search.on_trial_complete(f"t{i}", _result(config))
        configs.append(config)
    return configs


def test_ax_optimises_every_objective_under_the_bound() -> None:
    search = _search()
    config = search.client._experiment.optimization_config

    assert isinstance(config, MultiObjectiveOptimizationConfig)
    assert config.objective.expression == "m_accuracy_mean, -m_latency_ms"
    (constraint,) = config.outcome_constraints
    assert str(constraint) == f"OutcomeConstraint(m_params_count <= {float(BOUND)})"


def test_infeasible_trials_hand_ax_their_costs_and_the_others_every_value() -> None:
    search = _search()
    configs = _run(search, 2)

    trials = search.client._experiment.trials
    data = search.client._experiment.lookup_data().df
    for index, config in enumerate(configs):
        assert trials[index].status.is_completed
        metrics = set(data[data.trial_index == index].metric_name)
        if config["model.width"] == 512:  # 35,840 parameters: over the bound
            assert metrics == {"m_params_count"}
        else:
            assert metrics == {"m_accuracy_mean", "m_latency_ms", "m_params_count"}
    assert [c["model.width"] for c in configs] == [64, 512]


def test_resume_tells_ax_the_recorded_costs_and_objectives(tmp_path: Path) -> None:
    state = tmp_path / "strategy.json"
    first = _search(state)
    configs = [first.suggest(f"t{i}") for i in range(2)]  # the driver dies before results

    finished = {}
    for index, config in enumerate(configs):
        result = _result(config)
        others = {k: v for k, v in result.items() if k in ("params_count", "latency_ms")}
        finished[index] = FinishedTrial(
            number=index,
            value=result["accuracy_mean"],
            others=others,
            infeasible=bool(result.get(INFEASIBLE_KEY)),
        )
    resumed = _search(state)
    resumed.resume(finished)

    data = resumed.client._experiment.lookup_data().df
    for index in range(len(configs)):
        assert resumed.client._experiment.trials[index].status.is_completed
        expected = {"m_params_count"}
        if not finished[index].infeasible:
            expected |= {"m_accuracy_mean", "m_latency_ms"}
        assert set(data[data.trial_index == index].metric_name) == expected

"""BayesianSearch driven directly, as Tune would drive it, plus one real (slow) Tune run.

Ax's import takes a few seconds once per session; each search here runs a handful of trials,
most of them from Ax's Sobol start, so that BoTorch's model fits stay few.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from ray.tune.search import ConcurrencyLimiter, Searcher

from nas.bayesian import (
    BayesianSearch,
    _choice_encoding,
    _dependents,
    _dimensions,
    _space_size,
)
from nas.numbering import TRIAL_NUMBER_KEY
from nas.strategies import build_scheduler, build_search, sampled_values
from search_spaces.domains import Choice, Fixed, FloatRange, IntRange, LogRange
from search_spaces.errors import SpecError, StoreError
from search_spaces.parameters import Parameter, flatten

SPACE = flatten(
    {
        "model": {
            "family": Fixed("mlp"),
            "depth": IntRange(1, 4),
            "width": Choice((16, 32, 64)),
            "activation": Choice(("relu", "gelu", "tanh")),
        },
        "optimizer": {
            "name": Choice(("sgd", "adam", "rmsprop")),
            "lr": LogRange(1.0e-4, 1.0e-1),
            "momentum": FloatRange(0.0, 0.99),
            "nesterov": Choice((True, False)),
        },
    }
)
SEARCHED = [p.name for p in SPACE if p.searched]


def _search(
    parameters: list[Parameter] = SPACE, *, max_trials: int = 4, seed: int = 0, mode: str = "max"
) -> BayesianSearch:
    return BayesianSearch(
        parameters, metric="accuracy", mode=mode, seed=seed, max_trials=max_trials
    )


def _score(config: dict[str, Any]) -> float:
    """A synthetic objective: best at lr = 1e-2, better with fewer layers."""
    return -((math.log10(config["optimizer.lr"]) + 2.0) ** 2) - config["model.depth"] / 10


def _statuses(search: BayesianSearch) -> list[str]:
    return search.client.summarize()["trial_status"].tolist()


def test_suggestions_are_plain_values_within_bounds() -> None:
    search = _search(max_trials=4)

    configs = []
    for i in range(4):
        config = search.suggest(f"t{i}")
        search.on_trial_complete(f"t{i}", {"accuracy": _score(config), "last_report": True})
        configs.append(config)

    # Each config carries Ax's trial index as the trial's stable number, after the parameters.
    assert [config.pop(TRIAL_NUMBER_KEY) for config in configs] == [0, 1, 2, 3]
    for config in configs:
        assert list(config) == SEARCHED
        assert type(config["model.depth"]) is int and 1 <= config["model.depth"] <= 4
        assert type(config["model.width"]) is int and config["model.width"] in (16, 32, 64)
        assert config["model.activation"] in ("relu", "gelu", "tanh")
        assert config["optimizer.name"] in ("sgd", "adam", "rmsprop")
        assert type(config["optimizer.lr"]) is float and 1e-4 <= config["optimizer.lr"] <= 0.1
        assert 0.0 <= config["optimizer.momentum"] <= 0.99
        # Ax leaves nesterov out unless the optimizer is sgd; the config still holds a bool.
        assert type(config["optimizer.nesterov"]) is bool

    # Ax starts at the centre of the space; on a log scale that is the geometric mean of the
    # lr bounds (a linear scale would give 0.05), and the middle of the width choices.
    assert configs[0]["optimizer.lr"] == pytest.approx(10**-2.5)
    assert configs[0]["model.width"] == 32

    summary = search.client.summarize()
    assert summary["trial_status"].tolist() == ["COMPLETED"] * 4
    assert "MBM" in summary["generation_node"].tolist()  # BoTorch proposed some of them
    assert summary["objective"].tolist() == pytest.approx([_score(c) for c in configs])


def test_same_seed_same_suggestions() -> None:
    def first_three(seed: int) -> list[dict[str, Any]]:
        search = _search(max_trials=5, seed=seed)
        return [search.suggest(f"t{i}") for i in range(3)]

    assert first_three(3) == first_three(3)
    assert first_three(3) != first_three(4)


def test_condition_becomes_an_ax_hierarchy_where_one_parent_value_switches_it_on() -> None:
    # momentum applies under sgd and rmsprop: Ax's tree cannot hang it under both.
    assert _dependents(_dimensions(SPACE), SPACE) == {
        "optimizer.name": {"sgd": ["optimizer_nesterov"]}
    }

    two = flatten(
        {
            "optimizer": {
                "name": Choice(("sgd", "adam")),
                "momentum": FloatRange(0.0, 0.9),
                "nesterov": Choice((True, False)),
            }
        }
    )
    assert _dependents(_dimensions(two), two) == {
        "optimizer.name": {"sgd": ["optimizer_momentum", "optimizer_nesterov"]}
    }


@pytest.mark.parametrize(
    ("values", "ax_type", "ax_values"),
    [
        ((True, False), "bool", (True, False)),
        ((16, 32), "int", (16, 32)),
        ((0, 0.5), "float", (0.0, 0.5)),
        (("relu", "gelu"), "str", ("relu", "gelu")),
        ((1, 1.0), "str", ("0:1", "1:1.0")),
        ((None, "auto", 3), "str", ("0:null", "1:auto", "2:3")),
    ],
)
def test_choice_encoding(values: tuple, ax_type: str, ax_values: tuple) -> None:
    assert _choice_encoding(values) == (ax_type, ax_values)


def test_mixed_choice_comes_back_as_given() -> None:
    space = flatten({"model": {"width": Choice((None, "auto", 3)), "depth": IntRange(2, 2)}})
    search = _search(space, max_trials=3)

    for i in range(3):
        config = search.suggest(f"t{i}")
        assert config["model.depth"] == 2 and type(config["model.depth"]) is int
        assert any(
            config["model.width"] is v or config["model.width"] == v for v in (None, "auto", 3)
        )


@pytest.mark.parametrize(
    ("result", "error"),
    [
        ({"accuracy": math.nan}, False),
        ({"accuracy": math.inf}, False),
        ({"accuracy": "high"}, False),
        ({"loss": 0.1}, False),
        (None, False),
        ({"accuracy": 0.5}, True),
    ],
)
def test_unusable_results_mark_the_trial_failed(result: dict | None, error: bool) -> None:
    search = _search()
    search.suggest("t0")
    search.on_trial_complete("t0", result, error=error)

    summary = search.client.summarize()
    assert summary["trial_status"].tolist() == ["FAILED"]
    # No value reached Ax, so it has nothing to fit to.
    assert "objective" not in summary or summary["objective"].isna().all()


def test_scheduler_stopped_trial_is_early_stopped_with_its_value() -> None:
    search = _search()
    search.suggest("stopped")
    search.suggest("finished")
    search.on_trial_complete("stopped", {"accuracy": 0.25, "epoch": 2, "last_report": False})
    search.on_trial_complete("finished", {"accuracy": 0.75, "epoch": 9, "last_report": True})

    summary = search.client.summarize()
    assert summary["trial_status"].tolist() == ["EARLY_STOPPED", "COMPLETED"]
    assert summary["objective"].tolist() == [0.25, 0.75]


@pytest.mark.parametrize(("mode", "best"), [("max", 3.0), ("min", 1.0)])
def test_mode_sets_the_direction_ax_optimises(mode: str, best: float) -> None:
    search = _search(mode=mode)
    for i, value in enumerate([3.0, 1.0, 2.0]):
        search.suggest(f"t{i}")
        search.on_trial_complete(f"t{i}", {"accuracy": value})

    _, outcome, _, _ = search.client.get_best_parameterization(use_model_predictions=False)
    mean, _ = outcome["objective"]  # (mean, standard error)
    assert mean == best


def test_finished_after_max_trials() -> None:
    search = _search(max_trials=2)
    for i in range(2):
        config = search.suggest(f"t{i}")
        search.on_trial_complete(f"t{i}", {"accuracy": _score(config)})

    assert search.suggest("t2") == Searcher.FINISHED
    assert len(_statuses(search)) == 2


FINITE = flatten(
    {
        "model": {"depth": IntRange(1, 3)},
        "optimizer": {
            "name": Choice(("sgd", "adam", "rmsprop")),
            "momentum": Choice((0.0, 0.9)),
            "nesterov": Choice((True, False)),
        },
    }
)


@pytest.mark.parametrize(
    ("parameters", "size"),
    [
        # 3 depths x 2 momenta (Ax cannot make momentum dependent) x (sgd x 2 nesterov + 2).
        (FINITE, 24),
        (flatten({"model": {"activation": Choice(("relu", "gelu")), "depth": IntRange(4, 4)}}), 2),
        (SPACE, None),
    ],
)
def test_space_size_counts_what_ax_can_propose(
    parameters: list[Parameter], size: int | None
) -> None:
    dimensions = _dimensions(parameters)
    assert _space_size(dimensions, _dependents(dimensions, parameters)) == size


def test_small_finite_space_caps_the_trials() -> None:
    space = flatten({"model": {"activation": Choice(("relu", "gelu"))}})
    search = _search(space, max_trials=6)
    assert search.trial_limit == 2

    configs = []
    for i in range(2):
        configs.append(search.suggest(f"t{i}"))
        search.on_trial_complete(f"t{i}", {"accuracy": float(i)})
    assert sorted(c["model.activation"] for c in configs) == ["gelu", "relu"]
    # Asking Ax for a third would cost many seconds of rejection sampling.
    assert search.suggest("t2") == Searcher.FINISHED


def test_exhausted_ax_finishes_the_search_for_good(monkeypatch: pytest.MonkeyPatch) -> None:
    from ax.exceptions.core import SearchSpaceExhausted

    search = _search()
    calls = []

    def exhausted(**_: Any) -> dict:
        calls.append(1)
        raise SearchSpaceExhausted("nothing left")

    monkeypatch.setattr(search.client, "get_next_trials", exhausted)
    assert search.suggest("t0") == Searcher.FINISHED
    assert search.suggest("t1") == Searcher.FINISHED
    assert len(calls) == 1


def test_suggest_waits_while_ax_needs_data(monkeypatch: pytest.MonkeyPatch) -> None:
    from ax.exceptions.core import DataRequiredError

    search = _search(max_trials=2)

    def not_yet(**_: Any) -> dict:
        raise DataRequiredError("not enough data")

    with monkeypatch.context() as patch:
        patch.setattr(search.client, "get_next_trials", not_yet)
        assert search.suggest("t0") is None
    # The refused call used up nothing of the budget.
    assert isinstance(search.suggest("t0"), dict)
    assert isinstance(search.suggest("t1"), dict)


def test_completion_of_an_unknown_or_finished_trial_is_ignored() -> None:
    search = _search()
    search.suggest("t0")
    search.on_trial_complete("t0", {"accuracy": 0.5})
    search.on_trial_complete("t0", {"accuracy": 0.9})
    search.on_trial_complete("never-suggested", {"accuracy": 0.9})
    assert search.client.summarize()["objective"].tolist() == [0.5]


def test_save_and_restore_continue_the_same_experiment(tmp_path: Path) -> None:
    first = _search(max_trials=4)
    configs = {f"t{i}": first.suggest(f"t{i}") for i in range(3)}
    for trial_id in ("t0", "t1"):
        first.on_trial_complete(trial_id, {"accuracy": _score(configs[trial_id])})
    path = tmp_path / "searcher-state.json"
    first.save(str(path))

    resumed = _search(max_trials=4)
    resumed.restore(str(path))

    # The trial that was running when the search stopped reports to the resumed search.
    resumed.on_trial_complete("t2", {"accuracy": _score(configs["t2"])})
    assert _statuses(resumed) == ["COMPLETED"] * 3

    config = resumed.suggest("t3")
    assert config.pop(TRIAL_NUMBER_KEY) == 3
    assert list(config) == SEARCHED
    summary = resumed.client.summarize()
    assert summary["trial_index"].tolist() == [0, 1, 2, 3]
    assert summary["objective"].tolist()[:3] == pytest.approx(
        [_score(c) for c in configs.values()]
    )
    assert resumed.suggest("t4") == Searcher.FINISHED


def test_restore_refuses_a_search_over_other_parameters(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    _search().save(str(path))
    other = flatten({"model": {"depth": IntRange(1, 4)}})

    with pytest.raises(
        SpecError, match=r"^search: the search saved at .* searched model\.depth, "
    ):
        _search(other).restore(str(path))
    with pytest.raises(
        SpecError,
        match=r"^evaluation: .* optimised accuracy \(max\) but the spec asks for accuracy \(min\)",
    ):
        _search(mode="min").restore(str(path))


@pytest.mark.parametrize("content", ["not json", json.dumps({"format": 99})])
def test_restore_refuses_a_file_that_is_not_a_saved_search(tmp_path: Path, content: str) -> None:
    path = tmp_path / "state.json"
    path.write_text(content)
    with pytest.raises(StoreError, match=r"state\.json: "):
        _search().restore(str(path))


def test_nothing_to_search_is_a_spec_error() -> None:
    with pytest.raises(SpecError, match=r"^search\.strategy: bayesian has nothing to search"):
        _search(flatten({"model": {"depth": Fixed(3)}}))


def test_build_search_bayesian_plan() -> None:
    plan = build_search(
        SPACE,
        strategy="bayesian",
        trials=None,
        metric="accuracy",
        mode="max",
        seed=0,
        max_concurrent=2,
    )
    assert isinstance(plan.search_alg, ConcurrencyLimiter)
    assert isinstance(plan.search_alg.searcher, BayesianSearch)
    assert plan.search_alg.max_concurrent == 2
    assert (plan.param_space, plan.num_samples, plan.total_trials) == ({}, 20, 20)
    assert plan.search_alg.searcher.trial_limit == 20

    unlimited = build_search(
        SPACE,
        strategy="bayesian",
        trials=5,
        metric="accuracy",
        mode="min",
        seed=0,
        max_concurrent=0,
    )
    assert isinstance(unlimited.search_alg, BayesianSearch)


# --- a real Tune run ----------------------------------------------------------------------

EPOCHS = 3


def _trainable(config: dict[str, Any]) -> None:
    from ray import tune

    values = sampled_values(config)
    for epoch in range(1, EPOCHS + 1):
        accuracy = _score(values) + epoch / 10
        tune.report({"epoch": epoch, "accuracy": accuracy, "last_report": epoch == EPOCHS})


@pytest.mark.slow
def test_tune_runs_a_bayesian_search_end_to_end(local_ray: object, tmp_path: Path) -> None:
    from ray import tune

    plan = build_search(
        SPACE,
        strategy="bayesian",
        trials=6,
        metric="accuracy",
        mode="max",
        seed=0,
        max_concurrent=1,
    )
    scheduler = build_scheduler(
        "asha",
        metric="accuracy",
        mode="max",
        max_epochs=EPOCHS,
        grace_period=1,
        reduction_factor=2,
    )
    tuner = tune.Tuner(
        _trainable,
        param_space=plan.param_space,
        tune_config=tune.TuneConfig(
            search_alg=plan.search_alg, num_samples=plan.num_samples, scheduler=scheduler
        ),
        run_config=tune.RunConfig(storage_path=str(tmp_path), name="bayes", verbose=0),
    )
    results = tuner.fit()

    assert len(results) == plan.total_trials == 6
    assert results.num_errors == 0
    for result in results:
        assert list(sampled_values(result.config)) == SEARCHED

    # Every trial reached Ax with a value, finished or stopped by ASHA.
    summary = plan.search_alg.searcher.client.summarize()
    assert len(summary) == 6
    assert set(summary["trial_status"]) == {"COMPLETED", "EARLY_STOPPED"}
    assert summary["objective"].notna().all()

    # Tune checkpointed the searcher; the file restores into a fresh one.
    saved = list((tmp_path / "bayes").glob("searcher-state-*.pkl"))
    assert len(saved) == 1
    fresh = BayesianSearch(SPACE, metric="accuracy", mode="max", seed=0, max_trials=6)
    fresh.restore(str(saved[0]))
    assert len(fresh.client.summarize()) == 6

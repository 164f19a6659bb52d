"""Resuming a search: Bayesian from its saved Ax state, grid and random by skipping numbers.

BayesianSearch is driven by hand as Tune drives it; the variant generators run in a real
(slow-marked) Tune experiment with a trivial trainable on the session's local Ray.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from ray.tune.search import Searcher

from nas.bayesian import BayesianSearch
from nas.numbering import TRIAL_NUMBER_KEY, FinishedTrial
from nas.strategies import build_search, sampled_values
from search_spaces.domains import Choice, Fixed, FloatRange, IntRange, LogRange
from search_spaces.errors import StoreError
from search_spaces.parameters import flatten

SPACE = flatten(
    {
        "model": {"family": Fixed("mlp"), "depth": IntRange(1, 4), "width": Choice((16, 32))},
        "optimizer": {"lr": LogRange(1.0e-4, 1.0e-1), "momentum": FloatRange(0.0, 0.9)},
    }
)


def _search(path: Path, *, max_trials: int = 5) -> BayesianSearch:
    return BayesianSearch(
        SPACE, metric="accuracy", mode="max", seed=0, max_trials=max_trials, state_path=str(path)
    )


def _statuses(search: BayesianSearch) -> dict[int, str]:
    return {i: t.status.name for i, t in search.client._experiment.trials.items()}


def test_state_is_saved_after_every_new_suggestion(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    search = _search(path)
    search.suggest("t0")
    first = path.read_text()
    search.suggest("t1")

    assert path.read_text() != first
    again = _search(path)
    again.restore(str(path))
    assert sorted(again.client._experiment.trials) == [0, 1]


def test_resume_tells_ax_what_it_missed_and_reruns_what_was_in_flight(tmp_path: Path) -> None:
    # Ten trials start with five Sobol points, so no model fit slows this test down.
    path = tmp_path / "state.json"
    first = _search(path, max_trials=10)
    configs = {f"t{i}": first.suggest(f"t{i}") for i in range(3)}
    first.on_trial_complete("t0", {"accuracy": 0.5})
    # The driver dies here: trial 1 had finished and was stored, but Ax never heard of it;
    # trial 2 was still training.

    resumed = _search(path, max_trials=10)
    resumed.resume({0: FinishedTrial(0, 0.5), 1: FinishedTrial(1, 0.75, stopped_early=True)})

    assert _statuses(resumed) == {0: "COMPLETED", 1: "EARLY_STOPPED", 2: "RUNNING"}
    again = resumed.suggest("new-id")
    assert again == configs["t2"] and again[TRIAL_NUMBER_KEY] == 2

    fresh = resumed.suggest("t3")
    assert fresh[TRIAL_NUMBER_KEY] == 3
    resumed.on_trial_complete("new-id", {"accuracy": 0.6})
    resumed.on_trial_complete("t3", {"accuracy": math.nan})
    assert _statuses(resumed)[2] == "COMPLETED" and _statuses(resumed)[3] == "FAILED"
    summary = resumed.client.summarize().set_index("trial_index")["objective"]
    assert summary[1] == 0.75 and summary[2] == 0.6


def test_budget_counts_the_trials_of_both_runs_once(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    first = _search(path, max_trials=2)
    first.suggest("t0")
    config = first.suggest("t1")

    resumed = _search(path, max_trials=2)
    resumed.resume({0: FinishedTrial(0, 0.5)})
    assert resumed.suggest("again") == config
    assert resumed.suggest("t2") == Searcher.FINISHED


def test_failed_trial_from_the_store_is_failed_in_ax(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    first = _search(path)
    first.suggest("t0")

    resumed = _search(path)
    resumed.resume({0: FinishedTrial(0, math.nan)})
    assert _statuses(resumed) == {0: "FAILED"}


def test_trial_ax_had_finished_but_the_store_lacks_runs_again_untold(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    first = _search(path)
    config = first.suggest("t0")
    first.on_trial_complete("t0", {"accuracy": 0.5})
    first.suggest("t1")  # saves the state, trial 0 completed in it

    resumed = _search(path)
    resumed.resume({1: FinishedTrial(1, 0.4)})
    assert resumed.suggest("again") == config
    resumed.on_trial_complete("again", {"accuracy": 0.9})
    assert resumed.client.summarize().set_index("trial_index")["objective"][0] == 0.5


def test_resume_with_nothing_saved_and_nothing_finished_starts_anew(tmp_path: Path) -> None:
    search = _search(tmp_path / "never-written.json")
    search.resume({})
    assert search.suggest("t0")[TRIAL_NUMBER_KEY] == 0


def test_resume_without_the_saved_state_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=r"^search: 2 trials are recorded but .* is missing"):
        _search(tmp_path / "gone.json").resume(
            {0: FinishedTrial(0, 0.1), 1: FinishedTrial(1, 0.2)}
        )


def test_resume_with_trials_the_state_never_suggested_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    _search(path).suggest("t0")
    with pytest.raises(StoreError, match=r"^search: trial 3 is recorded but the Bayesian search"):
        _search(path).resume({0: FinishedTrial(0, 0.1), 3: FinishedTrial(3, 0.2)})


def test_build_search_resumes_a_bayesian_plan(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    kwargs: dict[str, Any] = {
        "strategy": "bayesian",
        "trials": 4,
        "metric": "accuracy",
        "mode": "max",
        "seed": 0,
        "max_concurrent": 0,
        "state_path": str(path),
    }
    plan = build_search(SPACE, **kwargs)
    plan.search_alg.suggest("t0")

    resumed = build_search(SPACE, finished={0: FinishedTrial(0, 0.3)}, **kwargs)
    assert resumed.total_trials == 4
    assert resumed.search_alg.suggest("t1")[TRIAL_NUMBER_KEY] == 1


# -- grid and random in a real Tune experiment -------------------------------------------------


def _echo(config: dict[str, Any]) -> None:
    from ray import tune

    tune.report({"accuracy": 0.5})


def _run_plan(strategy: str, *, finished: dict[int, FinishedTrial] | None, tmp: Path) -> dict:
    """{trial number: flat sample} of every trial Tune ran."""
    from ray import tune

    from nas.numbering import trial_number

    space = flatten(
        {
            "model": {"depth": IntRange(1, 3), "width": Choice((8, 16))},
            "optimizer": {"lr": Choice((0.1, 0.01)) if strategy == "grid" else LogRange(1e-3, 1)},
        }
    )
    plan = build_search(
        space,
        strategy=strategy,
        trials=None if strategy == "grid" else 6,
        metric="accuracy",
        mode="max",
        seed=11,
        max_concurrent=2,
        finished=finished,
    )
    tuner = tune.Tuner(
        tune.with_resources(_echo, {"cpu": 0.5}),
        param_space=plan.param_space,
        tune_config=tune.TuneConfig(search_alg=plan.search_alg, num_samples=plan.num_samples),
        run_config=tune.RunConfig(storage_path=str(tmp), name=strategy, verbose=0),
    )
    results = tuner.fit()
    return {
        trial_number(r.config, r.metrics["trial_id"]): sampled_values(r.config) for r in results
    }


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["random", "grid"])
def test_resumed_variants_skip_finished_numbers_and_keep_the_others(
    strategy: str, local_ray: object, tmp_path: Path
) -> None:
    whole = _run_plan(strategy, finished=None, tmp=tmp_path / "whole")
    done = {n: FinishedTrial(n, 0.5) for n in (0, 1, 4)}
    rest = _run_plan(strategy, finished=done, tmp=tmp_path / "rest")

    assert len(whole) == (12 if strategy == "grid" else 6)
    assert sorted(rest) == sorted(set(whole) - set(done))
    assert rest == {n: whole[n] for n in rest}

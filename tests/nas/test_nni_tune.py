"""NNI's strategies and the new schedulers inside a real Ray Tune run, on a synthetic trainable.

The trainable reports a known objective per epoch (no training), so each run costs only Tune's
own overhead: a few seconds per trial on 2 cores. Some configs diverge (NaN) or raise, to see
the strategy told of the failure and the search go on to its budget.
"""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from ray.tune.schedulers import TrialScheduler

from nas.finite_only import FiniteOnly
from nas.nni_bridge import NniSearch
from nas.strategies import build_scheduler, build_search, sampled_values
from search_spaces.domains import Choice, IntRange, LogRange
from search_spaces.parameters import flatten

SPACE = flatten(
    {
        "model": {"depth": IntRange(1, 3), "width": Choice((8, 16, 32))},
        "optimizer": {"lr": LogRange(1e-3, 1e-1)},
    }
)
EPOCHS = 3


def _trainable(config: dict[str, Any]) -> None:
    from ray import tune

    values = sampled_values(config)
    if values["model.width"] == 8 and values["model.depth"] == 1:
        raise RuntimeError("this candidate cannot be built")
    for epoch in range(1, EPOCHS + 1):
        if values["model.width"] == 8 and values["model.depth"] == 3:
            accuracy = math.nan  # diverged
        else:
            accuracy = values["model.depth"] / 10 - abs(math.log10(values["optimizer.lr"]) + 2)
            accuracy += epoch / 100
        tune.report({"epoch": epoch, "accuracy": accuracy, "last_report": epoch == EPOCHS})


@pytest.mark.slow
@pytest.mark.parametrize(
    ("strategy", "scheduler"), [("evolution", "median"), ("tpe", "asha"), ("rl", "asha")]
)
def test_tune_runs_the_budget_and_tells_nni_of_failures(
    local_ray: object, tmp_path: Path, strategy: str, scheduler: str
) -> None:
    from ray import tune

    plan = build_search(
        SPACE,
        strategy=strategy,
        trials=6,
        metric="accuracy",
        mode="max",
        seed=1,
        max_concurrent=2,
    )
    tuner = tune.Tuner(
        _trainable,
        param_space=plan.param_space,
        tune_config=tune.TuneConfig(
            search_alg=plan.search_alg,
            num_samples=plan.num_samples,
            scheduler=build_scheduler(
                scheduler,
                metric="accuracy",
                mode="max",
                max_epochs=EPOCHS,
                grace_period=1,
                reduction_factor=3,
            ),
        ),
        run_config=tune.RunConfig(storage_path=str(tmp_path), name=strategy, verbose=0),
    )
    results = tuner.fit()

    assert len(results) == plan.total_trials == 6
    samples = [sampled_values(r.config) for r in results]
    assert len({tuple(sorted(s.items())) for s in samples}) == 6

    searcher: NniSearch = plan.search_alg
    # The strategy's thread ended with the budget, without anyone closing the search.
    searcher._thread.join(timeout=30)
    assert not searcher._thread.is_alive()
    entries = [e for e in searcher._seen.values() if e is not None]
    assert len(entries) == 6
    for entry in entries:
        bad = entry.sample["model.width"] == 8 and entry.sample["model.depth"] in (1, 3)
        if entry.model is None:
            continue  # a filler: no strategy asked for it
        if bad:
            assert entry.model.status.value == "failed" and entry.model.metric is None
        else:
            assert entry.model.status.value == "trained" and math.isfinite(entry.model.metric)


def _scheduler(name: str, **overrides: Any) -> FiniteOnly:
    options = {
        "metric": "accuracy",
        "mode": "max",
        "max_epochs": 9,
        "grace_period": 1,
        "reduction_factor": 3,
    }
    return build_scheduler(name, **{**options, **overrides})


class _Trial:
    """The little of Tune's Trial that the schedulers read, for direct calls."""

    def __init__(self, trial_id: str) -> None:
        self.trial_id = trial_id
        self.status = "RUNNING"

    def __repr__(self) -> str:
        return self.trial_id


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_asha_never_ranks_a_non_finite_value(value: float) -> None:
    scheduler = _scheduler("asha")
    trials = [_Trial(str(i)) for i in range(4)]
    for trial in trials:
        scheduler.on_trial_add(None, trial)

    # The non-finite trial is stopped; its value never enters the rung.
    first = scheduler.on_trial_result(None, trials[0], {"epoch": 1, "accuracy": value})
    assert first == TrialScheduler.STOP
    decisions = [
        scheduler.on_trial_result(None, trial, {"epoch": 1, "accuracy": v})
        for trial, v in zip(trials[1:], [0.9, 0.5, 0.95], strict=True)
    ]
    assert decisions == [TrialScheduler.CONTINUE, TrialScheduler.STOP, TrialScheduler.CONTINUE]
    rung = dict(scheduler.inner._brackets[0]._rungs)[1]
    assert sorted(rung.values()) == [0.5, 0.9, 0.95]


def test_median_rule_ignores_non_finite_values() -> None:
    scheduler = _scheduler("median", grace_period=2)
    assert scheduler.inner._min_samples_required == 3
    trials = [_Trial(str(i)) for i in range(7)]
    controller = SimpleNamespace(get_live_trials=lambda: trials)
    for trial in trials:
        scheduler.on_trial_add(controller, trial)

    # Five trials reach epoch 2, two of them with infinite values, which would pull the median
    # up to 0.7 and stop a trial that beats most of the finite ones.
    for trial, value in zip(trials[:5], [0.5, 0.6, 0.7, math.inf, math.inf], strict=True):
        for epoch in (1, 2):
            result = {"epoch": epoch, "accuracy": value}
            decision = scheduler.on_trial_result(controller, trial, result)
        # An infinite value stops its trial at once.
        expected = TrialScheduler.STOP if math.isinf(value) else TrialScheduler.CONTINUE
        assert decision == expected
    assert trials[3] not in scheduler.inner._results

    # The median of the finite running means (0.5, 0.6, 0.7) is 0.6.
    better, worse = trials[5:]
    for trial, value, expected in ((better, 0.65, "CONTINUE"), (worse, 0.55, "STOP")):
        scheduler.on_trial_result(controller, trial, {"epoch": 1, "accuracy": value})
        decision = scheduler.on_trial_result(controller, trial, {"epoch": 2, "accuracy": value})
        assert decision == expected


def test_hyperband_gets_epochs_and_reduction_factor() -> None:
    scheduler = _scheduler("hyperband")
    inner = scheduler.inner
    assert (inner.metric, inner._mode, inner._time_attr) == ("accuracy", "max", "epoch")
    assert (inner._max_t_attr, inner._eta) == (9, 3)
    # 9 epochs at factor 3: brackets that start at 1, 3 and 9 epochs.
    assert inner._s_max_1 == 3

"""Scheduler construction, and ASHA stopping on the `epoch` the trials report.

Every scheduler comes wrapped in `FiniteOnly` (tests/nas/test_nni_tune.py checks what the
wrapper keeps out); `.inner` is Ray's scheduler.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from ray.tune.schedulers import AsyncHyperBandScheduler, TrialScheduler

from nas import strategies
from nas.schedulers import SCHEDULERS, build_scheduler
from search_spaces.errors import SpecError


def _asha(**overrides: Any) -> AsyncHyperBandScheduler:
    options = {
        "metric": "accuracy",
        "mode": "max",
        "max_epochs": 16,
        "grace_period": 1,
        "reduction_factor": 4,
    }
    return build_scheduler("asha", **{**options, **overrides}).inner


def test_asha_gets_metric_mode_and_epoch_budget() -> None:
    scheduler = _asha(mode="min", metric="loss")

    assert isinstance(scheduler, AsyncHyperBandScheduler)
    assert (scheduler.metric, scheduler._mode, scheduler._time_attr) == ("loss", "min", "epoch")
    assert scheduler._max_t == 16
    # Rungs at grace_period * reduction_factor**k up to max_t: 1, 4, 16 epochs.
    assert [milestone for milestone, _ in scheduler._brackets[0]._rungs] == [16, 4, 1]


def test_none_is_tune_fifo() -> None:
    options = {"metric": "a", "mode": "max", "max_epochs": 3, "grace_period": 1}
    assert build_scheduler("none", reduction_factor=2, **options) is None


def test_strategies_reexports_the_schedulers() -> None:
    assert strategies.build_scheduler is build_scheduler
    assert strategies.SCHEDULERS == SCHEDULERS == ("none", "asha", "hyperband", "median")


def test_asha_stops_the_worse_trial_at_the_first_rung() -> None:
    scheduler = _asha()
    trials = [SimpleNamespace(trial_id=str(i)) for i in range(3)]
    for trial in trials:
        scheduler.on_trial_add(None, trial)

    decisions = [
        scheduler.on_trial_result(None, trial, {"epoch": 1, "accuracy": value})
        for trial, value in zip(trials, [0.9, 0.5, 0.95], strict=True)
    ]
    assert decisions == [TrialScheduler.CONTINUE, TrialScheduler.STOP, TrialScheduler.CONTINUE]

    # Progress is read from `epoch` only: a result without it is not judged at all.
    assert scheduler.on_trial_result(None, trials[0], {"accuracy": 0.0}) == TrialScheduler.CONTINUE
    # The last epoch always stops the trial.
    last = {"epoch": 16, "accuracy": 0.99}
    assert scheduler.on_trial_result(None, trials[2], last) == TrialScheduler.STOP


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (
            {"grace_period": 20},
            r"^search\.grace_period: 20 must be between 1 and training\.epochs",
        ),
        ({"grace_period": 0}, r"^search\.grace_period: 0 must be between 1"),
        ({"max_epochs": 0}, r"^training\.epochs: 0 must be >= 1"),
        ({"reduction_factor": 1}, r"^search\.reduction_factor: 1 must be > 1"),
        ({"mode": "up"}, r"^evaluation\.mode: must be min or max, got 'up'"),
    ],
)
def test_asha_refuses_contradictory_settings(overrides: dict[str, Any], match: str) -> None:
    with pytest.raises(SpecError, match=match):
        _asha(**overrides)


def test_unknown_scheduler_names_the_choices() -> None:
    with pytest.raises(
        SpecError,
        match=r"^search\.scheduler: unknown scheduler 'ashaa' \(did you mean 'asha'\?\); use one of none, asha, hyperband, median$",
    ):
        build_scheduler(
            "ashaa", metric="a", mode="max", max_epochs=3, grace_period=1, reduction_factor=2
        )

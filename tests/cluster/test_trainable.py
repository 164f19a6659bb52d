from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from cluster.spec import parse_spec
from cluster.trainable import (
    CHECKPOINT_FILE,
    TRIAL_ERROR,
    TRIAL_STATUS,
    TrialData,
    TrialSettings,
    epoch_result,
    score_candidate,
    trial_seed,
)
from nas.objectives import INFEASIBLE_KEY
from trainers.datasets import load_dataset
from trainers.folds import make_folds
from trainers.loop import EpochReport, load_cv_state


def test_trial_seed_is_stable_and_distinct():
    seeds = [trial_seed(7, n) for n in range(50)]
    assert seeds == [trial_seed(7, n) for n in range(50)]
    assert len(set(seeds)) == 50
    assert trial_seed(8, 0) != trial_seed(7, 0)
    assert all(0 <= s < 2**32 for s in seeds)


def test_epoch_result_flattens_means_spreads_and_folds():
    report = EpochReport(
        epoch=3,
        folds=[{"accuracy": 0.8, "train_loss": 0.5}, {"accuracy": 0.6, "train_loss": 0.7}],
        mean={"accuracy": 0.7, "train_loss": 0.6},
        std={"accuracy": 0.1, "train_loss": 0.1},
        seconds=1.5,
        best_epoch=2,
        final=False,
    )
    result = epoch_result(report)

    assert result["epoch"] == 3
    assert result["accuracy_mean"] == 0.7 and result["accuracy_std"] == 0.1
    assert result["accuracy_fold0"] == 0.8 and result["accuracy_fold1"] == 0.6
    assert result["train_loss_fold1"] == 0.7
    assert result["best_epoch"] == 2
    assert result["last_report"] is False


# -- score_candidate: the trainable without Tune --------------------------------------------------


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def _setup(dataset: str, metric: str, **optimizer: Any) -> tuple[dict, TrialData, TrialSettings]:
    spec = parse_spec(
        {
            "name": "t",
            "data": {"dataset": dataset},
            "model": {"family": "mlp", "depth": 1, "width": 8},
            "optimizer": {"name": "adam", "lr": 0.01, **optimizer},
            "evaluation": {"folds": 2, "metric": metric},
        }
    )
    data = load_dataset(dataset, seed=0)
    folds = make_folds(
        data.y_train, n_folds=2, task=data.task, stratified=data.task == "classification", seed=0
    )
    settings = TrialSettings(
        parameters=tuple(spec.parameters()),
        metric=metric,
        mode=spec.mode,
        epochs=3,
        patience=None,
        search_seed=5,
        threads=1,
    )
    return {}, TrialData(data, tuple(folds)), settings


class _Reports:
    """Collects what a trial reports, and what each checkpoint folder held when reported."""

    def __init__(self) -> None:
        self.results: list[dict[str, Any]] = []
        self.folders: list[Path | None] = []
        self.states: list[Any] = []

    def __call__(self, result: dict[str, Any], folder: Path | None) -> None:
        self.results.append(result)
        self.folders.append(folder)
        self.states.append(None if folder is None else load_cv_state(folder / CHECKPOINT_FILE))


def _score(config, data, settings, **kwargs: Any) -> _Reports:
    reports = _Reports()
    score_candidate(
        config,
        data=data,
        settings=settings,
        trial_id="abcde_00004",
        node="n1",
        report=reports,
        **kwargs,
    )
    return reports


def _numbers(result: dict[str, Any]) -> dict[str, Any]:
    # Wall times differ between runs: the epoch's, and the candidate's measured latency.
    return {k: v for k, v in result.items() if k not in ("epoch_seconds", "pid", "latency_ms")}


def test_every_epoch_but_the_last_goes_out_with_its_state_then_the_folder_goes() -> None:
    reports = _score(*_setup("breast_cancer", "accuracy"))

    assert [r["epoch"] for r in reports.results] == [1, 2, 3]
    assert [s.epoch if s else None for s in reports.states] == [1, 2, None]
    assert all(folder is None or not folder.exists() for folder in reports.folders)
    first = reports.results[0]
    assert (first["trial_number"], first["trial_seed"]) == (4, trial_seed(5, 4))
    assert first["params_count"] > 0 and first["node"] == "n1"
    assert TRIAL_STATUS not in reports.results[-1]


def test_restored_trial_reports_the_epochs_after_its_state_with_the_same_numbers() -> None:
    config, data, settings = _setup("breast_cancer", "accuracy")
    whole = _score(config, data, settings)

    resumed = _score(config, data, settings, restored=whole.states[0])

    assert [r["epoch"] for r in resumed.results] == [2, 3]
    assert [_numbers(r) for r in resumed.results] == [_numbers(r) for r in whole.results[1:]]


def test_diverged_trial_ends_with_a_terminal_report_not_an_exception() -> None:
    # Plain SGD at lr 10 on a squared loss blows up in the first epoch.
    reports = _score(*_setup("diabetes", "mse", name="sgd", lr=10.0, momentum=0.9))

    last = reports.results[-1]
    assert last[TRIAL_STATUS] == "diverged"
    assert last[TRIAL_ERROR].startswith("TrialDiverged: fold 0: training loss became")
    assert math.isnan(last["mse_mean"]) and last["last_report"] is True
    assert last["trial_number"] == 4


def test_trial_that_raises_is_failed_with_the_last_line(monkeypatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("while doing something\nthe real reason")

    monkeypatch.setattr("trainers.loop.cross_validate", broken)
    (last,) = _score(*_setup("breast_cancer", "accuracy")).results

    assert last[TRIAL_STATUS] == "failed"
    assert last[TRIAL_ERROR] == "RuntimeError: the real reason"
    assert math.isnan(last["accuracy_mean"])


def test_result_without_the_objective_fails_the_trial_naming_what_it_had(monkeypatch) -> None:
    import cluster.trainable

    def without_objective(report: EpochReport) -> dict[str, Any]:
        result = epoch_result(report)
        del result["accuracy_mean"]
        return result

    monkeypatch.setattr(cluster.trainable, "epoch_result", without_objective)
    (last,) = _score(*_setup("breast_cancer", "accuracy")).results

    assert last[TRIAL_STATUS] == "failed"
    assert last[TRIAL_ERROR] == (
        "MissingObjective: the trial reported no accuracy_mean; it reported f1, loss, "
        "precision, recall, roc_auc, train_loss"
    )


def test_candidate_over_a_cost_bound_is_recorded_with_its_costs_and_never_trained() -> None:
    config, data, settings = _setup("breast_cancer", "accuracy")
    # The 30-8-2 MLP of _setup has 30*8+8 + 8*2+2 = 266 parameters.
    bounded = dataclasses.replace(settings, constraints=(("max_params", 200),))

    reports = _score(config, data, bounded)

    (last,) = reports.results  # no epoch ran
    assert last[TRIAL_STATUS] == "infeasible" and last[INFEASIBLE_KEY] is True
    assert last["params_count"] == 266
    assert "params_count 266 > max_params 200" in last[TRIAL_ERROR]
    assert math.isnan(last["accuracy_mean"])
    assert last["macs"] >= 266 - 10 and last["latency_ms"] > 0


def test_every_report_carries_the_candidates_costs() -> None:
    reports = _score(*_setup("breast_cancer", "accuracy"))

    first = reports.results[0]
    assert first["params_count"] == 266
    # ptflops: 30*8 (+8 bias) and 8*2 (+2 bias) in the Linear layers, 8 in the ReLU, and a
    # few for the functional ops of the forward (it counts 282 in all).
    assert 266 + 8 <= first["macs"] <= 266 + 8 + 16
    assert all(r["macs"] == first["macs"] for r in reports.results)

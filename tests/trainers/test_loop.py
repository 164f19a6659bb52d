"""Cross-validation in lockstep and the refit, on scikit-learn's small datasets.

Sizes: breast cancer (455 training rows, 30 features) with 3 folds and a 16-unit MLP for the
mechanics; digits (1437 rows, 8x8) and diabetes (353 rows) for learning at all. Every test
trains for at most a few epochs on one thread.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import pytest
import torch

from search_spaces.errors import SpecError
from trainers.datasets import Dataset, load_dataset
from trainers.folds import make_folds
from trainers.loop import CVResult, EpochReport, TrialDiverged, cross_validate, train_model
from trainers.metrics import metric_names
from trainers.preprocessing import Normalized


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def _config(**optimizer: Any) -> dict[str, Any]:
    return {
        "model": {
            "family": "mlp",
            "depth": 1,
            "width": 16,
            "activation": "relu",
            "connectivity": "plain",
            "batch_norm": False,
        },
        "regularization": {"dropout": 0.0, "l1": 0.0, "l2": 1e-4},
        "optimizer": {
            "name": "adam",
            "lr": 0.01,
            "momentum": None,
            "nesterov": False,
            "batch_size": 64,
            "schedule": "none",
            **optimizer,
        },
    }


@pytest.fixture(scope="module")
def cancer() -> tuple[Dataset, list]:
    dataset = load_dataset("breast_cancer", seed=0)
    folds = make_folds(dataset.y_train, n_folds=3, task=dataset.task, stratified=True, seed=0)
    return dataset, folds


@pytest.fixture(scope="module")
def diabetes() -> tuple[Dataset, list]:
    dataset = load_dataset("diabetes", seed=0)
    folds = make_folds(dataset.y_train, n_folds=3, task=dataset.task, stratified=False, seed=0)
    return dataset, folds


def _run(config: dict, data: tuple[Dataset, list], **kwargs: Any) -> CVResult:
    dataset, folds = data
    settings = {"epochs": 2, "patience": None, "objective": "accuracy", "mode": "max", "seed": 0}
    return cross_validate(config, dataset, folds=folds, **{**settings, **kwargs})


def test_reports_every_epoch_with_fold_values_mean_and_std(cancer) -> None:
    reports: list[EpochReport] = []
    result = _run(_config(), cancer, epochs=3, on_epoch=reports.append)

    assert [r.epoch for r in reports] == [1, 2, 3]
    assert result.history == reports and result.epochs_run == 3
    assert not result.stopped_by_patience
    for report in reports:
        assert len(report.folds) == 3 and report.seconds > 0
        for fold in report.folds:
            assert set(fold) == {*metric_names("classification"), "train_loss"}
        for key in report.mean:
            values = np.array([fold[key] for fold in report.folds])
            assert report.mean[key] == pytest.approx(values.mean())
            assert report.std[key] == pytest.approx(
                np.sqrt(((values - values.mean()) ** 2).mean())
            )

    # The best epoch is the one with the highest fold-mean accuracy (the first on ties).
    accuracies = [r.mean["accuracy"] for r in reports]
    assert result.best_epoch == 1 + int(np.argmax(accuracies))
    assert result.best is reports[result.best_epoch - 1]


def test_fold_models_differ(cancer) -> None:
    report = _run(_config(), cancer, epochs=1).best

    # Different data and different initial weights: no two folds train to the same loss.
    losses = [fold["train_loss"] for fold in report.folds]
    assert len(set(losses)) == 3
    assert len({fold["loss"] for fold in report.folds}) == 3
    assert report.std["loss"] > 0


def test_same_seed_same_numbers_other_seed_other_numbers(cancer) -> None:
    # Dropout on, so the seeded masks matter too.
    config = _config()
    config["regularization"]["dropout"] = 0.3
    state = torch.random.get_rng_state()

    first = _run(config, cancer, epochs=1, seed=7).best.folds
    again = _run(config, cancer, epochs=1, seed=7).best.folds
    other = _run(config, cancer, epochs=1, seed=8).best.folds

    assert first == again
    assert [f["train_loss"] for f in first] != [f["train_loss"] for f in other]
    # The caller's global generator is left exactly as it was.
    assert torch.equal(torch.random.get_rng_state(), state)


@pytest.mark.parametrize(("objective", "mode"), [("accuracy", "max"), ("loss", "min")])
def test_patience_stops_a_run_that_cannot_improve(cancer, objective: str, mode: str) -> None:
    # lr = 0 (plain SGD, no dropout, no batch norm): every epoch scores exactly as the first.
    config = _config(name="sgd", lr=0.0, momentum=0.0)

    stopped = _run(config, cancer, epochs=10, patience=2, objective=objective, mode=mode)
    assert stopped.epochs_run == 3 and stopped.stopped_by_patience
    assert stopped.best_epoch == 1

    # Patience running out on the last planned epoch is the end of the run, not a stop.
    full = _run(config, cancer, epochs=3, patience=2, objective=objective, mode=mode)
    assert full.epochs_run == 3 and not full.stopped_by_patience


def test_divergence_raises_with_fold_and_epoch(diabetes) -> None:
    config = _config(name="sgd", lr=50.0, momentum=0.9)

    with pytest.raises(TrialDiverged, match=r"^fold 0: training loss became (nan|inf) at epoch 1"):
        _run(config, diabetes, epochs=2, objective="mse", mode="min")
    with pytest.raises(FloatingPointError, match=r"^refit: training loss became"):
        dataset, _ = diabetes
        train_model(
            config,
            dataset.x_train,
            dataset.y_train,
            task="regression",
            n_outputs=1,
            epochs=2,
            seed=0,
        )


def test_small_mlp_learns_digits() -> None:
    dataset = load_dataset("digits", seed=0)
    folds = make_folds(dataset.y_train, n_folds=3, task=dataset.task, stratified=True, seed=0)
    config = _config(batch_size=32)
    config["model"]["width"] = 64

    result = cross_validate(
        config,
        dataset,
        folds=folds,
        epochs=4,
        patience=None,
        objective="accuracy",
        mode="max",
        seed=0,
    )

    assert result.best.mean["accuracy"] > 0.85
    assert all(fold["accuracy"] > 0.8 for fold in result.best.folds)


def test_cnn_with_batch_norm_trains_past_a_lone_last_batch(cancer) -> None:
    dataset = load_dataset("digits", seed=0)
    # Training parts of 65 rows with batches of 64 leave one row over, which batch norm
    # cannot train on.
    folds = [(np.arange(0, 65), np.arange(65, 100)), (np.arange(35, 100), np.arange(0, 35))]
    config = _config(batch_size=64)
    config["model"].update(family="cnn", batch_norm=True, channels=4, width=8)

    result = cross_validate(
        config, dataset, folds=folds, epochs=2, patience=None, objective="loss", mode="min", seed=0
    )
    assert all(math.isfinite(fold["loss"]) for fold in result.best.folds)


def test_regression_on_diabetes(diabetes) -> None:
    result = _run(_config(), diabetes, epochs=4, objective="mse", mode="min")

    best = result.best.mean
    assert math.isfinite(best["mse"]) and best["rmse"] == pytest.approx(
        math.sqrt(best["mse"]), rel=0.05
    )
    # Better than predicting the mean (r2 0), so the original units came back right.
    assert best["r2"] > 0.2


def test_refit_returns_a_deterministic_model_in_original_units(diabetes) -> None:
    dataset, _ = diabetes
    config = _config(schedule="cosine")
    kwargs = {"task": "regression", "n_outputs": 1, "epochs": 3, "seed": 3}
    state = torch.random.get_rng_state()

    model = train_model(config, dataset.x_train, dataset.y_train, **kwargs)
    twin = train_model(copy.deepcopy(config), dataset.x_train, dataset.y_train, **kwargs)

    assert isinstance(model, Normalized) and not model.training
    assert torch.equal(torch.random.get_rng_state(), state)
    for a, b in zip(model.state_dict().values(), twin.state_dict().values(), strict=True):
        assert torch.equal(a, b)

    with torch.no_grad():
        predictions = model(torch.from_numpy(dataset.x_test)).squeeze(1).numpy()
    y = dataset.y_test
    assert abs(predictions.mean() - y.mean()) < 0.5 * y.std()
    assert ((predictions - y) ** 2).mean() < y.var()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"objective": "mse"}, r"evaluation\.metric: got 'mse', but for classification"),
        ({"mode": "up"}, r"evaluation\.mode: got 'up'"),
        ({"patience": 0}, r"training\.patience: got 0"),
        ({"epochs": 0}, r"training\.epochs: got 0"),
    ],
)
def test_bad_run_settings_are_refused(cancer, kwargs: dict, match: str) -> None:
    with pytest.raises(SpecError, match=match):
        _run(_config(), cancer, **kwargs)


def test_bad_batch_size_is_refused(cancer) -> None:
    with pytest.raises(SpecError, match=r"optimizer\.batch_size: got 0"):
        _run(_config(batch_size=0), cancer)

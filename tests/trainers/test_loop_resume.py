"""Cross-validation that stops after an epoch and goes on from its saved state.

A run interrupted after epoch 2 and resumed from the file `save_cv_state` wrote must give
exactly the numbers of an uninterrupted run: same weights, optimizer moments, learning-rate
schedule and early-stopping count. Breast cancer, 3 folds, a 16-unit MLP, one thread.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from search_spaces.errors import ArchsearchError
from trainers.datasets import Dataset, load_dataset
from trainers.folds import make_folds
from trainers.loop import (
    CVResult,
    CVState,
    EpochReport,
    cross_validate,
    load_cv_state,
    save_cv_state,
)


class _Stop(Exception):
    """Stands in for a worker that dies right after saving its state."""


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def cancer() -> tuple[Dataset, list]:
    dataset = load_dataset("breast_cancer", seed=0)
    folds = make_folds(dataset.y_train, n_folds=3, task=dataset.task, stratified=True, seed=0)
    return dataset, folds


def _config() -> dict[str, Any]:
    # SGD with momentum and a cosine schedule, so optimizer and schedule state both matter;
    # batch norm and dropout, so buffers and per-epoch dropout seeds matter too.
    return {
        "model": {
            "family": "mlp",
            "depth": 2,
            "width": 16,
            "activation": "relu",
            "connectivity": "residual",
            "batch_norm": True,
        },
        "regularization": {"dropout": 0.2, "l1": 0.0, "l2": 1e-4},
        "optimizer": {
            "name": "sgd",
            "lr": 0.05,
            "momentum": 0.9,
            "nesterov": False,
            "batch_size": 64,
            "schedule": "cosine",
        },
    }


def _run(data: tuple[Dataset, list], **kwargs: Any) -> CVResult:
    dataset, folds = data
    settings = {"epochs": 5, "patience": 4, "objective": "loss", "mode": "min", "seed": 7}
    return cross_validate(_config(), dataset, folds=folds, **{**settings, **kwargs})


def _numbers(reports: list[EpochReport]) -> list[tuple]:
    """Everything a report says but its wall time, which differs from run to run."""
    return [(r.epoch, r.folds, r.mean, r.std, r.best_epoch, r.final) for r in reports]


def _checkpoint_then_stop(path: Path, at: int):
    def on_checkpoint(state: CVState) -> None:
        if state.epoch == at:
            save_cv_state(state, path)
            raise _Stop

    return on_checkpoint


def test_resumed_run_gives_the_numbers_of_an_uninterrupted_one(cancer, tmp_path: Path) -> None:
    whole: list[EpochReport] = []
    expected = _run(cancer, on_epoch=whole.append)

    path = tmp_path / "state.pt"
    first: list[EpochReport] = []
    with pytest.raises(_Stop):
        _run(cancer, on_epoch=first.append, on_checkpoint=_checkpoint_then_stop(path, at=2))
    # The state is saved before epoch 2's report goes out; the report never left.
    assert [r.epoch for r in first] == [1]

    rest: list[EpochReport] = []
    resumed = _run(cancer, on_epoch=rest.append, resume=load_cv_state(path))

    assert [r.epoch for r in rest] == [3, 4, 5]
    assert _numbers(rest) == _numbers(whole[2:])
    assert _numbers(resumed.history) == _numbers(expected.history)
    assert (resumed.best_epoch, resumed.epochs_run) == (expected.best_epoch, expected.epochs_run)


def test_checkpoints_come_after_every_epoch_but_the_last(cancer) -> None:
    epochs: list[int] = []
    _run(cancer, epochs=3, on_checkpoint=lambda state: epochs.append(state.epoch))
    assert epochs == [1, 2]


def test_state_holds_plain_values_that_weights_only_loads(cancer, tmp_path: Path) -> None:
    path = tmp_path / "state.pt"
    with pytest.raises(_Stop):
        _run(cancer, on_checkpoint=_checkpoint_then_stop(path, at=1))

    state = load_cv_state(path)
    assert state.epoch == 1 and state.since_best == 0
    assert len(state.models) == len(state.optimizers) == len(state.schedules) == 3
    assert state.history[0].epoch == 1 and state.history[0].best_epoch == 1
    assert state.schedules[0]["last_epoch"] == 1


def test_other_files_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.pt"
    torch.save({"format": 99}, path)
    with pytest.raises(ArchsearchError, match=r"^checkpoint: .* not a cross-validation state"):
        load_cv_state(path)


@pytest.mark.parametrize("epochs", [2, 1])
def test_state_that_cannot_continue_this_run_is_refused(cancer, tmp_path, epochs: int) -> None:
    path = tmp_path / "state.pt"
    with pytest.raises(_Stop):
        _run(cancer, on_checkpoint=_checkpoint_then_stop(path, at=2))

    # Two epochs done cannot go on in a run of `epochs` epochs.
    with pytest.raises(ArchsearchError, match=r"cannot continue a run of 3 folds and"):
        _run(cancer, epochs=epochs, resume=load_cv_state(path))

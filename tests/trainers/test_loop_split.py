"""cross_validate with its folds split over processes (own_folds + gather), simulated by threads.

Ray Train workers call it this way (cluster.workers); here two threads stand in for two
workers and a barrier for the all-gather. Digits, 300 samples, 3 folds, 2 epochs: a few seconds.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
import torch

from trainers.datasets import load_dataset, take_subset
from trainers.folds import make_folds
from trainers.loop import TrialDiverged, cross_validate

MODEL = {"family": "mlp", "depth": 1, "width": 8, "activation": "relu", "connectivity": "plain"}
CONFIG = {
    "model": {**MODEL, "batch_norm": True},
    "regularization": {"dropout": 0.2},
    "optimizer": {"name": "adam", "lr": 0.01, "batch_size": 32},
}


@pytest.fixture(scope="module")
def data():
    torch.set_num_threads(1)
    dataset = take_subset(load_dataset("digits", seed=0), 300, seed=0)
    folds = make_folds(dataset.y_train, n_folds=3, task=dataset.task, stratified=True, seed=0)
    return dataset, folds


def _run(data, config, **options: Any):
    dataset, folds = data
    return cross_validate(
        config,
        dataset,
        folds=folds,
        epochs=2,
        patience=None,
        objective="accuracy",
        mode="max",
        seed=5,
        **options,
    )


def _split_run(data, config, *, owners: list[list[int]]) -> list[Any]:
    """Run one cross_validate per owner list at once; each returns its result or its error."""
    n_folds = len(data[1])
    barrier = threading.Barrier(len(owners))
    shared: dict[int, dict[str, float]] = {}
    # Threads, unlike processes, share torch's global generator (weight init and dropout draw
    # from it): one thread trains at a time, and each lets go only while it gathers.
    turn = threading.Lock()

    def gather(mine: dict[int, dict[str, float]]) -> list[dict[str, float]]:
        shared.update(mine)
        turn.release()
        barrier.wait()
        everyone = [dict(shared[fold]) for fold in range(n_folds)]
        barrier.wait()  # all have read this epoch's values before any writes the next
        turn.acquire()
        return everyone

    outcomes: list[Any] = [None] * len(owners)

    def work(index: int) -> None:
        with turn:
            try:
                outcomes[index] = _run(data, config, own_folds=owners[index], gather=gather)
            except Exception as error:
                outcomes[index] = error

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(owners))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return outcomes


def test_split_folds_give_the_single_process_numbers(data):
    whole = _run(data, CONFIG)
    split = _split_run(data, CONFIG, owners=[[0, 2], [1]])

    for result in split:
        assert [r.folds for r in result.history] == [r.folds for r in whole.history]
        assert [r.mean for r in result.history] == [r.mean for r in whole.history]
        assert result.best_epoch == whole.best_epoch
    # Three folds' own values, not one fold's repeated.
    assert len({f["train_loss"] for f in whole.history[-1].folds}) == 3


def test_a_diverged_fold_stops_every_process_with_the_same_error(data):
    optimizer = {"name": "sgd", "lr": 1.0e30, "momentum": 0.9, "batch_size": 32}
    config = {**CONFIG, "model": {**MODEL, "batch_norm": False}, "optimizer": optimizer}
    with pytest.raises(TrialDiverged) as whole:
        _run(data, config)

    split = _split_run(data, config, owners=[[1], [0, 2]])
    assert all(isinstance(outcome, TrialDiverged) for outcome in split)
    assert {str(outcome) for outcome in split} == {str(whole.value)}


def test_own_folds_without_gather_is_refused(data):
    with pytest.raises(ValueError, match="own_folds and gather together"):
        _run(data, CONFIG, own_folds=[0])

"""Tests of trainers.folds: coverage, stratification, seeding, time order and errors."""

from __future__ import annotations

import numpy as np
import pytest

from search_spaces.errors import DataError, SpecError
from trainers.datasets import load_dataset
from trainers.folds import dataset_folds, make_folds

# 33 / 21 / 11 samples of three classes, in blocks so an unshuffled split would be lopsided.
Y_CLASSES = np.repeat(np.arange(3), [33, 21, 11]).astype(np.int64)


@pytest.mark.parametrize(
    ("task", "stratified", "y"),
    [
        ("classification", True, Y_CLASSES),
        ("classification", False, Y_CLASSES),
        ("regression", False, np.linspace(0.0, 1.0, 23, dtype=np.float32)),
    ],
)
@pytest.mark.parametrize("n_folds", [2, 5])
def test_folds_are_disjoint_and_cover(
    task: str, stratified: bool, y: np.ndarray, n_folds: int
) -> None:
    folds = make_folds(y, n_folds=n_folds, task=task, stratified=stratified, seed=0)

    assert len(folds) == n_folds
    validation = np.concatenate([valid for _, valid in folds])
    assert np.array_equal(np.sort(validation), np.arange(len(y)))

    for train, valid in folds:
        assert np.intersect1d(train, valid).size == 0
        assert np.array_equal(np.sort(np.concatenate([train, valid])), np.arange(len(y)))
        # KFold sizes differ by at most one sample.
        assert len(valid) in (len(y) // n_folds, len(y) // n_folds + 1)


def test_regression_fold_sizes() -> None:
    folds = make_folds(np.zeros(23), n_folds=5, task="regression", stratified=False, seed=0)
    assert [len(valid) for _, valid in folds] == [5, 5, 5, 4, 4]


def test_folds_are_shuffled() -> None:
    folds = make_folds(np.zeros(50), n_folds=5, task="regression", stratified=False, seed=0)
    first_valid = np.sort(folds[0][1])
    assert not np.array_equal(first_valid, np.arange(10))


@pytest.mark.parametrize("n_folds", [3, 5, 10])
def test_stratified_class_proportions_within_one_sample(n_folds: int) -> None:
    folds = make_folds(Y_CLASSES, n_folds=n_folds, task="classification", stratified=True, seed=1)

    totals = np.bincount(Y_CLASSES)
    for _, valid in folds:
        counts = np.bincount(Y_CLASSES[valid], minlength=3)
        expected = totals * len(valid) / len(Y_CLASSES)
        assert np.all(np.abs(counts - expected) <= 1.0), (counts, expected)
        # Every class shows up in every validation fold.
        assert np.all(counts >= 1)


def test_same_seed_same_folds_other_seed_other_folds() -> None:
    first = make_folds(Y_CLASSES, n_folds=5, task="classification", stratified=True, seed=42)
    again = make_folds(Y_CLASSES, n_folds=5, task="classification", stratified=True, seed=42)
    other = make_folds(Y_CLASSES, n_folds=5, task="classification", stratified=True, seed=43)

    for (train_a, valid_a), (train_b, valid_b) in zip(first, again, strict=True):
        assert np.array_equal(train_a, train_b)
        assert np.array_equal(valid_a, valid_b)
    assert any(
        not np.array_equal(valid_a, valid_c)
        for (_, valid_a), (_, valid_c) in zip(first, other, strict=True)
    )


def test_class_smaller_than_folds() -> None:
    y = np.array([0] * 10 + [1] * 10 + [2] * 10 + [3] * 2)
    with pytest.raises(
        DataError,
        match=r"^evaluation\.folds: class 3 has only 2 samples but folds is 5; "
        r"lower evaluation\.folds or set evaluation\.stratified: false$",
    ):
        make_folds(y, n_folds=5, task="classification", stratified=True, seed=0)


def test_small_class_is_fine_without_stratification() -> None:
    y = np.array([0] * 10 + [1] * 10 + [2] * 10 + [3] * 2)
    folds = make_folds(y, n_folds=5, task="classification", stratified=False, seed=0)
    assert len(folds) == 5


@pytest.mark.parametrize("n_folds", [1, 0, -3])
def test_too_few_folds(n_folds: int) -> None:
    with pytest.raises(
        DataError, match=rf"^evaluation\.folds: {n_folds} is too few; .* at least 2 folds$"
    ):
        make_folds(Y_CLASSES, n_folds=n_folds, task="classification", stratified=True, seed=0)


def test_fewer_samples_than_folds() -> None:
    with pytest.raises(
        DataError, match=r"^evaluation\.folds: the training set has only 4 samples but folds is 5"
    ):
        make_folds(np.zeros(4), n_folds=5, task="regression", stratified=False, seed=0)


def test_stratified_regression_is_a_spec_error() -> None:
    with pytest.raises(
        SpecError,
        match=r"^evaluation\.stratified: .* the task is regression; "
        r"set evaluation\.stratified: false$",
    ):
        make_folds(np.zeros(20), n_folds=5, task="regression", stratified=True, seed=0)


def test_unknown_task() -> None:
    with pytest.raises(SpecError, match=r"^task: 'ranking' is not a task"):
        make_folds(np.zeros(20), n_folds=5, task="ranking", stratified=False, seed=0)


# --- time-ordered folds -----------------------------------------------------------------------


@pytest.mark.parametrize(("n", "n_folds", "gap"), [(20, 3, 0), (23, 4, 2), (100, 5, 3)])
def test_time_ordered_folds_never_train_on_the_future(n: int, n_folds: int, gap: int) -> None:
    y = np.linspace(0.0, 1.0, n, dtype=np.float32)
    folds = make_folds(
        y, n_folds=n_folds, task="regression", stratified=False, seed=0, ordered=True, gap=gap
    )

    assert len(folds) == n_folds
    for train, valid in folds:
        # Training starts at the beginning and stops `gap` samples before validation starts.
        assert np.array_equal(train, np.arange(valid[0] - gap))
        assert np.array_equal(valid, np.arange(valid[0], valid[-1] + 1))
    # The validation blocks follow each other and end at the last sample.
    starts = [valid[0] for _, valid in folds]
    assert starts == sorted(starts) and folds[-1][1][-1] == n - 1


def test_time_ordered_folds_by_hand() -> None:
    # 12 samples, 3 folds: blocks of 3; fold i validates on block i + 1.
    folds = make_folds(
        np.zeros(12), n_folds=3, task="regression", stratified=False, seed=0, ordered=True, gap=1
    )
    assert [(list(t), list(v)) for t, v in folds] == [
        ([0, 1], [3, 4, 5]),
        ([0, 1, 2, 3, 4], [6, 7, 8]),
        ([0, 1, 2, 3, 4, 5, 6, 7], [9, 10, 11]),
    ]


@pytest.mark.parametrize("horizon", [1, 4])
def test_series_windows_folds_leak_no_future(horizon: int) -> None:
    dataset = load_dataset("co2", seed=0, window=8, horizon=horizon)
    folds = dataset_folds(dataset, n_folds=4, stratified=False, seed=0)

    # Window i reads steps i .. i + 7 and forecasts step i + 7 + horizon.
    window = dataset.series.window
    for train, valid in folds:
        last_training_target = train.max() + window - 1 + horizon
        first_validation_now = valid.min() + window - 1
        assert last_training_target <= first_validation_now
        assert train.max() < valid.min()

    # The windows' contents agree: a training target is a value some validation window saw.
    train, valid = folds[0]
    assert dataset.y_train[train.max()] == dataset.x_train[valid.min(), -1, 0]


def test_series_folds_refuse_stratification() -> None:
    dataset = load_dataset("co2", seed=0)
    with pytest.raises(SpecError, match=r"^evaluation\.stratified: co2 is a time series"):
        dataset_folds(dataset, n_folds=3, stratified=True, seed=0)


def test_time_ordered_blocks_too_small_for_the_gap() -> None:
    with pytest.raises(DataError, match=r"blocks of 2 for 4 folds, too few to train on"):
        make_folds(
            np.zeros(10),
            n_folds=4,
            task="regression",
            stratified=False,
            seed=0,
            ordered=True,
            gap=2,
        )

"""Seeded k-fold splits of a training set, stratified by class for classification.

Every candidate of a search is scored on the same folds (same seed), so their cross-validated
scores differ by the candidate and not by the luck of the split. Time series are split in
time order instead (scikit-learn's `TimeSeriesSplit`): a fold never trains on the future of
its validation part.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from sklearn.model_selection import KFold, StratifiedKFold, TimeSeriesSplit

from search_spaces.errors import DataError, SpecError

if TYPE_CHECKING:
    from trainers.datasets import Dataset

TASKS = ("classification", "regression")


def dataset_folds(
    dataset: Dataset, *, n_folds: int, stratified: bool, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The folds of `dataset`'s training part, split the way its kind needs.

    Series windows get time-ordered folds with a gap of `horizon - 1` windows, so that no
    training target lies after the last step of a validation window (see `make_folds`); every
    other kind gets shuffled (stratified) k-fold splits.

    Raises:
        SpecError: `stratified` is asked for a series (its folds must keep time order).
    """
    ordered = dataset.kind == "series"
    if ordered and stratified:
        raise SpecError(
            f"evaluation.stratified: {dataset.name} is a time series, whose folds keep time "
            "order; set evaluation.stratified: false"
        )
    gap = dataset.series.horizon - 1 if ordered and dataset.series is not None else 0
    return make_folds(
        dataset.y_train,
        n_folds=n_folds,
        task=dataset.task,
        stratified=stratified,
        seed=seed,
        ordered=ordered,
        gap=gap,
    )


def make_folds(
    y: np.ndarray,
    *,
    n_folds: int,
    task: str,
    stratified: bool,
    seed: int,
    ordered: bool = False,
    gap: int = 0,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Split sample indices into `n_folds` shuffled folds, or `n_folds` time-ordered ones.

    Args:
        y: Targets of the training set, `(N,)`; only their count and, when stratified, their
            classes are used.
        n_folds: Number of folds k, at least 2.
        task: "classification" or "regression".
        stratified: Keep each class's share equal across folds (classification only); each
            validation fold then holds every class, to within one sample of its share.
        seed: Seeds the shuffle; the same seed and `y` give the same folds. Unused when
            `ordered`.
        ordered: Samples are in time order: fold i validates on the (i + 2)-th of k + 1
            consecutive blocks and trains on everything before it, less `gap` samples
            (scikit-learn's `TimeSeriesSplit`). No training index ever follows a validation
            index.
        gap: With `ordered`, how many samples just before each validation block are left out
            of training; for forecasting windows, `horizon - 1`.

    Returns:
        k pairs `(train_indices, validation_indices)` of int arrays. The validation parts are
        disjoint; shuffled folds' validation parts cover `0..N-1` and each train part is the
        rest, while ordered ones cover the last k of k + 1 blocks.

    Raises:
        SpecError: `task` is unknown, or `stratified` is asked for a regression task.
        DataError: `n_folds < 2`, fewer samples than folds, or (stratified) a class with fewer
            samples than folds.
    """
    if task not in TASKS:
        raise SpecError(f"task: {task!r} is not a task; use one of {', '.join(TASKS)}")

    if stratified and task != "classification":
        raise SpecError(
            f"evaluation.stratified: true needs classes to stratify on but the task is {task}; "
            f"set evaluation.stratified: false"
        )
    if ordered and stratified:
        raise SpecError(
            "evaluation.stratified: time-ordered folds cannot also be stratified; "
            "set evaluation.stratified: false"
        )

    if n_folds < 2:
        raise DataError(
            f"evaluation.folds: {n_folds} is too few; cross-validation needs at least 2 folds"
        )

    y = np.asarray(y)
    if len(y) < n_folds:
        raise DataError(
            f"evaluation.folds: the training set has only {len(y)} samples but folds is "
            f"{n_folds}; lower evaluation.folds or use more data"
        )

    if ordered:
        splitter = _time_splitter(len(y), n_folds=n_folds, gap=gap)
    elif stratified:
        _check_class_counts(y, n_folds)
        splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    else:
        splitter = KFold(n_splits=n_folds, shuffle=True, random_state=seed)

    # The splitters need an X only for its length; the features never matter here.
    placeholder = np.zeros((len(y), 1), dtype=np.int8)
    return [(train, valid) for train, valid in splitter.split(placeholder, y)]


def _time_splitter(n: int, *, n_folds: int, gap: int) -> TimeSeriesSplit:
    if gap < 0:
        raise DataError(f"gap: {gap} must be >= 0 samples")
    # The first fold trains on the first block less the gap; it needs at least one sample.
    block = n // (n_folds + 1)
    if block - gap < 1:
        raise DataError(
            f"evaluation.folds: {n} time-ordered samples make blocks of {block} for {n_folds} "
            f"folds, too few to train on before a gap of {gap}; lower evaluation.folds"
        )
    return TimeSeriesSplit(n_splits=n_folds, gap=gap)


def _check_class_counts(y: np.ndarray, n_folds: int) -> None:
    # StratifiedKFold only warns about a class smaller than k and then leaves it out of some
    # validation folds; a fold metric such as ROC-AUC is then undefined, so refuse instead.
    classes, counts = np.unique(y, return_counts=True)
    smallest = int(np.argmin(counts))
    if counts[smallest] < n_folds:
        raise DataError(
            f"evaluation.folds: class {classes[smallest]} has only {counts[smallest]} samples "
            f"but folds is {n_folds}; lower evaluation.folds or set evaluation.stratified: false"
        )

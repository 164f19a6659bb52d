"""Seeded k-fold splits of a training set, stratified by class for classification.

Every candidate of a search is scored on the same folds (same seed), so their cross-validated
scores differ by the candidate and not by the luck of the split.
"""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import KFold, StratifiedKFold

from search_spaces.errors import DataError, SpecError

TASKS = ("classification", "regression")


def make_folds(
    y: np.ndarray, *, n_folds: int, task: str, stratified: bool, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Split sample indices into `n_folds` shuffled folds.

    Args:
        y: Targets of the training set, `(N,)`; only their count and, when stratified, their
            classes are used.
        n_folds: Number of folds k, at least 2.
        task: "classification" or "regression".
        stratified: Keep each class's share equal across folds (classification only); each
            validation fold then holds every class, to within one sample of its share.
        seed: Seeds the shuffle; the same seed and `y` give the same folds.

    Returns:
        k pairs `(train_indices, validation_indices)` of int arrays. The validation parts are
        disjoint and together cover `0..N-1`; each train part is the rest.

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

    if stratified:
        _check_class_counts(y, n_folds)
        splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    else:
        splitter = KFold(n_splits=n_folds, shuffle=True, random_state=seed)

    # The splitters need an X only for its length; the features never matter here.
    placeholder = np.zeros((len(y), 1), dtype=np.int8)
    return [(train, valid) for train, valid in splitter.split(placeholder, y)]


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

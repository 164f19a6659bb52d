"""The metrics a search can rank candidates by, computed with scikit-learn.

Classification metrics take the model's raw logits `(N, K)`; probabilities come from a
numerically stable softmax and predictions from the arg-max. Regression metrics take the
predictions `(N,)` or `(N, 1)`.

Conventions worth knowing when reading scores:

- precision, recall and f1 are binary (positive class 1) for K == 2 and macro-averaged over all
  K classes for K > 2, with `zero_division=0`: a class never predicted scores 0 precision, and
  a class absent from both truth and predictions scores 0 in every average it enters. A binary
  fold with no positive sample scores recall 0 and f1 0; accuracy and loss are always defined.
- roc_auc is undefined when a class of `0..K-1` is missing from `y_true` (for K == 2: only one
  class present). It is then NaN, never an error. Stratified folds hold every class in every
  validation fold, so this arises only without them.
- r2 follows scikit-learn: a constant prediction equal to the mean of `y_true` scores 0, any
  other constant less; when `y_true` itself is constant, a perfect prediction scores 1 and
  anything else 0 rather than minus infinity. mse, rmse, mae and median_ae are always defined.
- outputs holding NaN or infinity (a diverged model) make every metric NaN.

Each kind of NaN above comes with one `UndefinedMetricWarning`, said once per process (a Ray
worker, or the refit), not once per fold and epoch; `reset_warnings` re-arms them. The fold
mean of a metric that is NaN in any fold is NaN: a fold-mean over the folds where it happens to
be defined would be a silently different number.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    log_loss,
    mean_absolute_error,
    mean_squared_error,
    median_absolute_error,
    precision_score,
    r2_score,
    recall_score,
    roc_auc_score,
)

from search_spaces.errors import SpecError

ANY_TASK = "any"
"""The task of a metric defined for both tasks (`loss`)."""


class UndefinedMetricWarning(UserWarning):
    """A metric is undefined for the values given and was reported as NaN."""


# Kinds of undefined metric already warned about in this process (see _warn_once).
_SAID: set[str] = set()


@dataclass(frozen=True)
class Metric:
    """A metric's name, the task it belongs to ("classification", "regression" or "any") and
    whether higher ("max") or lower ("min") is better."""

    name: str
    task: str
    mode: str


METRICS: dict[str, Metric] = {
    metric.name: metric
    for metric in (
        Metric("accuracy", "classification", "max"),
        Metric("precision", "classification", "max"),
        Metric("recall", "classification", "max"),
        Metric("f1", "classification", "max"),
        Metric("roc_auc", "classification", "max"),
        Metric("mse", "regression", "min"),
        Metric("rmse", "regression", "min"),
        Metric("mae", "regression", "min"),
        Metric("median_ae", "regression", "min"),
        Metric("r2", "regression", "max"),
        # Cross-entropy for classification, mean squared error for regression.
        Metric("loss", ANY_TASK, "min"),
    )
}

_NAMES = {
    "classification": ("accuracy", "precision", "recall", "f1", "roc_auc", "loss"),
    "regression": ("mse", "rmse", "mae", "median_ae", "r2", "loss"),
}


def metric_names(task: str) -> tuple[str, ...]:
    """The names of every metric `compute_metrics` returns for `task`, in a fixed order."""
    _check_task(task)
    return _NAMES[task]


def compute_metrics(
    task: str, y_true: np.ndarray, outputs: np.ndarray, *, n_classes: int
) -> dict[str, float]:
    """Compute every metric of `task`.

    Args:
        task: "classification" or "regression".
        y_true: True targets, `(N,)`: class ids `0..K-1` or real values.
        outputs: The model's outputs: logits `(N, K)` for classification, predictions `(N,)` or
            `(N, 1)` for regression.
        n_classes: K for classification; ignored for regression.

    Returns:
        `{name: value}` for every name in `metric_names(task)`, as Python floats; NaN where a
        metric is undefined (see the module docstring), with one `UndefinedMetricWarning`.

    Raises:
        SpecError: `task` is unknown.
        ValueError: Shapes or labels do not fit each other (a bug in the caller).
    """
    _check_task(task)
    y_true = np.asarray(y_true)
    outputs = np.asarray(outputs)
    if task == "classification":
        _check_classification_inputs(y_true, outputs, n_classes)
    else:
        outputs = _regression_predictions(y_true, outputs)

    # A diverged model: no metric means anything, and scikit-learn would refuse the values.
    if not np.isfinite(outputs).all():
        _warn_once(
            "non-finite",
            f"metrics: outputs hold {int((~np.isfinite(outputs)).sum())} NaN or infinite "
            f"values (did training diverge?); every metric is reported as nan",
        )
        return {name: float("nan") for name in _NAMES[task]}

    if task == "regression":
        return _regression_metrics(y_true, outputs)

    # ROC-AUC needs every class among the true labels; warn here so stacklevel=2 names the
    # caller of compute_metrics.
    missing = np.setdiff1d(np.arange(n_classes), y_true)
    if missing.size:
        _warn_once(
            "roc_auc",
            f"roc_auc: y_true has no sample of class {', '.join(map(str, missing.tolist()))} "
            f"(of {n_classes}); ROC-AUC is undefined and reported as nan",
        )
    return _classification_metrics(y_true, outputs, n_classes, roc_defined=not missing.size)


def reset_warnings() -> None:
    """Say each kind of undefined metric again, the next time it occurs (e.g. in tests)."""
    _SAID.clear()


def _warn_once(kind: str, message: str) -> None:
    """Warn about an undefined metric the first time this process meets its `kind`.

    A search computes metrics for every fold of every epoch of every trial; the same cause
    (a fold without a class) would otherwise repeat the same warning hundreds of times.
    """
    if kind in _SAID:
        return
    _SAID.add(kind)
    # stacklevel 3: the caller of compute_metrics.
    warnings.warn(message, UndefinedMetricWarning, stacklevel=3)


def _check_task(task: str) -> None:
    if task not in _NAMES:
        raise SpecError(f"task: {task!r} is not a task; use one of {', '.join(_NAMES)}")


def _check_classification_inputs(y_true: np.ndarray, logits: np.ndarray, n_classes: int) -> None:
    if n_classes < 2:
        raise ValueError(f"n_classes: {n_classes} must be at least 2 for classification")

    if logits.ndim != 2 or logits.shape[1] != n_classes or len(logits) != len(y_true):
        raise ValueError(
            f"outputs: logits of shape {logits.shape} do not fit {len(y_true)} labels and "
            f"{n_classes} classes; expected ({len(y_true)}, {n_classes})"
        )

    if len(y_true) == 0:
        raise ValueError("y_true: no samples; metrics need at least one")

    if (
        not np.issubdtype(y_true.dtype, np.integer)
        or y_true.min() < 0
        or y_true.max() >= n_classes
    ):
        raise ValueError(
            f"y_true: labels must be integer class ids 0..{n_classes - 1}, got dtype "
            f"{y_true.dtype} with values {y_true.min()}..{y_true.max()}"
        )


def _regression_predictions(y_true: np.ndarray, outputs: np.ndarray) -> np.ndarray:
    # (N, 1) -> (N,), the shape scikit-learn treats as one output.
    if outputs.ndim == 2 and outputs.shape[1] == 1:
        outputs = outputs[:, 0]

    if y_true.ndim != 1 or outputs.shape != y_true.shape or len(y_true) == 0:
        raise ValueError(
            f"outputs: predictions of shape {outputs.shape} do not fit targets of shape "
            f"{y_true.shape}; expected (N,) or (N, 1) with N >= 1 samples"
        )
    return outputs


def _softmax(logits: np.ndarray) -> np.ndarray:
    # Subtracting each row's maximum keeps exp() from overflowing; float64 keeps the rows
    # summing to 1 within the tolerance scikit-learn checks.
    shifted = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def _classification_metrics(
    y_true: np.ndarray, logits: np.ndarray, n_classes: int, *, roc_defined: bool
) -> dict[str, float]:
    probs = _softmax(logits)
    y_pred = probs.argmax(axis=1)
    labels = list(range(n_classes))

    if n_classes == 2:
        averaging = {"average": "binary", "pos_label": 1}
        roc_scores = probs[:, 1]
        roc_options: dict[str, object] = {}
    else:
        averaging = {"average": "macro", "labels": labels}
        roc_scores = probs
        roc_options = {"multi_class": "ovr", "average": "macro", "labels": labels}

    roc_auc = roc_auc_score(y_true, roc_scores, **roc_options) if roc_defined else math.nan
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "precision": float(precision_score(y_true, y_pred, zero_division=0, **averaging)),
        "recall": float(recall_score(y_true, y_pred, zero_division=0, **averaging)),
        "f1": float(f1_score(y_true, y_pred, zero_division=0, **averaging)),
        "roc_auc": float(roc_auc),
        "loss": float(log_loss(y_true, probs, labels=labels)),
    }


def _regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    mse = float(mean_squared_error(y_true, y_pred))
    return {
        "mse": mse,
        "rmse": math.sqrt(mse),
        "mae": float(mean_absolute_error(y_true, y_pred)),
        "median_ae": float(median_absolute_error(y_true, y_pred)),
        "r2": float(r2_score(y_true, y_pred)),
        "loss": mse,
    }

"""Tests of trainers.metrics against values worked out by hand on tiny arrays."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from search_spaces.errors import SpecError
from trainers.metrics import (
    METRICS,
    UndefinedMetricWarning,
    compute_metrics,
    metric_names,
    reset_warnings,
)


@pytest.fixture(autouse=True)
def _warnings_said_afresh() -> None:
    # Each kind of undefined metric is said once per process; every test starts unsaid.
    reset_warnings()


def _logits_for(predictions: list[int], n_classes: int) -> np.ndarray:
    """Logits `(N, K)` whose arg-max is `predictions`: 3 on the predicted class, 0 elsewhere."""
    return 3.0 * np.eye(n_classes, dtype=np.float32)[predictions]


# --- the registry ---------------------------------------------------------------------------


def test_metric_names_per_task() -> None:
    assert metric_names("classification") == (
        "accuracy",
        "precision",
        "recall",
        "f1",
        "roc_auc",
        "loss",
    )
    assert metric_names("regression") == ("mse", "rmse", "mae", "median_ae", "r2", "loss")


@pytest.mark.parametrize(
    ("name", "task", "mode"),
    [
        ("accuracy", "classification", "max"),
        ("roc_auc", "classification", "max"),
        ("f1", "classification", "max"),
        ("mse", "regression", "min"),
        ("median_ae", "regression", "min"),
        ("r2", "regression", "max"),
        ("loss", "any", "min"),
    ],
)
def test_metric_registry(name: str, task: str, mode: str) -> None:
    metric = METRICS[name]
    assert (metric.name, metric.task, metric.mode) == (name, task, mode)


def test_every_listed_metric_is_registered() -> None:
    names = set(metric_names("classification")) | set(metric_names("regression"))
    assert names == set(METRICS)


def test_unknown_task() -> None:
    with pytest.raises(SpecError, match=r"^task: 'ranking' is not a task"):
        metric_names("ranking")
    with pytest.raises(SpecError, match=r"^task: 'ranking' is not a task"):
        compute_metrics("ranking", np.zeros(2), np.zeros(2), n_classes=0)


# --- classification -------------------------------------------------------------------------


def test_binary_by_hand() -> None:
    # Predictions [0, 1, 0, 0] against truth [0, 1, 1, 0]: 3 of 4 right; of the one predicted
    # positive, one is right (precision 1); of the two true positives, one is found (recall 1/2).
    y = np.array([0, 1, 1, 0])
    logits = np.array([[2.0, 0.0], [0.0, 2.0], [3.0, 0.0], [1.0, 0.0]], dtype=np.float32)

    got = compute_metrics("classification", y, logits, n_classes=2)

    assert got["accuracy"] == pytest.approx(0.75)
    assert got["precision"] == pytest.approx(1.0)
    assert got["recall"] == pytest.approx(0.5)
    assert got["f1"] == pytest.approx(2 / 3)
    # P(class 1) = sigmoid(l1 - l0) = 0.119, 0.881, 0.047, 0.269. Positives score 0.881 and 0.047,
    # negatives 0.119 and 0.269: 2 of the 4 positive-negative pairs are ranked right.
    assert got["roc_auc"] == pytest.approx(0.5)
    # Cross-entropy: -log P(true class) = log(1 + e^-d), d = true logit minus the other.
    margins = [2.0, 2.0, -3.0, 1.0]
    expected_loss = sum(math.log1p(math.exp(-d)) for d in margins) / 4
    assert got["loss"] == pytest.approx(expected_loss)
    assert list(got) == list(metric_names("classification"))
    assert all(type(value) is float for value in got.values())


def test_binary_roc_auc_on_a_ranked_example() -> None:
    # Scores 0.1, 0.4, 0.35, 0.8 for truth 0, 0, 1, 1: of the 4 pairs, only (0.35 vs 0.4) is
    # ranked wrong, so ROC-AUC = 3/4.
    y = np.array([0, 0, 1, 1])
    p1 = np.array([0.1, 0.4, 0.35, 0.8])
    logits = np.stack([np.zeros(4), np.log(p1 / (1 - p1))], axis=1)

    got = compute_metrics("classification", y, logits, n_classes=2)

    assert got["roc_auc"] == pytest.approx(0.75)
    assert got["loss"] == pytest.approx(-np.mean(np.log([0.9, 0.6, 0.35, 0.8])))


def test_three_class_macro_by_hand() -> None:
    # Predictions [0, 1, 1, 1, 2, 0] with a different margin per row, so no two scores tie.
    y = np.array([0, 0, 1, 1, 2, 2])
    margins = np.array([3.0, 2.0, 4.0, 1.0, 5.0, 2.5])
    logits = np.eye(3)[[0, 1, 1, 1, 2, 0]] * margins[:, np.newaxis]

    got = compute_metrics("classification", y, logits, n_classes=3)

    # Per class precision 1/2, 2/3, 1; recall 1/2, 1, 1/2; f1 1/2, 4/5, 2/3.
    assert got["accuracy"] == pytest.approx(4 / 6)
    assert got["precision"] == pytest.approx((1 / 2 + 2 / 3 + 1) / 3)
    assert got["recall"] == pytest.approx((1 / 2 + 1 + 1 / 2) / 3)
    assert got["f1"] == pytest.approx((1 / 2 + 4 / 5 + 2 / 3) / 3)
    # A row with margin m scores e^m / (e^m + 2) on its predicted class and 1 / (e^m + 2) on
    # the others. One-vs-rest, counting the positive-negative pairs ranked right:
    # class 0: 4 + 2 of 8; class 1: 4 + 3 of 8; class 2: 4 + 2 of 8.
    assert got["roc_auc"] == pytest.approx((6 / 8 + 7 / 8 + 6 / 8) / 3)
    # Rows 0, 2, 3, 4 are right (-log = log(1 + 2 e^-m)), rows 1 and 5 wrong (log(e^m + 2)).
    right = sum(math.log1p(2 * math.exp(-m)) for m in (3.0, 4.0, 1.0, 5.0))
    wrong = sum(math.log(math.exp(m) + 2) for m in (2.0, 2.5))
    assert got["loss"] == pytest.approx((right + wrong) / 6)


def test_class_never_predicted_scores_zero_for_that_class() -> None:
    y = np.array([0, 1, 2])
    logits = _logits_for([0, 1, 1], 3)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = compute_metrics("classification", y, logits, n_classes=3)

    # Class 2 is never predicted: precision 0 by zero_division; precision 1, 1/2, 0.
    assert got["precision"] == pytest.approx((1 + 1 / 2 + 0) / 3)
    assert got["recall"] == pytest.approx((1 + 1 + 0) / 3)


def test_softmax_is_stable_for_huge_logits() -> None:
    y = np.array([0, 1])
    logits = np.array([[1000.0, 0.0, -1000.0], [0.0, 2000.0, 0.0]], dtype=np.float32)
    # Class 2 is missing from y, so roc_auc warns; only the loss matters here.
    with pytest.warns(UndefinedMetricWarning):
        got = compute_metrics("classification", y, logits, n_classes=3)

    assert got["accuracy"] == 1.0
    assert math.isfinite(got["loss"])
    assert got["loss"] == pytest.approx(0.0, abs=1e-6)


def test_one_class_roc_auc_is_nan_with_one_warning() -> None:
    y = np.array([1, 1, 1])
    logits = np.array([[0.0, 1.0], [1.0, 0.0], [0.0, 2.0]])

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = compute_metrics("classification", y, logits, n_classes=2)

    assert math.isnan(got["roc_auc"])
    assert got["accuracy"] == pytest.approx(2 / 3)
    assert got["recall"] == pytest.approx(2 / 3)
    assert len(caught) == 1
    assert caught[0].category is UndefinedMetricWarning
    assert "no sample of class 0 (of 2); ROC-AUC is undefined" in str(caught[0].message)
    # stacklevel=2: the warning points at the caller, this file.
    assert caught[0].filename == __file__


def test_undefined_metric_is_said_once_however_often_it_occurs() -> None:
    y = np.array([1, 1, 1])
    logits = np.array([[0.0, 1.0], [1.0, 0.0], [0.0, 2.0]])

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        values = [compute_metrics("classification", y, logits, n_classes=2) for _ in range(5)]
        # Another kind of undefined value is still said, once.
        for _ in range(3):
            compute_metrics("classification", y, np.full((3, 2), np.nan), n_classes=2)

    assert all(math.isnan(v["roc_auc"]) for v in values)
    assert [str(w.message).split(":")[0] for w in caught] == ["roc_auc", "metrics"]


def test_binary_fold_without_positives_has_defined_values() -> None:
    # Truth all class 0; one false positive. Precision TP / (TP + FP) = 0 / 1 is defined;
    # recall TP / (TP + FN) = 0 / 0 is taken as 0, and so is f1.
    y = np.array([0, 0, 0])
    logits = _logits_for([0, 1, 0], 2)

    with pytest.warns(UndefinedMetricWarning, match="no sample of class 1"):
        got = compute_metrics("classification", y, logits, n_classes=2)

    assert got["accuracy"] == pytest.approx(2 / 3)
    assert (got["precision"], got["recall"], got["f1"]) == (0.0, 0.0, 0.0)
    assert math.isnan(got["roc_auc"])
    # Cross-entropy of the softmax of (3, 0) and (0, 3): two right, one wrong.
    right, wrong = math.log1p(math.exp(-3.0)), math.log1p(math.exp(3.0))
    assert got["loss"] == pytest.approx((2 * right + wrong) / 3)


def test_class_absent_and_never_predicted_counts_zero_in_macro_averages() -> None:
    # Class 2 is neither in the truth nor predicted. Per class: precision 1, 2/3, 0;
    # recall 1/2, 1, 0; f1 2/3, 4/5, 0.
    y = np.array([0, 1, 0, 1])
    logits = _logits_for([0, 1, 1, 1], 3)

    with pytest.warns(UndefinedMetricWarning):
        got = compute_metrics("classification", y, logits, n_classes=3)

    assert got["precision"] == pytest.approx((1 + 2 / 3 + 0) / 3)
    assert got["recall"] == pytest.approx((1 / 2 + 1 + 0) / 3)
    assert got["f1"] == pytest.approx((2 / 3 + 4 / 5 + 0) / 3)
    assert got["accuracy"] == pytest.approx(3 / 4)


def test_multiclass_missing_class_roc_auc_is_nan() -> None:
    y = np.array([0, 1, 0, 1])
    logits = _logits_for([0, 1, 1, 1], 3)

    with pytest.warns(UndefinedMetricWarning, match=r"no sample of class 2 \(of 3\)"):
        got = compute_metrics("classification", y, logits, n_classes=3)

    assert math.isnan(got["roc_auc"])
    assert got["accuracy"] == pytest.approx(0.75)
    assert math.isfinite(got["loss"])


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_logits_give_nan_metrics(bad: float) -> None:
    logits = np.array([[0.0, 1.0], [bad, 0.0]])

    with pytest.warns(UndefinedMetricWarning, match=r"outputs hold 1 NaN or infinite values"):
        got = compute_metrics("classification", np.array([0, 1]), logits, n_classes=2)

    assert set(got) == set(metric_names("classification"))
    assert all(math.isnan(value) for value in got.values())


@pytest.mark.parametrize(
    ("y", "logits", "n_classes", "message"),
    [
        (np.array([0, 1]), np.zeros((2, 3)), 2, r"expected \(2, 2\)"),
        (np.array([0, 1, 1]), np.zeros((2, 2)), 2, r"expected \(3, 2\)"),
        (np.array([0, 2]), np.zeros((2, 2)), 2, r"integer class ids 0\.\.1"),
        (np.array([0.0, 1.0]), np.zeros((2, 2)), 2, r"integer class ids 0\.\.1"),
        (np.array([0, 0]), np.zeros((2, 1)), 1, r"n_classes: 1 must be at least 2"),
    ],
)
def test_classification_input_errors(
    y: np.ndarray, logits: np.ndarray, n_classes: int, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        compute_metrics("classification", y, logits, n_classes=n_classes)


# --- regression -----------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(4,), (4, 1)])
def test_regression_by_hand(shape: tuple[int, ...]) -> None:
    # Errors 0.5, 0, -1, 2: squares 0.25, 0, 1, 4.
    y = np.array([1.0, 2.0, 3.0, 4.0], dtype=np.float32)
    predictions = np.array([1.5, 2.0, 2.0, 6.0], dtype=np.float32).reshape(shape)

    got = compute_metrics("regression", y, predictions, n_classes=0)

    assert got["mse"] == pytest.approx(5.25 / 4)
    assert got["rmse"] == pytest.approx(math.sqrt(5.25 / 4))
    assert got["mae"] == pytest.approx(3.5 / 4)
    # Median of |errors| 0, 0.5, 1, 2.
    assert got["median_ae"] == pytest.approx(0.75)
    # 1 - SS_res / SS_tot with SS_tot = 2.25 + 0.25 + 0.25 + 2.25 = 5.
    assert got["r2"] == pytest.approx(1 - 5.25 / 5)
    assert got["loss"] == got["mse"]
    assert list(got) == list(metric_names("regression"))


@pytest.mark.parametrize(
    ("y", "constant", "r2"),
    [
        ([1.0, 2.0, 3.0], 2.0, 0.0),  # the mean of y: 0
        ([1.0, 2.0, 3.0], 3.0, 1 - 5 / 2),  # any other constant: below 0
        ([2.0, 2.0, 2.0], 2.0, 1.0),  # constant y, perfect prediction
        ([2.0, 2.0, 2.0], 3.0, 0.0),  # constant y, wrong: scikit-learn's finite 0
    ],
)
def test_r2_of_constant_predictions(y: list[float], constant: float, r2: float) -> None:
    got = compute_metrics("regression", np.array(y), np.full(len(y), constant), n_classes=0)
    assert got["r2"] == pytest.approx(r2)


def test_non_finite_predictions_give_nan_metrics() -> None:
    with pytest.warns(UndefinedMetricWarning, match=r"outputs hold 2 NaN or infinite"):
        got = compute_metrics(
            "regression", np.zeros(3), np.array([np.nan, 0.0, np.inf]), n_classes=0
        )
    assert all(math.isnan(value) for value in got.values())


@pytest.mark.parametrize("outputs", [np.zeros((3, 2)), np.zeros(4), np.zeros((0,))])
def test_regression_shape_errors(outputs: np.ndarray) -> None:
    with pytest.raises(ValueError, match=r"^outputs: predictions of shape"):
        compute_metrics("regression", np.zeros(3), outputs, n_classes=0)

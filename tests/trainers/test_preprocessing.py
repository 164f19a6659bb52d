"""The normalisation wrapper: train statistics only, images untouched, original units out."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from search_spaces.errors import DataError, SpecError
from trainers.preprocessing import Normalized, wrap_with_normalization


class _Constant(nn.Module):
    """Ignores its input and answers `value` for every sample, shape (N, 1)."""

    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.full((x.shape[0], 1), self.value)


def test_tabular_features_use_training_statistics() -> None:
    # Columns: mean 2 / std 1, mean 10 / std 5, constant 3 (std 0 -> scale 1).
    x_train = np.array([[1.0, 5.0, 3.0], [3.0, 15.0, 3.0]], dtype=np.float32)
    wrapped = wrap_with_normalization(
        nn.Identity(), x_train=x_train, y_train=None, task="classification"
    )

    x_new = torch.tensor([[2.0, 20.0, 3.0], [0.0, 0.0, 4.0]])
    expected = torch.tensor([[0.0, 2.0, 0.0], [-2.0, -2.0, 1.0]])
    torch.testing.assert_close(wrapped(x_new), expected)
    torch.testing.assert_close(
        wrapped(torch.from_numpy(x_train)).std(0, unbiased=False)[:2], torch.ones(2)
    )


def test_images_are_left_as_they_are() -> None:
    x_train = np.random.default_rng(0).random((4, 1, 3, 3), dtype=np.float32) * 7 + 2
    wrapped = wrap_with_normalization(
        nn.Identity(), x_train=x_train, y_train=None, task="classification"
    )

    x = torch.from_numpy(x_train)
    assert torch.equal(wrapped(x), x)


@pytest.mark.parametrize(("inner", "expected"), [(0.0, 150.0), (1.0, 200.0), (-2.0, 50.0)])
def test_regression_outputs_come_back_in_original_units(inner: float, expected: float) -> None:
    # Targets 100 and 200: mean 150, population std 50.
    x_train = np.zeros((2, 1), dtype=np.float32)
    y_train = np.array([100.0, 200.0], dtype=np.float32)
    wrapped = wrap_with_normalization(
        _Constant(inner), x_train=x_train, y_train=y_train, task="regression"
    )

    x = torch.zeros(3, 1)
    torch.testing.assert_close(wrapped(x), torch.full((3, 1), expected))
    torch.testing.assert_close(wrapped.standardized(x), torch.full((3, 1), inner))
    torch.testing.assert_close(
        wrapped.standardize_targets(torch.tensor([100.0, 250.0])), torch.tensor([-1.0, 2.0])
    )


def test_classification_logits_pass_through() -> None:
    x_train = np.zeros((2, 1), dtype=np.float32)
    wrapped = wrap_with_normalization(
        _Constant(3.5), x_train=x_train, y_train=np.array([0, 1]), task="classification"
    )
    assert torch.equal(wrapped(torch.zeros(2, 1)), torch.full((2, 1), 3.5))


def test_wrapper_scripts_and_keeps_its_statistics() -> None:
    rng = np.random.default_rng(1)
    x_train = rng.normal(5.0, 3.0, size=(20, 4)).astype(np.float32)
    y_train = rng.normal(-7.0, 2.0, size=20).astype(np.float32)
    inner = nn.Linear(4, 1)
    wrapped = wrap_with_normalization(inner, x_train=x_train, y_train=y_train, task="regression")

    scripted = torch.jit.script(wrapped)

    x = torch.from_numpy(x_train)
    torch.testing.assert_close(scripted(x), wrapped(x))
    torch.testing.assert_close(scripted.standardized(x), wrapped.standardized(x))
    assert set(dict(wrapped.named_buffers())) == {"x_mean", "x_std", "y_mean", "y_std"}
    assert isinstance(wrapped, Normalized)


@pytest.mark.parametrize(
    ("x_train", "y_train", "task", "error", "match"),
    [
        (np.zeros((3, 2)), None, "regression", DataError, r"y_train: got None for 3 samples"),
        (np.array([[np.nan], [1.0]]), None, "classification", DataError, r"x_train: .*NaN"),
        (np.zeros((0, 2)), None, "classification", DataError, r"x_train: got shape \(0, 2\)"),
        (np.zeros((3, 2)), None, "ranking", SpecError, r"task: got 'ranking'"),
    ],
)
def test_bad_inputs_are_refused(x_train, y_train, task, error, match) -> None:
    with pytest.raises(error, match=match):
        wrap_with_normalization(nn.Identity(), x_train=x_train, y_train=y_train, task=task)

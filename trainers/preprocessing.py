"""Input and target standardisation carried inside the model.

The statistics live as buffers of a :class:`Normalized` wrapper, so the exported TorchScript
model takes raw inputs and answers in the data's own units: nobody who loads ``model.pt``
needs to know which mean and scale the search trained with.

Statistics are fitted first (:func:`fit_statistics` for tables and images,
:func:`fit_token_statistics` for token ids, :func:`fit_series_statistics` for forecasting
windows) and carried into a model by :meth:`Statistics.wrap`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from search_spaces.errors import DataError, SpecError

logger = logging.getLogger(__name__)

TASKS: tuple[str, ...] = ("classification", "regression")


class Normalized(nn.Module):
    """Wrap a model so it maps raw inputs to outputs in the target's original units.

    ``forward(x) = inner((x - x_mean) / x_std) * y_std + y_mean``. For image inputs the
    feature statistics are the identity (0 and 1), and for classification so are the target
    statistics, so the wrapper then passes logits through unchanged.

    Args:
        model: The inner model, mapping ``(N, *input_shape)`` to ``(N, n_outputs)``.
        x_mean: Feature means, broadcastable against one input sample.
        x_std: Feature scales (no zeros), same shape as ``x_mean``.
        y_mean: Target means, broadcastable against the ``(N, n_outputs)`` output.
        y_std: Target scales (no zeros), same shape as ``y_mean``.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        x_mean: torch.Tensor,
        x_std: torch.Tensor,
        y_mean: torch.Tensor,
        y_std: torch.Tensor,
    ) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("x_mean", x_mean.detach().clone().float())
        self.register_buffer("x_std", x_std.detach().clone().float())
        self.register_buffer("y_mean", y_mean.detach().clone().float())
        self.register_buffer("y_std", y_std.detach().clone().float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map raw inputs ``(N, *input_shape)`` to outputs ``(N, n_outputs)`` in original units."""
        return self.standardized(x) * self.y_std + self.y_mean

    @torch.jit.export
    def standardized(self, x: torch.Tensor) -> torch.Tensor:
        """Inner-model output ``(N, n_outputs)`` in standardised target units.

        Training losses are computed on this, so a regression loss does not scale with the
        square of the target's units. Integer inputs are token ids and pass through as they are.
        """
        if x.is_floating_point():
            x = (x - self.x_mean) / self.x_std
        return self.model(x)

    @torch.jit.export
    def standardize_targets(self, y: torch.Tensor) -> torch.Tensor:
        """Express regression targets in the units :meth:`standardized` predicts."""
        return (y - self.y_mean) / self.y_std


class Forecaster(Normalized):
    """A :class:`Normalized` forecaster that predicts the change from the last observed value.

    Inputs are windows ``(N, T, F)`` whose feature 0 is the target series. The inner model sees
    ``(N, T, 2F)``: each feature standardised (``x_mean``, ``x_std``), then each feature's
    difference from its value at the window's last step, scaled by ``change_std``. The levels
    say where the series is (a cold night, a work day), the differences how it moved,
    whatever its level. The inner model answers the change of the target from its last
    observed value ``x[:, -1, 0]``, in units of ``y_std`` (the spread of that change on the
    training rows): ``forward(x) = x[:, -1, 0] + inner(...) * y_std``. An inner model that
    answers 0 is thus the persistence forecast, and a trending series needs no extrapolation.

    Args:
        change_std: Scales of the differences from the last step, one per feature ``(F,)``.
        Others as for :class:`Normalized`.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        x_mean: torch.Tensor,
        x_std: torch.Tensor,
        y_mean: torch.Tensor,
        y_std: torch.Tensor,
        change_std: torch.Tensor,
    ) -> None:
        super().__init__(model, x_mean=x_mean, x_std=x_std, y_mean=y_mean, y_std=y_std)
        self.register_buffer("change_std", change_std.detach().clone().float())

    @torch.jit.export
    def standardized(self, x: torch.Tensor) -> torch.Tensor:
        """The forecast ``(N, 1)`` in standardised target units, ``(y - y_mean) / y_std``."""
        last = x[:, -1:, :]  # (N, 1, F)
        levels = (x - self.x_mean) / self.x_std
        changes = (x - last) / self.change_std
        change = self.model(torch.cat([levels, changes], dim=2))  # (N, 1)
        return change + (last[:, :, 0] - self.y_mean) / self.y_std


@dataclass(frozen=True, eq=False)
class Statistics:
    """Standardisation statistics fitted on training rows, ready to go inside a model.

    Attributes:
        x_mean: Feature means, broadcastable against one input sample.
        x_std: Feature scales (no zeros).
        y_mean: Target mean (0 for classification).
        y_std: Target scale (1 for classification).
        change_std: For a forecaster, the scales of each feature's difference from the
            window's last step; None wraps a plain :class:`Normalized` instead.
    """

    x_mean: np.ndarray
    x_std: np.ndarray
    y_mean: np.ndarray
    y_std: np.ndarray
    change_std: np.ndarray | None = None

    @property
    def forecast(self) -> bool:
        """Whether :meth:`wrap` makes a :class:`Forecaster`."""
        return self.change_std is not None

    def wrap(self, model: nn.Module) -> Normalized:
        """``model`` wrapped with these statistics (on the CPU; move it with ``.to(device)``)."""
        buffers = {
            "x_mean": torch.from_numpy(self.x_mean),
            "x_std": torch.from_numpy(self.x_std),
            "y_mean": torch.from_numpy(self.y_mean),
            "y_std": torch.from_numpy(self.y_std),
        }
        if self.change_std is None:
            return Normalized(model, **buffers)
        return Forecaster(model, change_std=torch.from_numpy(self.change_std), **buffers)


def wrap_with_normalization(
    model: nn.Module, *, x_train: np.ndarray, y_train: np.ndarray | None, task: str
) -> Normalized:
    """Fit standardisation statistics on training data and wrap ``model`` with them.

    The same as ``fit_statistics(x_train, y_train, task=task).wrap(model)``.

    Args:
        model: The inner model.
        x_train: Training inputs, ``(N, F)`` for tabular data or ``(N, C, H, W)`` (or any other
            ``ndim > 2``) for images and sequences. Only tabular features are standardised:
            image pixels are left as they are, because per-pixel statistics would erase the
            spatial structure a CNN relies on.
        y_train: Training targets ``(N,)`` or ``(N, T)``; needed for regression, where they
            are standardised, and ignored for classification.
        task: ``"classification"`` or ``"regression"``.

    Returns:
        The :class:`Normalized` wrapper (same device as the statistics: CPU; move it with
        ``.to(device)``). A feature or target whose standard deviation is zero (to float32
        precision) gets scale 1, so a constant column maps to 0 instead of NaN.

    Raises:
        SpecError: ``task`` is unknown.
        DataError: ``x_train`` is empty or not finite, or regression targets are missing or
            not finite.
    """
    return fit_statistics(x_train, y_train, task=task).wrap(model)


def fit_statistics(x_train: np.ndarray, y_train: np.ndarray | None, *, task: str) -> Statistics:
    """The statistics :func:`wrap_with_normalization` carries: see it for the rules.

    Raises:
        SpecError: ``task`` is unknown.
        DataError: ``x_train`` is empty or not finite, or regression targets are missing or
            not finite.
    """
    if task not in TASKS:
        raise SpecError(f"task: got {task!r}, but it must be one of {', '.join(TASKS)}")
    if x_train.ndim < 2 or len(x_train) == 0:
        raise DataError(
            f"x_train: got shape {x_train.shape}, but it needs at least one sample of at "
            "least one feature, shaped (N, ...); pass the training inputs"
        )

    if x_train.ndim == 2:
        x_mean, x_std = _mean_and_scale(x_train, what="x_train")
    else:
        x_mean, x_std = _identity()

    y_mean, y_std = _target_statistics(y_train, n=len(x_train), task=task)
    return Statistics(x_mean, x_std, y_mean, y_std)


def fit_token_statistics(y_train: np.ndarray, *, task: str) -> Statistics:
    """Statistics for token-id inputs: the ids pass through, regression targets are scaled.

    Raises:
        SpecError: ``task`` is unknown.
        DataError: Regression targets are not finite.
    """
    if task not in TASKS:
        raise SpecError(f"task: got {task!r}, but it must be one of {', '.join(TASKS)}")
    y_mean, y_std = _target_statistics(y_train, n=len(y_train), task=task)
    return Statistics(*_identity(), y_mean, y_std)


def fit_series_statistics(x_train: np.ndarray, y_train: np.ndarray, *, task: str) -> Statistics:
    """Statistics for forecasting windows ``(N, T, F)`` whose feature 0 is the target series.

    Each feature is standardised with its mean and spread over every step of the training
    windows. For regression the model is a :class:`Forecaster`, which also sees each feature's
    difference from the window's last step (scaled by its spread over the training windows);
    its target scale is the spread of the change ``y - x[:, -1, 0]`` on the training rows, the
    quantity it learns.

    Raises:
        SpecError: ``task`` is unknown.
        DataError: The windows are not ``(N, T, F)`` with N, T >= 1, or hold NaN or infinity.
    """
    if task not in TASKS:
        raise SpecError(f"task: got {task!r}, but it must be one of {', '.join(TASKS)}")
    if x_train.ndim != 3 or min(x_train.shape[:2]) == 0:
        raise DataError(
            f"x_train: got shape {x_train.shape}, but series windows are (N, T, F) with at "
            "least one window of one step; pass the training windows"
        )

    # (N, T, F) -> (N * T, F): a feature has one mean and scale whatever the step.
    x_mean, x_std = _mean_and_scale(x_train.reshape(-1, x_train.shape[2]), what="x_train")
    if task != "regression":
        y_mean, y_std = _target_statistics(y_train, n=len(x_train), task=task)
        return Statistics(x_mean, x_std, y_mean, y_std)

    y_mean, _ = _target_statistics(y_train, n=len(x_train), task=task)
    _, y_std = _mean_and_scale(y_train - x_train[:, -1, 0], what="y_train")
    changes = x_train - x_train[:, -1:, :]  # (N, T, F)
    _, change_std = _mean_and_scale(changes.reshape(-1, x_train.shape[2]), what="x_train")
    return Statistics(x_mean, x_std, y_mean, y_std, change_std=change_std)


def _identity() -> tuple[np.ndarray, np.ndarray]:
    return np.zeros((), np.float32), np.ones((), np.float32)


def _target_statistics(
    y_train: np.ndarray | None, *, n: int, task: str
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and scale of regression targets; the identity (0, 1) for classification."""
    if task != "regression":
        return _identity()

    if y_train is None or len(y_train) != n:
        got = "None" if y_train is None else f"{len(y_train)} targets"
        raise DataError(
            f"y_train: got {got} for {n} samples, but regression needs one "
            "target per sample to standardise; pass the training targets"
        )
    return _mean_and_scale(y_train, what="y_train")


def _mean_and_scale(values: np.ndarray, *, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Column means and population standard deviations of ``values`` as float32.

    Accumulated in float64 so large datasets do not lose digits. A deviation within float32
    rounding of the mean counts as zero: a constant float32 column can show a tiny nonzero
    deviation after float64 averaging, and dividing by it would blow rounding noise up.
    """
    values = np.asarray(values, dtype=np.float64)
    if not np.isfinite(values).all():
        raise DataError(
            f"{what}: contains NaN or infinite values; drop or impute them before training"
        )

    mean = values.mean(axis=0)
    std = values.std(axis=0)
    tiny = np.finfo(np.float32).eps * np.maximum(1.0, np.abs(mean))
    scale = np.where(std > tiny, std, 1.0)
    return np.asarray(mean, np.float32), np.asarray(scale, np.float32)

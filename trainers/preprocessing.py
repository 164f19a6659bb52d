"""Input and target standardisation carried inside the model.

The statistics live as buffers of a :class:`Normalized` wrapper, so the exported TorchScript
model takes raw inputs and answers in the data's own units: nobody who loads ``model.pt``
needs to know which mean and scale the search trained with.
"""

from __future__ import annotations

import logging

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
        square of the target's units.
        """
        return self.model((x - self.x_mean) / self.x_std)

    @torch.jit.export
    def standardize_targets(self, y: torch.Tensor) -> torch.Tensor:
        """Express regression targets in the units :meth:`standardized` predicts."""
        return (y - self.y_mean) / self.y_std


def wrap_with_normalization(
    model: nn.Module, *, x_train: np.ndarray, y_train: np.ndarray | None, task: str
) -> Normalized:
    """Fit standardisation statistics on training data and wrap ``model`` with them.

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
        x_mean, x_std = np.zeros((), np.float32), np.ones((), np.float32)

    if task == "regression":
        if y_train is None or len(y_train) != len(x_train):
            got = "None" if y_train is None else f"{len(y_train)} targets"
            raise DataError(
                f"y_train: got {got} for {len(x_train)} samples, but regression needs one "
                "target per sample to standardise; pass the training targets"
            )
        y_mean, y_std = _mean_and_scale(y_train, what="y_train")
    else:
        y_mean, y_std = np.zeros((), np.float32), np.ones((), np.float32)

    return Normalized(
        model,
        x_mean=torch.from_numpy(x_mean),
        x_std=torch.from_numpy(x_std),
        y_mean=torch.from_numpy(y_mean),
        y_std=torch.from_numpy(y_std),
    )


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

"""Optimizers, learning-rate schedules and the weight penalty that one trial trains with.

The resolved config names these by plain strings (``optimizer.name``, ``optimizer.schedule``);
this module turns them into torch objects so the training loop never branches on names.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import nn

from search_spaces.errors import SpecError

logger = logging.getLogger(__name__)

OPTIMIZERS: tuple[str, ...] = ("sgd", "adam", "rmsprop")
SCHEDULES: tuple[str, ...] = ("none", "cosine", "step")

# A step schedule divides the learning rate by ten this many times over a run (at most).
_STEP_GAMMA = 0.1
_STEP_DROPS = 3


def make_optimizer(
    parameters: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
    optimizer: Mapping[str, Any],
) -> torch.optim.Optimizer:
    """Build the torch optimizer that ``optimizer`` (the config's ``optimizer`` section) names.

    Args:
        parameters: The parameters to optimise, as ``model.parameters()`` gives them.
        optimizer: ``name`` (one of :data:`OPTIMIZERS`), ``lr``, and where the optimizer uses
            them ``momentum`` (sgd, rmsprop; ``None`` means 0) and ``nesterov`` (sgd only).
            Other keys (``batch_size``, ``schedule``) are ignored here.

    Returns:
        A ``torch.optim.SGD``, ``Adam`` or ``RMSprop`` without weight decay: L1/L2 penalties
        are added to the loss by :func:`weight_penalty`, so they act the same under every
        optimizer.

    Raises:
        SpecError: The name is unknown, or ``lr`` / ``momentum`` is negative or missing.
    """
    name = optimizer.get("name")
    if name not in OPTIMIZERS:
        raise SpecError(
            f"optimizer.name: got {name!r}, but it must be one of {', '.join(OPTIMIZERS)}; "
            "pick one of those"
        )

    lr = _non_negative(optimizer, "lr", required=True)
    momentum = _non_negative(optimizer, "momentum", required=False)

    if name == "sgd":
        nesterov = bool(optimizer.get("nesterov") or False)
        # Nesterov with zero momentum is plain SGD, but torch refuses the combination; a search
        # that samples momentum 0.0 should train, not fail the trial.
        if nesterov and momentum == 0.0:
            logger.debug("optimizer.nesterov ignored because optimizer.momentum is 0")
            nesterov = False
        return torch.optim.SGD(parameters, lr=lr, momentum=momentum, nesterov=nesterov)

    if name == "rmsprop":
        return torch.optim.RMSprop(parameters, lr=lr, momentum=momentum)

    return torch.optim.Adam(parameters, lr=lr)


def make_lr_schedule(
    optimizer: torch.optim.Optimizer, *, schedule: str, epochs: int
) -> torch.optim.lr_scheduler.LRScheduler | None:
    """Build the learning-rate schedule, to be stepped once per epoch.

    Args:
        optimizer: The optimizer whose learning rate the schedule drives.
        schedule: ``"none"`` (constant), ``"cosine"`` (cosine annealing to 0 over ``epochs``)
            or ``"step"`` (multiply by 0.1 every ``max(1, epochs // 3)`` epochs).
        epochs: Length of the run in epochs, at least 1.

    Returns:
        The scheduler, or ``None`` for ``"none"``.

    Raises:
        SpecError: The schedule is unknown or ``epochs`` is below 1.
    """
    if schedule not in SCHEDULES:
        raise SpecError(
            f"optimizer.schedule: got {schedule!r}, but it must be one of "
            f"{', '.join(SCHEDULES)}; pick one of those"
        )
    if epochs < 1:
        raise SpecError(f"training.epochs: got {epochs}, but it must be >= 1; raise it")

    if schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    if schedule == "step":
        step_size = max(1, epochs // _STEP_DROPS)
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=step_size, gamma=_STEP_GAMMA)
    return None


def weight_penalty(model: nn.Module, *, l1: float, l2: float) -> torch.Tensor:
    """Elastic-net penalty ``l1 * sum|w| + l2 * sum w**2`` over the model's weight tensors.

    Only parameters with more than one dimension count (linear weight matrices, convolution
    kernels, recurrent weight matrices): biases and normalisation scales/shifts are 1-D and
    are left unpenalised, as is usual, because shrinking them does not reduce capacity.

    Args:
        model: The model being trained.
        l1: Coefficient of the L1 term, >= 0.
        l2: Coefficient of the squared-L2 term, >= 0.

    Returns:
        A 0-dim tensor on the model's device, differentiable w.r.t. the weights; an exact zero
        (without touching the weights) when both coefficients are 0.

    Raises:
        SpecError: A coefficient is negative.
    """
    for field, value in (("l1", l1), ("l2", l2)):
        if value < 0:
            raise SpecError(
                f"regularization.{field}: got {value}, but it must be >= 0; use 0 to disable it"
            )

    weights = [p for p in model.parameters() if p.dim() > 1]
    device = weights[0].device if weights else torch.device("cpu")
    penalty = torch.zeros((), device=device)
    if (l1 == 0 and l2 == 0) or not weights:
        return penalty

    if l1 != 0:
        penalty = penalty + l1 * sum(w.abs().sum() for w in weights)
    if l2 != 0:
        penalty = penalty + l2 * sum(w.pow(2).sum() for w in weights)
    return penalty


def _non_negative(optimizer: Mapping[str, Any], key: str, *, required: bool) -> float:
    """Read ``optimizer[key]`` as a float >= 0; a missing or ``None`` optional value is 0."""
    value = optimizer.get(key)
    if value is None:
        if required:
            raise SpecError(f"optimizer.{key}: missing; give a number >= 0")
        return 0.0

    value = float(value)
    if not value >= 0:  # also rejects NaN
        raise SpecError(f"optimizer.{key}: got {value}, but it must be >= 0; use a value >= 0")
    return value

"""Trial schedulers: which running trials Ray Tune stops early.

Trials report a 1-based, increasing integer `epoch` with every result, and schedulers measure
progress in it, so `grace_period` and `max_epochs` read in the units of the spec's
`training.epochs`.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from search_spaces.domains import did_you_mean
from search_spaces.errors import SpecError

if TYPE_CHECKING:
    from ray.tune.schedulers import TrialScheduler

logger = logging.getLogger(__name__)

SCHEDULERS = ("none", "asha")

# The result key that counts a trial's progress; see the module docstring.
TIME_ATTR = "epoch"


def build_scheduler(
    name: str,
    *,
    metric: str,
    mode: str,
    max_epochs: int,
    grace_period: int,
    reduction_factor: float,
) -> TrialScheduler | None:
    """The Tune scheduler called `name`, or None for `none` (Tune then runs trials FIFO).

    Raises:
        SpecError: the name is unknown, or the ASHA settings contradict each other.
    """
    if name not in SCHEDULERS:
        raise SpecError(
            f"search.scheduler: unknown scheduler {name!r}{did_you_mean(name, SCHEDULERS)}; "
            f"use one of {', '.join(SCHEDULERS)}"
        )
    if name == "none":
        return None

    _check_asha(
        mode=mode,
        max_epochs=max_epochs,
        grace_period=grace_period,
        reduction_factor=reduction_factor,
    )
    from ray.tune.schedulers import ASHAScheduler

    logger.debug(
        "ASHA on %s (%s): %d to %d epochs, reduction factor %g",
        metric,
        mode,
        grace_period,
        max_epochs,
        reduction_factor,
    )
    return ASHAScheduler(
        time_attr=TIME_ATTR,
        metric=metric,
        mode=mode,
        max_t=max_epochs,
        grace_period=grace_period,
        reduction_factor=reduction_factor,
    )


def _check_asha(*, mode: str, max_epochs: int, grace_period: int, reduction_factor: float):
    # ASHA checks these with asserts, which give no field name and vanish under python -O.
    if mode not in ("min", "max"):
        raise SpecError(f"evaluation.mode: must be min or max, got {mode!r}")
    if max_epochs < 1:
        raise SpecError(f"training.epochs: {max_epochs} must be >= 1")
    if not 1 <= grace_period <= max_epochs:
        raise SpecError(
            f"search.grace_period: {grace_period} must be between 1 and training.epochs "
            f"({max_epochs}); lower it or train for more epochs"
        )
    if reduction_factor <= 1:
        raise SpecError(
            f"search.reduction_factor: {reduction_factor} must be > 1 (each rung keeps "
            "1/reduction_factor of the trials that reach it); 3 or 4 is usual"
        )

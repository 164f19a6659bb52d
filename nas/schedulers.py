"""Trial schedulers: which running trials Ray Tune stops early.

Trials report a 1-based, increasing integer `epoch` with every result, and schedulers measure
progress in it, so `grace_period` and `max_epochs` read in the units of the spec's
`training.epochs`.

    none       Tune runs every trial to the end (FIFO)
    asha       asynchronous successive halving: at each rung, only the best 1/reduction_factor
               of the trials that reached it go on; never waits for stragglers
    hyperband  synchronous HyperBand: brackets of successive halving with different
               aggressiveness; pauses trials at each rung until its bracket has caught up
    median     median stopping: after grace_period epochs a trial stops when its best value is
               worse than the median of the other trials' running means at that epoch

Every scheduler sees the objective through `FiniteOnly`, so a NaN or infinite fold mean never
enters a rung, a bracket or a median.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from search_spaces.domains import did_you_mean
from search_spaces.errors import SpecError

if TYPE_CHECKING:
    from ray.tune.schedulers import TrialScheduler

logger = logging.getLogger(__name__)

SCHEDULERS = ("none", "asha", "hyperband", "median")

# Trials the median rule waits for before it compares (Ray's default).
MEDIAN_MIN_SAMPLES = 3

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
        SpecError: the name is unknown, or its settings contradict each other.
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
    from ray.tune.schedulers import ASHAScheduler, HyperBandScheduler, MedianStoppingRule

    from nas.finite_only import FiniteOnly

    logger.debug(
        "%s on %s (%s): %d to %d epochs, reduction factor %g",
        name,
        metric,
        mode,
        grace_period,
        max_epochs,
        reduction_factor,
    )
    if name == "asha":
        inner = ASHAScheduler(
            time_attr=TIME_ATTR,
            metric=metric,
            mode=mode,
            max_t=max_epochs,
            grace_period=grace_period,
            reduction_factor=reduction_factor,
        )
    elif name == "hyperband":
        # FIXME: when a trial errors in Tune (raises before its first report), HyperBand
        # leaves its bracket's paused trials paused and Tune idles: seen with Ray 2.60's
        # HyperBandScheduler alone (no FiniteOnly) in a synthetic run of 8 trials, 3 epochs.
        # Our trainable turns its own errors into a last report, so only a dead worker gets
        # there; whether a diverged (NaN) trial removed by FiniteOnly can too is untested.
        # HyperBand's first rung is max_epochs / reduction_factor ** k for its brackets;
        # it has no grace period of its own.
        inner = HyperBandScheduler(
            time_attr=TIME_ATTR,
            metric=metric,
            mode=mode,
            max_t=max_epochs,
            reduction_factor=reduction_factor,
        )
    else:
        inner = MedianStoppingRule(
            time_attr=TIME_ATTR,
            metric=metric,
            mode=mode,
            grace_period=grace_period,
            min_samples_required=MEDIAN_MIN_SAMPLES,
        )
    return FiniteOnly(inner, metric=metric)


def _check_asha(*, mode: str, max_epochs: int, grace_period: int, reduction_factor: float):
    # Ray checks these with asserts, which give no field name and vanish under python -O.
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

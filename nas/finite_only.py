"""A Tune scheduler wrapper that keeps non-finite objectives out of every comparison.

A trial that diverges ends with a last report whose fold mean is NaN (cluster.trainable). Ray's
schedulers would take that value in: ASHA records it in a rung (and compares `nan < cutoff`,
which is always false, so the trial is never stopped), HyperBand sorts a bracket by it (in
no defined order), and the median rule takes an infinity into a trial's best value. Behind
`FiniteOnly`, such a result never reaches the scheduler: the trial is removed from it, as a
trial that left early would be, and stopped (it was ending anyway: a NaN is its last report).
HyperBand must hear of it at once: its bracket waits until every trial it holds reaches the
rung, and a diverged trial never would.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from ray.tune.schedulers import TrialScheduler

if TYPE_CHECKING:
    from ray.tune.execution.tune_controller import TuneController
    from ray.tune.experiment import Trial


class FiniteOnly(TrialScheduler):
    """Forwards everything to `inner`, except results whose objective is not finite."""

    def __init__(self, inner: TrialScheduler, *, metric: str) -> None:
        super().__init__()
        self.inner = inner
        self._objective = metric
        # Trials removed from `inner` for a non-finite result; it must not hear of them again.
        self._dropped: set[str] = set()

    @property
    def metric(self) -> str | None:
        return self.inner.metric

    @property
    def supports_buffered_results(self) -> bool:
        return self.inner.supports_buffered_results

    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        return self.inner.set_search_properties(metric, mode, **spec)

    def on_trial_add(self, tune_controller: TuneController, trial: Trial) -> None:
        self.inner.on_trial_add(tune_controller, trial)

    def on_trial_error(self, tune_controller: TuneController, trial: Trial) -> None:
        if trial.trial_id not in self._dropped:
            self.inner.on_trial_error(tune_controller, trial)

    def on_trial_result(
        self, tune_controller: TuneController, trial: Trial, result: dict[str, Any]
    ) -> str:
        if trial.trial_id in self._dropped:
            return TrialScheduler.STOP
        if not self._finite(result):
            self._drop(tune_controller, trial)
            return TrialScheduler.STOP
        return self.inner.on_trial_result(tune_controller, trial, result)

    def on_trial_complete(
        self, tune_controller: TuneController, trial: Trial, result: dict[str, Any]
    ) -> None:
        if trial.trial_id in self._dropped:
            return
        if self._finite(result or {}):
            self.inner.on_trial_complete(tune_controller, trial, result)
        else:
            self._drop(tune_controller, trial)

    def on_trial_remove(self, tune_controller: TuneController, trial: Trial) -> None:
        if trial.trial_id not in self._dropped:
            self.inner.on_trial_remove(tune_controller, trial)

    def _drop(self, tune_controller: TuneController, trial: Trial) -> None:
        self._dropped.add(trial.trial_id)
        self.inner.on_trial_remove(tune_controller, trial)

    def choose_trial_to_run(self, tune_controller: TuneController) -> Trial | None:
        return self.inner.choose_trial_to_run(tune_controller)

    def debug_string(self) -> str:
        return self.inner.debug_string()

    def save(self, checkpoint_path: str) -> None:
        self.inner.save(checkpoint_path)

    def restore(self, checkpoint_path: str) -> None:
        self.inner.restore(checkpoint_path)

    def _finite(self, result: dict[str, Any]) -> bool:
        value = result.get(self._objective)
        if value is None:
            # No objective at all: the scheduler's own rule for that applies.
            return True
        try:
            return math.isfinite(float(value))
        except (TypeError, ValueError):
            return False

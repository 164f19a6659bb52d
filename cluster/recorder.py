"""A Ray Tune callback that writes every trial into the results store as soon as it ends.

Tune calls it in the driver process, so the store has a single writer. Per-epoch results are kept
in memory while a trial runs and written with the trial's row when it completes, is stopped by
the scheduler, or fails; a trial still running when the driver dies is simply absent and runs
again on resume.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ray.tune import Callback

from search_spaces.parameters import Parameter, flat_values, resolve
from trainers.loop import TrialDiverged

if TYPE_CHECKING:
    from ray.tune.experiment import Trial

    from cluster.store import ResultsStore


def trial_status(last_result: Mapping[str, Any] | None, error: BaseException | None) -> str:
    """completed, pruned (stopped by the scheduler), diverged or failed."""
    if error is not None:
        return "diverged" if isinstance(error, TrialDiverged) else "failed"
    if last_result is None:
        return "failed"
    return "completed" if last_result.get("last_report") else "pruned"


def trial_exception(trial: Trial) -> BaseException:
    """The exception a failed trial raised, as its own class when Ray kept it.

    Tune has just written it beside the trial (`pickled_error_file`, `error_file`); it syncs
    them to the run's storage later, so they are read from the trial's local folder.
    """
    from ray import cloudpickle

    error: Any = None
    if trial.pickled_error_file and os.path.isfile(trial.pickled_error_file):
        with open(trial.pickled_error_file, "rb") as file:
            error = cloudpickle.load(file)
    # Ray wraps what the trainable raised in a RayTaskError; `cause` is the original.
    cause = getattr(error, "cause", None) or error
    if isinstance(cause, BaseException):
        return cause

    text = "the trial failed without an error message"
    if trial.error_file and os.path.isfile(trial.error_file):
        text = Path(trial.error_file).read_text(errors="replace")
    return RuntimeError(text)


def error_summary(error: BaseException) -> str:
    """One line for the store: `TypeName: the message's last line`."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[-1] if lines else 'no message'}"


class StoreRecorder(Callback):
    """Append each finished trial (trials, folds and epochs rows) to a ResultsStore."""

    def __init__(
        self,
        store: ResultsStore,
        *,
        parameters: Sequence[Parameter],
        sample_of: Any,
        metrics: Sequence[str],
        n_folds: int,
        strategy: str,
        scheduler: str,
    ) -> None:
        self._store = store
        self._parameters = list(parameters)
        self._sample_of = sample_of  # Tune config -> flat sample (unpacks grid points)
        self._metrics = [*metrics, "train_loss"]
        self._n_folds = n_folds
        self._labels = {"strategy": strategy, "scheduler": scheduler}
        self._results: dict[str, list[dict[str, Any]]] = {}
        self._started: dict[str, float] = {}
        self.written: list[str] = []

    def on_trial_start(self, iteration: int, trials: list, trial: Trial, **info: Any) -> None:
        self._started[trial.trial_id] = time.monotonic()
        self._results[trial.trial_id] = []

    def on_trial_result(self, iteration: int, trials: list, trial: Trial, result: dict, **info):
        self._results.setdefault(trial.trial_id, []).append(dict(result))

    def on_trial_complete(self, iteration: int, trials: list, trial: Trial, **info: Any) -> None:
        self._write(trial, error=None)

    def on_trial_error(self, iteration: int, trials: list, trial: Trial, **info: Any) -> None:
        self._write(trial, error=trial_exception(trial))

    def _write(self, trial: Trial, *, error: BaseException | None) -> None:
        results = self._results.pop(trial.trial_id, [])
        seconds = time.monotonic() - self._started.pop(trial.trial_id, time.monotonic())
        last = results[-1] if results else None
        status = trial_status(last, error)

        self._store.write_trial(
            trial=self._trial_row(
                trial,
                results,
                status=status,
                error=None if error is None else error_summary(error),
                seconds=seconds,
            ),
            folds=self._fold_rows(trial.trial_id, results),
            epochs=self._epoch_rows(trial.trial_id, results),
        )
        self.written.append(trial.trial_id)

    def _trial_row(
        self, trial: Trial, results: list[dict], *, status: str, error: str | None, seconds: float
    ) -> dict[str, Any]:
        candidate = resolve(self._parameters, self._sample_of(trial.config))
        best = _best_result(results)
        row: dict[str, Any] = {
            "trial_id": trial.trial_id,
            "status": status,
            **self._labels,
            **{f"param.{name}": value for name, value in flat_values(candidate).items()},
            "epochs_run": len(results),
            "seconds": seconds,
            "error": error,
        }
        if results:
            first = results[0]
            row.update(
                trial_number=first["trial_number"],
                seed=first["trial_seed"],
                node=first["node"],
                params_count=first["params_count"],
                best_epoch=best["epoch"],
            )
        for metric in self._metrics:
            row[f"{metric}_mean"] = best.get(f"{metric}_mean", math.nan) if best else math.nan
            row[f"{metric}_std"] = best.get(f"{metric}_std", math.nan) if best else math.nan
        return row

    def _fold_rows(self, trial_id: str, results: list[dict]) -> list[dict[str, Any]]:
        best = _best_result(results)
        if best is None:
            return []
        return [
            {"trial_id": trial_id, "fold": fold, **self._fold_values(best, fold)}
            for fold in range(self._n_folds)
        ]

    def _epoch_rows(self, trial_id: str, results: list[dict]) -> list[dict[str, Any]]:
        return [
            {
                "trial_id": trial_id,
                "fold": fold,
                "epoch": result["epoch"],
                **self._fold_values(result, fold),
            }
            for result in results
            for fold in range(self._n_folds)
        ]

    def _fold_values(self, result: Mapping[str, Any], fold: int) -> dict[str, float]:
        return {m: result.get(f"{m}_fold{fold}", math.nan) for m in self._metrics}


def _best_result(results: list[dict]) -> dict | None:
    """The epoch the trial itself marked best (its `best_epoch`), else the last one."""
    if not results:
        return None
    best_epoch = results[-1].get("best_epoch")
    for result in results:
        if result["epoch"] == best_epoch:
            return result
    return results[-1]

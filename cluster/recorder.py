"""A Ray Tune callback that writes every trial into the results store as soon as it ends.

Tune calls it in the driver process, so the store has a single writer. Per-epoch results are kept
in memory while a trial runs and written with the trial's row when it completes, is stopped by
the scheduler, or fails; a trial still running when the driver dies is simply absent and runs
again, from its first epoch, on resume.

A trial retried after its worker died goes on from its last checkpoint and reports only the
epochs after it; the epochs before are already here, since the driver lived on. An epoch
reported twice (the worker died between a report and the next checkpoint) counts once, the
later report winning.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ray.tune import Callback

from cluster.trainable import TRIAL_ERROR, TRIAL_STATUS, error_line
from nas.numbering import trial_number
from search_spaces.parameters import Parameter, flat_values, resolve
from trainers.loop import TrialDiverged

if TYPE_CHECKING:
    from ray.tune.experiment import Trial

    from cluster.store import ResultsStore

logger = logging.getLogger(__name__)


def trial_outcome(
    epochs: Sequence[Mapping[str, Any]],
    *,
    terminal: Mapping[str, Any] | None,
    error: BaseException | None,
    objective: str,
) -> tuple[str, str | None]:
    """(status, one-line error or None) of a trial from what it reported and how it ended.

    Status is completed, pruned (stopped by the scheduler), diverged, failed or infeasible. `terminal` is
    the last report of a trial that raised (it holds TRIAL_STATUS); `error` what Tune caught
    when the trial's worker died more often than it was retried.
    """
    if terminal is not None:
        return str(terminal[TRIAL_STATUS]), str(terminal.get(TRIAL_ERROR) or "") or None
    if error is not None:
        status = "diverged" if isinstance(error, TrialDiverged) else "failed"
        return status, error_summary(error)
    if not epochs:
        return "failed", "the trial ended without reporting anything"
    if not any(objective in result for result in epochs):
        reported = sorted(
            {k.removesuffix("_mean") for r in epochs for k in r if k.endswith("_mean")}
        )
        return "failed", (
            f"the trial never reported {objective}; it reported {', '.join(reported) or 'none'}"
        )
    return ("completed" if epochs[-1].get("last_report") else "pruned"), None


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
    return error_line(error)


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
        objective: str,
    ) -> None:
        self._store = store
        self._parameters = list(parameters)
        self._sample_of = sample_of  # Tune config -> flat sample (unpacks grid points)
        self._metrics = [*metrics, "train_loss"]
        self._n_folds = n_folds
        self._labels = {"strategy": strategy, "scheduler": scheduler}
        self._objective = objective
        # Metrics already said to be NaN in some fold; each is said once per search.
        self._said_nan: set[str] = set()
        self._results: dict[str, list[dict[str, Any]]] = {}
        self._started: dict[str, float] = {}
        self.written: list[str] = []

    def on_trial_start(self, iteration: int, trials: list, trial: Trial, **info: Any) -> None:
        # Also called when a retry starts; what the trial reported before is kept.
        self._started.setdefault(trial.trial_id, time.monotonic())
        self._results.setdefault(trial.trial_id, [])

    def on_trial_result(self, iteration: int, trials: list, trial: Trial, result: dict, **info):
        self._results.setdefault(trial.trial_id, []).append(dict(result))

    def on_trial_complete(self, iteration: int, trials: list, trial: Trial, **info: Any) -> None:
        self._write(trial, error=None)

    def on_trial_error(self, iteration: int, trials: list, trial: Trial, **info: Any) -> None:
        self._write(trial, error=trial_exception(trial))

    def _write(self, trial: Trial, *, error: BaseException | None) -> None:
        reports = self._results.pop(trial.trial_id, [])
        seconds = time.monotonic() - self._started.pop(trial.trial_id, time.monotonic())
        terminal = next((r for r in reversed(reports) if TRIAL_STATUS in r), None)
        results = _epochs_once(r for r in reports if TRIAL_STATUS not in r and "epoch" in r)
        status, message = trial_outcome(
            results, terminal=terminal, error=error, objective=self._objective
        )

        self._store.write_trial(
            trial=self._trial_row(
                trial,
                results,
                constant=terminal or (results[0] if results else {}),
                status=status,
                error=message,
                seconds=seconds,
            ),
            folds=self._fold_rows(trial.trial_id, results),
            epochs=self._epoch_rows(trial.trial_id, results),
        )
        self.written.append(trial.trial_id)
        _drop_checkpoints(trial)
        if status in ("completed", "pruned"):
            self._say_undefined(trial.trial_id, _best_result(results))

    def _say_undefined(self, trial_id: str, best: Mapping[str, Any] | None) -> None:
        """Warn, once per metric and search, that a trained trial's metric is NaN in a fold."""
        for metric in self._metrics:
            if best is None or metric in self._said_nan:
                continue
            values = [best.get(f"{metric}_fold{fold}", math.nan) for fold in range(self._n_folds)]
            undefined = sum(1 for value in values if value is None or math.isnan(value))
            if undefined:
                self._said_nan.add(metric)
                logger.warning(
                    "trial %s: %s is undefined (NaN) in %d of %d folds, so its fold mean is NaN; "
                    "see trainers.metrics for when a metric is undefined (said once per search)",
                    trial_id,
                    metric,
                    undefined,
                    self._n_folds,
                )

    def _trial_row(
        self,
        trial: Trial,
        results: list[dict],
        *,
        constant: Mapping[str, Any],
        status: str,
        error: str | None,
        seconds: float,
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
            # What every report of the trial carries; a trial that died before its first
            # report has none of it.
            "trial_number": _number_of(trial, constant),
            "seed": constant.get("trial_seed"),
            "node": constant.get("node"),
            "params_count": constant.get("params_count"),
            "macs": constant.get("macs"),
            "latency_ms": constant.get("latency_ms"),
            "best_epoch": None if best is None else best["epoch"],
        }
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


def _drop_checkpoints(trial: Trial) -> None:
    """Delete a finished trial's checkpoints: they serve retries only, and can be large."""
    folder = getattr(trial, "path", None)
    if not folder or not os.path.isdir(folder):
        return  # a remote storage path; its checkpoints stay
    for checkpoint in Path(folder).glob("checkpoint_*"):
        shutil.rmtree(checkpoint, ignore_errors=True)


def _number_of(trial: Trial, constant: Mapping[str, Any]) -> int | None:
    """The trial's number as it reported it, else as its config and id say."""
    if constant.get("trial_number") is not None:
        return int(constant["trial_number"])
    try:
        return trial_number(trial.config, trial.trial_id)
    except ValueError:
        return None


def _epochs_once(results: Iterable[dict]) -> list[dict]:
    """One result per epoch, in epoch order; of an epoch reported twice, the later one."""
    by_epoch = {result["epoch"]: result for result in results}
    return [by_epoch[epoch] for epoch in sorted(by_epoch)]


def _best_result(results: list[dict]) -> dict | None:
    """The epoch the trial itself marked best (its `best_epoch`), else the last one."""
    if not results:
        return None
    best_epoch = results[-1].get("best_epoch")
    for result in results:
        if result["epoch"] == best_epoch:
            return result
    return results[-1]

"""What a person watching a search sees: a line per finished trial, and a heartbeat in between.

Each line says how far the search is (trials done of the total, running, stopped early by the
scheduler, failed), the trial's fold-mean objective with its fold std at its best epoch (the
value the store records and the ranking uses), the best of those so far, and an estimate of the
time left. While no trial ends, a status line every `heartbeat` seconds shows the search is
alive. Lines are plain text with no cursor tricks, so they read the same in a terminal, a log
file and CI.

Kept apart from control flow: the driver hands this reporter a text stream (the CLI passes
stdout, tests pass a StringIO, quiet mode passes nothing) and it only ever writes to it.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TextIO

from ray.tune import Callback

from cluster.recorder import error_summary, trial_exception
from cluster.trainable import TRIAL_ERROR, TRIAL_STATUS

if TYPE_CHECKING:
    from ray.tune.experiment import Trial

# Seconds between status lines while no trial ends.
HEARTBEAT_SECONDS = 60.0

# Ray log records that repeat, on the console, what our own lines already say. Each is
# (logger name, start of the message); everything else Ray logs still comes through.
_REPEATS = (
    # A notice that a local Ray turned token authentication on (it stays on); a warning
    # that it is *off* is kept.
    ("ray._private.authentication.authentication_token_setup", "Token authentication is enabled"),
    # The list of failed trials after the search; our summary counts them and the store
    # keeps each one's error.
    ("ray.tune.tune", "Trials did not complete"),
)


class _DropRepeats(logging.Filter):
    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefix)


def tame_ray_console() -> None:
    """Keep Ray's own console output from burying ours; call before Ray starts.

    Uses Tune's supported switches: the old console reporter, which `verbose=0` silences; no
    trial-error tracebacks on the console (`TUNE_PRINT_ALL_TRIAL_ERRORS=0`: the reporter prints
    one line per failed trial and the store keeps its error); no CSV and JSON logger files
    beside the store (`TUNE_DISABLE_AUTO_CALLBACK_LOGGERS=1`; TensorBoard is added explicitly,
    see cluster.tracking). Settings the user already made in the environment win.
    """
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("TUNE_PRINT_ALL_TRIAL_ERRORS", "0")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")

    # Filters on the emitting loggers themselves: ray.init resets the level of the "ray"
    # logger, but leaves its children's filters alone.
    for name, prefix in _REPEATS:
        emitter = logging.getLogger(name)
        if not any(isinstance(f, _DropRepeats) and f.prefix == prefix for f in emitter.filters):
            emitter.addFilter(_DropRepeats(prefix))
    for name in ("ray", "ray.tune", "ray.train"):
        logging.getLogger(name).setLevel(logging.ERROR)


def format_duration(seconds: float) -> str:
    """`42s`, `3m05s`, `1h02m`; `?` when unknown."""
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def estimate_seconds_left(
    *,
    finished: list[float],
    running: list[tuple[float, int]],
    pending: int,
    slots: int,
    epochs: int | None,
) -> float:
    """Wall seconds until the search ends, from the trials seen so far; NaN before any evidence.

    Args:
        finished: Durations of the trials that ended (completed, stopped or failed).
        running: (age in seconds, epochs reported) of each running trial.
        pending: Trials not started yet.
        slots: How many trials run at once.
        epochs: Epochs a trial trains at most; lets running trials give an estimate before
            any has finished.

    A trial is assumed to take the mean duration of the finished ones (early-stopped included,
    so a scheduler's pruning shortens the estimate as it happens). Before any finishes, a running
    trial's pace per epoch times `epochs` stands in. The remaining work, running trials' rest
    included, is shared among the slots.
    """
    if finished:
        per_trial = sum(finished) / len(finished)
    else:
        paces = [age / reported for age, reported in running if reported > 0]
        if not paces or epochs is None:
            return math.nan
        per_trial = sum(paces) / len(paces) * epochs

    work = sum(max(per_trial - age, 0.0) for age, _ in running) + pending * per_trial
    return work / max(slots, 1)


class ProgressReporter(Callback):
    """Writes a line per finished trial and a heartbeat to `stream`, counting as trials go.

    Args:
        stream: Where lines go; None writes nothing (quiet mode) but still counts.
        objective: The fold-mean key ranked by, e.g. `accuracy_mean`.
        mode: `max` or `min`.
        total: Trials the search will run.
        concurrency: Trials run at once; the estimate of the time left shares work among them.
        epochs: Epochs a trial trains at most; gives an estimate before the first trial ends.
        heartbeat: Seconds between status lines while no trial ends; None for none.
        clock: Monotonic seconds; tests pass a fake one.
    """

    def __init__(
        self,
        stream: TextIO | None,
        *,
        objective: str,
        mode: str,
        total: int,
        concurrency: int | None = None,
        epochs: int | None = None,
        heartbeat: float | None = HEARTBEAT_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stream = stream
        self._objective = objective
        self._std_key = objective.removesuffix("_mean") + "_std"
        self._mode = mode
        self._total = total
        self._concurrency = concurrency
        self._epochs = epochs
        self._heartbeat = heartbeat
        self._clock = clock

        self._done = 0
        self._stopped_early = 0
        self._failed = 0
        # Over a bound of search.constraints: recorded, never trained; not a failure.
        self._infeasible = 0
        self._best: tuple[float, float, str] | None = None
        self._started: dict[str, float] = {}
        self._reported: dict[str, int] = {}
        self._best_result: dict[str, dict[str, Any]] = {}
        self._last_result: dict[str, dict[str, Any]] = {}
        self._durations: list[float] = []
        self._search_started = clock()
        self._last_line = self._search_started

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles callbacks into its experiment state; a console stream cannot be
        # pickled, and a restored reporter gets the new console from its caller anyway.
        return {**self.__dict__, "_stream": None}

    def say(self, line: str) -> None:
        self._last_line = self._clock()
        if self._stream is not None:
            self._stream.write(line + "\n")
            self._stream.flush()

    # -- Tune's callback hooks -------------------------------------------------------------

    def on_trial_start(self, iteration: int, trials: list, trial: Trial, **info: Any) -> None:
        # Also called when a retry starts: the trial's clock and epochs go on.
        self._started.setdefault(trial.trial_id, self._clock())
        self._reported.setdefault(trial.trial_id, 0)

    def on_trial_result(self, iteration: int, trials: list, trial: Trial, result: dict, **info):
        trial_id = trial.trial_id
        self._started.setdefault(trial_id, self._clock())  # a trial restored mid-run
        if TRIAL_STATUS in result or "epoch" not in result:
            # The trial's last word when it raised (diverged, failed): no epoch of its own.
            self._last_result[trial_id] = result
            return
        self._reported[trial_id] = int(result["epoch"])
        self._last_result[trial_id] = result
        # The trial marks its best epoch so far; that epoch's values are what the store keeps.
        if result["epoch"] == result.get("best_epoch", result["epoch"]):
            self._best_result[trial_id] = result

    def on_trial_complete(self, iteration: int, trials: list, trial: Trial, **info: Any) -> None:
        last = self._last_result.pop(trial.trial_id, {})
        best = self._best_result.pop(trial.trial_id, last)
        self._finish(trial.trial_id)
        if TRIAL_STATUS in last:
            if last[TRIAL_STATUS] == "infeasible":
                self._infeasible += 1
            else:
                self._failed += 1
            self.say(
                f"{self._counter()} {trial.trial_id} {last[TRIAL_STATUS]}: "
                f"{last.get(TRIAL_ERROR) or 'no message'} | {self._status()}"
            )
            return

        stopped = not last.get("last_report", True)
        if stopped:
            self._stopped_early += 1
        self._report_trial(trial.trial_id, best, last, "stopped early" if stopped else "done")

    def on_trial_error(self, iteration: int, trials: list, trial: Trial, **info: Any) -> None:
        self._last_result.pop(trial.trial_id, None)
        self._best_result.pop(trial.trial_id, None)
        self._finish(trial.trial_id)
        self._failed += 1
        self.say(
            f"{self._counter()} {trial.trial_id} failed: "
            f"{error_summary(trial_exception(trial))} | {self._status()}"
        )

    def on_step(self, iteration: int, trials: list, **info: Any) -> None:
        if self._heartbeat is None or not self._started:
            return
        if self._clock() - self._last_line >= self._heartbeat:
            self.say(f"{self._counter()} {self._status()}")

    # -- what the driver reads -------------------------------------------------------------

    @property
    def stopped_early(self) -> int:
        """Trials a scheduler stopped before their last epoch."""
        return self._stopped_early

    @property
    def failed(self) -> int:
        return self._failed

    @property
    def best(self) -> tuple[float, float, str] | None:
        """(fold mean, fold std, trial id) of the best objective so far, at its best epoch."""
        return self._best

    def seconds_left(self) -> float:
        """The current estimate of the time left, in seconds (NaN before any evidence)."""
        now = self._clock()
        running = [
            (now - start, self._reported.get(tid, 0)) for tid, start in self._started.items()
        ]
        return estimate_seconds_left(
            finished=self._durations,
            running=running,
            pending=max(self._total - self._done - len(running), 0),
            slots=self._concurrency or max(len(running), 1),
            epochs=self._epochs,
        )

    # -- lines -----------------------------------------------------------------------------

    def _finish(self, trial_id: str) -> None:
        started = self._started.pop(trial_id, None)
        if started is not None:
            self._durations.append(self._clock() - started)
        self._reported.pop(trial_id, None)
        self._done += 1

    def _report_trial(
        self, trial_id: str, best: Mapping[str, Any], last: Mapping[str, Any], outcome: str
    ) -> None:
        mean = _number(best.get(self._objective))
        std = _number(best.get(self._std_key))
        if math.isfinite(mean) and (self._best is None or self._better(mean, self._best[0])):
            self._best = (mean, std, trial_id)

        epochs = f"{last.get('epoch', 0)} epochs"
        if best.get("epoch") not in (None, last.get("epoch")):
            epochs += f" (best {best['epoch']})"
        self.say(
            f"{self._counter()} {trial_id} {outcome} after {epochs}: "
            f"{self._objective} {mean:.4f} +- {std:.4f} | {self._status()}"
        )

    def _counter(self) -> str:
        width = len(str(self._total))
        return f"[{self._done:>{width}}/{self._total}]"

    def _status(self) -> str:
        parts = []
        if self._best is not None:
            mean, std, trial_id = self._best
            parts.append(f"best {mean:.4f} +- {std:.4f} ({trial_id})")
        counts = f"{len(self._started)} running, {self._stopped_early} stopped early"
        if self._failed:
            counts += f", {self._failed} failed"
        if self._infeasible:
            counts += f", {self._infeasible} infeasible"
        parts.append(counts)
        elapsed = self._clock() - self._search_started
        left = self.seconds_left() if self._done < self._total else 0.0
        parts.append(f"{format_duration(elapsed)} elapsed, ~{format_duration(left)} left")
        return " | ".join(parts)

    def _better(self, value: float, than: float) -> bool:
        return value > than if self._mode == "max" else value < than


def _number(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) else math.nan

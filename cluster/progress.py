"""What a person watching a search sees: one line per finished trial and the best so far.

Kept apart from control flow: the driver hands this reporter a text stream (the CLI passes
stdout, tests pass a StringIO, quiet mode passes nothing) and it only ever writes to it.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any, TextIO

from ray.tune import Callback

from cluster.recorder import error_summary, trial_exception

if TYPE_CHECKING:
    from ray.tune.experiment import Trial


class ProgressReporter(Callback):
    """Prints `[done/total] trial: objective mean +- std | best so far` as trials end."""

    def __init__(self, stream: TextIO | None, *, objective: str, mode: str, total: int) -> None:
        self._stream = stream
        self._objective = objective
        self._mode = mode
        self._total = total
        self._done = 0
        self._stopped_early = 0
        self._best: tuple[float, float, str] | None = None
        self._last: dict[str, dict[str, Any]] = {}
        self._started = time.monotonic()

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles callbacks into its experiment state; a console stream cannot be
        # pickled, and a restored reporter gets the new console from its caller anyway.
        return {**self.__dict__, "_stream": None}

    def say(self, line: str) -> None:
        if self._stream is not None:
            self._stream.write(line + "\n")
            self._stream.flush()

    def on_trial_result(self, iteration: int, trials: list, trial: Trial, result: dict, **info):
        self._last[trial.trial_id] = result

    def on_trial_complete(self, iteration: int, trials: list, trial: Trial, **info: Any) -> None:
        result = self._last.pop(trial.trial_id, {})
        self._done += 1
        if not result.get("last_report", True):
            self._stopped_early += 1
        outcome = "stopped early" if not result.get("last_report", True) else "done"
        self._report(trial, result, outcome)

    def on_trial_error(self, iteration: int, trials: list, trial: Trial, **info: Any) -> None:
        self._last.pop(trial.trial_id, None)
        self._done += 1
        self.say(
            f"[{self._done}/{self._total}] {trial.trial_id} failed: "
            f"{error_summary(trial_exception(trial))}"
        )

    def _report(self, trial: Trial, result: dict, outcome: str) -> None:
        mean = result.get(self._objective, math.nan)
        std = result.get(self._objective.removesuffix("_mean") + "_std", math.nan)
        if math.isfinite(mean) and (self._best is None or self._better(mean, self._best[0])):
            self._best = (mean, std, trial.trial_id)

        best = (
            ""
            if self._best is None
            else (f" | best {self._best[0]:.4f} +- {self._best[1]:.4f} ({self._best[2]})")
        )
        elapsed = time.monotonic() - self._started
        left = elapsed / self._done * (self._total - self._done) if self._done else math.nan
        self.say(
            f"[{self._done}/{self._total}] {trial.trial_id} {outcome} after "
            f"{result.get('epoch', 0)} epochs: {self._objective} {mean:.4f} +- {std:.4f}{best}"
            f" | {elapsed:.0f}s elapsed, ~{left:.0f}s left"
        )

    def _better(self, value: float, than: float) -> bool:
        return value > than if self._mode == "max" else value < than

    @property
    def stopped_early(self) -> int:
        return self._stopped_early

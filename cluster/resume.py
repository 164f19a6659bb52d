"""Going on with a search whose driver stopped: `archsearch run --resume RUN_DIR`.

The results store is the record of what is done: a trial in its trials table finished (whatever
its status) and is not run again. Everything else is run by a new Tune experiment in the same
run directory: the strategy draws the same configs under the same trial numbers (grid, random)
or reloads its own state (Bayesian; see `nas.strategies`), so the two runs together run each
trial number once and the spec's number of trials in all. A trial that was in flight when the
driver died starts over from its first epoch, under its old number and seed, so its numbers
are those an uninterrupted run would have given.

Why not `tune.Tuner.restore`, as read in Ray 2.60's source:

- Tune snapshots its experiment state every `max(10 s, 19 x the time a snapshot takes)`
  (`TUNE_GLOBAL_CHECKPOINT_S`), so after a SIGKILL it can be many trials behind the store;
  restored, it runs trials again that the store holds, and the trials it never saw come back
  with new ids. A digits search killed 33 s in had 3 trials in the store, and a snapshot from
  before any of them ended, listing 2 trials, both running.
- The snapshot reaches the run directory by a background copy that overwrites files in place,
  so a kill during the copy can leave a torn `experiment_state-*.json`.
- The scheduler's state (ASHA's rungs) is not restored, the callbacks and search algorithm come
  back unpickled from `tuner.pkl` as they were when the search started, and the epochs of a
  trial resumed from its checkpoint are reported to a recorder that never saw the earlier ones.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from cluster.rundir import SPEC_FILE
from nas.numbering import FinishedTrial
from nas.objectives import COSTS
from search_spaces.domains import Choice, Fixed, FloatRange, IntRange, LogRange, show_value
from search_spaces.errors import SpecError, StoreError

if TYPE_CHECKING:
    from cluster.spec import Spec
    from cluster.store import ResultsStore

# Sections a resumed run may change: where it runs, not what it searches.
FREE_SECTIONS = ("cluster",)


def check_same_spec(started: Spec, given: Spec, *, run_dir: Path) -> None:
    """Refuse to resume `run_dir` with a spec that differs from the one it started with.

    Raises:
        SpecError: naming the first field that differs, with both values.
    """
    difference = spec_difference(started, given)
    if difference is not None:
        path, before, now = difference
        raise SpecError(
            f"{path}: {run_dir} was started with {before}, the spec now says {now}; resume "
            f"with the spec the run started with ({run_dir / SPEC_FILE}), or start a new run"
        )


def spec_difference(first: Spec, second: Spec) -> tuple[str, str, str] | None:
    """(field path, first's value, second's value) of the first field that differs, or None.

    Fields are compared after validation, so a default written out equals one left out; the
    sections in FREE_SECTIONS are not compared.
    """
    return _difference(first, second, path="")


def finished_trials(store: ResultsStore, *, metric: str) -> dict[int, FinishedTrial]:
    """The trials the store holds, by number, with the objective of each one's last epoch.

    The last epoch's fold mean is the value the strategy was (or would have been) told when the
    trial ended; a failed or diverged trial has none.

    Raises:
        StoreError: A recorded trial has no number, or two have the same.
    """
    trials = store.read("trials").to_pylist()
    epochs = store.read("epochs").select(["trial_id", "epoch", metric]).to_pylist()
    last: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for row in epochs:
        value = row[metric]
        last[row["trial_id"]][row["epoch"]].append(math.nan if value is None else value)

    finished: dict[int, FinishedTrial] = {}
    for row in trials:
        number = row["trial_number"]
        where = f"results store: trial {row['trial_id']} in {store.run_dir / 'trials'}"
        if number is None:
            raise StoreError(f"{where} has no trial_number, so a resumed search cannot skip it")
        if number in finished:
            raise StoreError(
                f"{where} has trial_number {number}, like another trial; delete one of the "
                "two part files"
            )

        value = math.nan
        by_epoch = last.get(row["trial_id"])
        if row["status"] in ("completed", "pruned") and by_epoch:
            values = by_epoch[max(by_epoch)]
            value = math.fsum(values) / len(values)
        # FIXME: other metrics' values are their best epoch's, not the last epoch's that an
        # uninterrupted search would have told a multi-objective strategy.
        others = {
            key: float(value)
            for key, value in row.items()
            if (key in COSTS or key.endswith("_mean")) and value is not None
        }
        finished[number] = FinishedTrial(
            number=number,
            value=value,
            stopped_early=row["status"] == "pruned",
            others=others,
            infeasible=row["status"] == "infeasible",
        )
    return finished


def _difference(first: Any, second: Any, *, path: str) -> tuple[str, str, str] | None:
    if isinstance(first, BaseModel) and isinstance(second, BaseModel):
        for name in type(first).model_fields:
            if not path and name in FREE_SECTIONS:
                continue
            inner = _difference(
                getattr(first, name), getattr(second, name), path=f"{path}.{name}".lstrip(".")
            )
            if inner is not None:
                return inner
        return None

    # `type` tells 1 from True and 1.0, which compare equal but are different settings.
    if first != second or type(first) is not type(second):
        return path, _show(first), _show(second)
    return None


def _show(value: Any) -> str:
    """A value as the spec would write it: domains as `{int: [1, 3]}`."""
    if isinstance(value, Fixed):
        return show_value(value.value)
    if isinstance(value, Choice):
        return show_value({"choice": list(value.values)})
    for kind, name in ((IntRange, "int"), (LogRange, "log"), (FloatRange, "float")):
        if isinstance(value, kind):
            return show_value({name: [value.low, value.high]})
    return show_value(value)

"""Bayesian optimisation with Ax, as a Ray Tune Searcher.

Ray's bundled `AxSearch` was written for Ax's old `AxClient` and breaks on Ax 1.x, so
`BayesianSearch` drives `ax.api.Client` itself: Tune asks `suggest` for a config, the trial's
last result comes back through `on_trial_complete`, and Ax fits its model on what it has seen.

Ax sees its own names: parameter names without dots, and one metric called `AX_METRIC`, since
Ax parses objectives with sympy, which rejects names such as `E` or `lambda`. Ax is imported
inside the methods that need it (about 4 s), so importing this module costs only Ray.

Given a `state_path`, the search saves Ax's state there after every new suggestion, before the
trial can start. A search resumed after its driver died (`resume`) reloads it, is told the
results the results store holds but Ax missed, and suggests the trials Ax had handed out but
the store lacks (in flight when the driver died) again, with their configs and numbers,
before anything new. The budget counts every Ax trial once, so the two runs together suggest
`trial_limit` configs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import tempfile
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ray.tune.search import Searcher

from nas.numbering import TRIAL_NUMBER_KEY, FinishedTrial
from nas.objectives import BOUNDS, INFEASIBLE_KEY, Objective, final_value
from search_spaces.domains import (
    Choice,
    Domain,
    FloatRange,
    IntRange,
    LogRange,
    domain_values,
    show_value,
)
from search_spaces.errors import SpecError, StoreError
from search_spaces.parameters import Parameter

if TYPE_CHECKING:
    from ax.api.client import Client
    from ax.api.configs import ChoiceParameterConfig, RangeParameterConfig

logger = logging.getLogger(__name__)

# The name Ax knows the objective by, whatever the spec's metric is called.
AX_METRIC = "objective"

# Version of the file `save` writes; `restore` refuses any other.
STATE_FORMAT = 1


@dataclass(frozen=True)
class _Dimension:
    """One searched parameter and how its values cross to Ax and back."""

    name: str
    ax_name: str
    domain: Domain
    ax_type: str
    # For a Choice, the value Ax sees for each of domain.values, in the same order.
    ax_values: tuple[Any, ...] = ()

    @property
    def placeholder(self) -> Any:
        """A valid value for a parameter Ax left out because its condition does not hold."""
        if isinstance(self.domain, Choice):
            return self.domain.values[0]
        return self.domain.low

    def encode(self, value: Any) -> Any:
        if not isinstance(self.domain, Choice):
            return value
        for ours, theirs in zip(self.domain.values, self.ax_values, strict=True):
            if type(ours) is type(value) and ours == value:
                return theirs
        raise KeyError(f"{value!r} is not a value of {self.name}")

    def decode(self, ax_value: Any) -> Any:
        if isinstance(self.domain, Choice):
            return self.domain.values[self.ax_values.index(ax_value)]
        if isinstance(self.domain, IntRange):
            return int(ax_value)
        return float(ax_value)

    def config(
        self, dependents: Mapping[Any, list[str]] | None
    ) -> RangeParameterConfig | ChoiceParameterConfig:
        from ax.api.configs import ChoiceParameterConfig, RangeParameterConfig

        domain = self.domain
        if isinstance(domain, FloatRange | LogRange):
            return RangeParameterConfig(
                name=self.ax_name,
                bounds=(domain.low, domain.high),
                parameter_type="float",
                scaling="log" if isinstance(domain, LogRange) else "linear",
            )
        if isinstance(domain, IntRange) and domain.low < domain.high:
            return RangeParameterConfig(
                name=self.ax_name, bounds=(domain.low, domain.high), parameter_type="int"
            )

        # A one-value int range becomes a one-value choice, which Ax holds fixed.
        values = list(self.ax_values) if isinstance(domain, Choice) else [domain.low]
        return ChoiceParameterConfig(
            name=self.ax_name,
            values=values,
            parameter_type=self.ax_type,
            is_ordered=self.ax_type in ("int", "float"),
            dependent_parameters=dependents,
        )


class BayesianSearch(Searcher):
    """Suggests trial configs with Ax's Bayesian optimisation (Sobol start, then BoTorch).

    Args:
        parameters: The spec's flat parameters; fixed ones are ignored.
        metric: The result key to optimise, as the trials report it.
        mode: "min" or "max".
        seed: Seeds Ax's initial Sobol points and its model fitting.
        max_trials: How many configs to suggest before `suggest` answers FINISHED (fewer
            when the space holds fewer distinct configs; see `trial_limit`).
        state_path: Where to save the search after each new suggestion, for `resume`; None
            saves nothing by itself (Tune may still call `save`).
        objectives: Several objectives (metric fold means and costs) for Ax's multi-objective
            optimisation; `metric` and `mode` then name the first metric among them, for
            Tune. Empty: `metric` alone.
        bounds: Upper bounds on costs by spec key (`max_params`), Ax's outcome constraints
            (or, on a cost that is an objective, its objective threshold). A trial over a
            bound reports its costs only, and Ax learns where the infeasible region lies.

    Each suggestion maps every searched parameter name (`optimizer.lr`) to a plain Python
    value: int for int ranges, float for real ranges, choice values as the spec lists them.
    """

    def __init__(
        self,
        parameters: Sequence[Parameter],
        *,
        metric: str,
        mode: str,
        seed: int,
        max_trials: int,
        state_path: str | None = None,
        objectives: Sequence[Objective] = (),
        bounds: Mapping[str, float] | None = None,
    ) -> None:
        if mode not in ("min", "max"):
            raise SpecError(f"evaluation.mode: must be min or max, got {mode!r}")
        if max_trials < 1:
            raise SpecError(f"search.trials: {max_trials} must be >= 1")
        super().__init__(metric=metric, mode=mode)

        self._dimensions = _dimensions(parameters)
        if not self._dimensions:
            raise SpecError(
                "search.strategy: bayesian has nothing to search, every parameter is fixed; "
                "give one a domain such as {int: [2, 6]} or use strategy grid"
            )
        self._dependents = _dependents(self._dimensions, parameters)
        self._seed = seed
        # (result key, mode, Ax metric name) of each objective; one keeps the old Ax name.
        self._goals = (
            [(o.key, o.mode, _ax_metric(o.key)) for o in objectives]
            if len(objectives) > 1
            else [(metric, mode, AX_METRIC)]
        )
        # (result key, upper bound, Ax metric name) of each cost bound.
        self._bounds = [
            (BOUNDS[key], float(limit), _ax_metric(BOUNDS[key]))
            for key, limit in (bounds or {}).items()
        ]

        # Ax cannot propose more distinct configs than a finite space holds, and it spends
        # many seconds of rejection sampling before it admits that the space is exhausted.
        size = _space_size(self._dimensions, self._dependents)
        self._trial_limit = max_trials if size is None else min(max_trials, size)
        if self._trial_limit < max_trials:
            logger.info(
                "search.trials is %d but the space holds %d distinct configs; suggesting %d",
                max_trials,
                size,
                size,
            )
        self._exhausted = False

        # Tune trial id -> Ax trial index, for every suggestion; `_open` awaits a result.
        self._trial_index: dict[str, int] = {}
        self._open: set[str] = set()
        self._client = self._new_client()

        self._state_path = state_path
        # Ax trials to hand out again, in order: in flight when an earlier driver died.
        self._again: list[int] = []
        # The last state `save` wrote, kept until the search changes: Tune saves the
        # searcher far more often than it changes.
        self._saved: str | None = None

    @property
    def client(self) -> Client:
        """The Ax client, for reading the experiment (e.g. `client.summarize()`)."""
        return self._client

    @property
    def trial_limit(self) -> int:
        """How many configs this search suggests: max_trials, or the size of a smaller space."""
        return self._trial_limit

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        """A config for a new trial; None when Ax needs results first; FINISHED when done."""
        if self._again:
            index = self._again.pop(0)
            self._trial_index[trial_id] = index
            self._open.add(trial_id)
            self._saved = None
            arm = self._client._experiment.trials[index].arm
            return {**self._decode(arm.parameters), TRIAL_NUMBER_KEY: index}

        if self._exhausted or len(set(self._trial_index.values())) >= self._trial_limit:
            return Searcher.FINISHED

        from ax.exceptions.core import DataRequiredError, OptimizationComplete
        from ax.exceptions.generation_strategy import MaxParallelismReachedException

        try:
            with _quiet_ax():
                suggestions = self._client.get_next_trials(max_trials=1)
        except (DataRequiredError, MaxParallelismReachedException):
            # Ax will not propose more until running trials report; Tune asks again later.
            return None
        except OptimizationComplete as exc:
            logger.info("Ax has no new configs to try after %d: %s", len(self._trial_index), exc)
            self._exhausted = True
            return Searcher.FINISHED
        if not suggestions:
            return None

        ((index, ax_values),) = suggestions.items()
        self._trial_index[trial_id] = index
        self._open.add(trial_id)
        self._saved = None
        if self._state_path is not None:
            # Before the trial can start, so a resumed search knows every trial that ran.
            self.save(self._state_path)
        # Ax numbers its trials 0, 1, 2, ... in the order it proposed them: a stable trial
        # number for seeding, which Tune's random trial ids for searchers are not.
        return {**self._decode(ax_values), TRIAL_NUMBER_KEY: index}

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        """Hand Ax the trial's final metric, or mark it failed when there is none to hand."""
        if trial_id not in self._open:
            logger.debug("trial %s was not suggested by this search or has finished", trial_id)
            return
        self._open.discard(trial_id)
        index = self._trial_index[trial_id]
        stopped_early = result is not None and result.get("last_report") is False
        infeasible = result is not None and bool(result.get(INFEASIBLE_KEY))
        values, problem = self._final_values(result, error=error, infeasible=infeasible)
        self._tell(index, values, problem=problem, stopped_early=stopped_early)

    def _final_values(
        self, result: Mapping[str, Any] | None, *, error: bool, infeasible: bool
    ) -> tuple[dict[str, float], str | None]:
        """Ax's data from a trial's last result, or the reason there is none to hand."""
        wanted = [(key, ax) for key, _, ax in self._goals]
        if infeasible:
            # Only the costs exist; Ax models them to steer away from the bounds.
            wanted = []
        wanted += [(key, ax) for key, _, ax in self._bounds if (key, ax) not in wanted]
        if not wanted:
            return {}, "its costs exceed search.constraints"

        values: dict[str, float] = {}
        for key, ax in wanted:
            value, problem = final_value(result, metric=key, error=error)
            if problem is not None:
                return {}, problem
            values[ax] = value
        return values, None

    def resume(self, finished: Mapping[int, FinishedTrial]) -> None:
        """Go on with the search saved at `state_path`, whose finished trials are `finished`.

        Ax is told the result of each finished trial it still has as running; the trials it
        handed out that are not finished are suggested again, first. With nothing saved and
        nothing finished (the driver died before the first suggestion) the search starts
        anew.

        Raises:
            StoreError: There is no saved state to go on from, or it cannot be read.
            SpecError: The saved search searched other parameters or another objective.
        """
        path = self._state_path
        if path is None or not os.path.exists(path):
            if not finished:
                return
            raise StoreError(
                f"search: {len(finished)} trials are recorded but the Bayesian search's state "
                f"({path}) is missing, so it cannot go on; start a new run"
            )
        self.restore(path)

        trials = self._client._experiment.trials
        unknown = sorted(set(finished) - set(trials))
        if unknown:
            raise StoreError(
                f"search: trial {unknown[0]} is recorded but the Bayesian search saved at "
                f"{path} never suggested it; the state does not belong to these results, so "
                "start a new run"
            )
        for index, trial in sorted(trials.items()):
            done = finished.get(index)
            if done is None:
                self._again.append(index)
            elif not trial.status.is_terminal:
                recorded = {
                    **done.others,
                    self.metric: done.value,
                    INFEASIBLE_KEY: done.infeasible,
                }
                values, problem = self._final_values(
                    recorded, error=False, infeasible=done.infeasible
                )
                self._tell(index, values, problem=problem, stopped_early=done.stopped_early)
        # Results come back under the new trials' ids.
        self._open.clear()
        self._saved = None
        logger.info(
            "resuming a bayesian search: %d trials finished, %d to run again",
            len(finished),
            len(self._again),
        )

    def _tell(
        self, index: int, values: dict[str, float], *, problem: str | None, stopped_early: bool
    ) -> None:
        """Hand Ax one trial's final values by Ax name, or mark it failed when there are none."""
        self._saved = None
        if self._client._experiment.trials[index].status.is_terminal:
            # Run again after a resume, but Ax had its result already.
            return
        with _quiet_ax():
            if problem is not None:
                # Never hand Ax a NaN or a missing value: it would fit its model to it.
                logger.info("Ax trial %d failed: %s", index, problem)
                self._client.mark_trial_failed(index, failed_reason=problem)
            elif len(values) < len(self._goals):
                # Over a cost bound: Ax models the costs it has and marks the objectives
                # missing, which it warns about at every such trial.
                ax_logger = logging.getLogger("ax.api.client")
                level = ax_logger.level
                ax_logger.setLevel(logging.ERROR)
                try:
                    self._client.complete_trial(index, raw_data=values)
                finally:
                    ax_logger.setLevel(level)
            elif stopped_early:
                # A scheduler stopped it: the value is real but from fewer epochs.
                self._client.attach_data(index, raw_data=values)
                self._client.mark_trial_early_stopped(index)
            else:
                self._client.complete_trial(index, raw_data=values)

    def save(self, checkpoint_path: str) -> None:
        """Write the Ax experiment and the trial id map to one JSON file, atomically."""
        if self._saved is None:
            with tempfile.TemporaryDirectory() as scratch:
                ax_path = os.path.join(scratch, "ax.json")
                with _quiet_ax():
                    self._client.save_to_json_file(ax_path)
                ax_state = json.loads(Path(ax_path).read_text())

            state = {
                "format": STATE_FORMAT,
                "parameters": [d.name for d in self._dimensions],
                "metric": self.metric,
                "mode": self.mode,
                "goals": [list(goal) for goal in self._goals],
                "bounds": [list(bound) for bound in self._bounds],
                "trial_index": self._trial_index,
                "open": sorted(self._open),
                "ax": ax_state,
            }
            self._saved = json.dumps(state)
        partial = f"{checkpoint_path}.partial"
        Path(partial).write_text(self._saved)
        os.replace(partial, checkpoint_path)

    def restore(self, checkpoint_path: str) -> None:
        """Continue the search saved at `checkpoint_path` (same parameters, metric and mode)."""
        try:
            state = json.loads(Path(checkpoint_path).read_text())
        except (OSError, ValueError) as exc:
            raise StoreError(f"{checkpoint_path}: cannot read the saved search: {exc}") from exc
        if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
            raise StoreError(
                f"{checkpoint_path}: not a saved bayesian search of format {STATE_FORMAT}; "
                "start a new search"
            )
        self._check_same_search(state, checkpoint_path)

        from ax.api.client import Client

        with tempfile.TemporaryDirectory() as scratch:
            ax_path = os.path.join(scratch, "ax.json")
            Path(ax_path).write_text(json.dumps(state["ax"]))
            with _quiet_ax():
                client = Client.load_from_json_file(ax_path)
        # Ax's snapshot leaves out the client's seed; without it Ax would draw from the
        # global RNGs instead of seeding (and then restoring) them around each suggestion.
        client._random_seed = self._seed

        self._client = client
        self._trial_index = {str(k): int(v) for k, v in state["trial_index"].items()}
        self._open = set(state["open"])
        self._again = []
        self._saved = None
        logger.info(
            "resumed a bayesian search of %d trials, %d awaiting results",
            len(self._trial_index),
            len(self._open),
        )

    def _check_same_search(self, state: Mapping[str, Any], path: str) -> None:
        names = [d.name for d in self._dimensions]
        if state["parameters"] != names:
            raise SpecError(
                f"search: the search saved at {path} searched {', '.join(state['parameters'])} "
                f"but the spec searches {', '.join(names)}; resume with the spec it started with"
            )
        if (state["metric"], state["mode"]) != (self.metric, self.mode):
            raise SpecError(
                f"evaluation: the search saved at {path} optimised {state['metric']} "
                f"({state['mode']}) but the spec asks for {self.metric} ({self.mode}); resume "
                "with the spec it started with"
            )
        saved = (
            state.get("goals", [[self.metric, self.mode, AX_METRIC]]),
            state.get("bounds", []),
        )
        if saved != ([list(g) for g in self._goals], [list(b) for b in self._bounds]):
            raise SpecError(
                f"evaluation.objectives: the search saved at {path} had other objectives or "
                "search.constraints than the spec; resume with the spec it started with"
            )

    def _new_client(self) -> Client:
        from ax.api.client import Client

        configs = [d.config(self._dependents.get(d.name)) for d in self._dimensions]
        # "m_accuracy_mean, -m_latency_ms" is Ax's multi-objective form.
        # FIXME: after Sobol's start each multi-objective suggestion (BoTorch's qLogNEHVI) took
        # Ax 20-60 s on a busy 2-core machine, longer than a small trial trains; would fewer
        # acquisition restarts (or thresholds from the spec) keep its quality?
        objective = ", ".join(ax if mode == "max" else f"-{ax}" for _, mode, ax in self._goals)
        constraints = [f"{ax} <= {limit!r}" for _, limit, ax in self._bounds]
        client = Client(random_seed=self._seed)
        with _quiet_ax():
            client.configure_experiment(parameters=configs, name="archsearch")
            client.configure_optimization(
                objective=objective, outcome_constraints=constraints or None
            )
            client.configure_generation_strategy(
                method="fast",
                # Half the budget on space-filling points, from two (so that a Sobol step exists
                # to keep workers busy) to Ax's usual five.
                initialization_budget=max(2, min(5, self._trial_limit // 2)),
                initialization_random_seed=self._seed,
                # Keep every free worker busy with Sobol points while the first results
                # arrive, instead of idling until Ax has enough data for its model.
                allow_exceeding_initialization_budget=True,
            )
        return client

    def _decode(self, ax_values: Mapping[str, Any]) -> dict[str, Any]:
        # Ax leaves out a dependent parameter that its parent's value switches off. Trial
        # configs still hold every searched name; parameters.resolve discards the value.
        return {
            d.name: d.decode(ax_values[d.ax_name]) if d.ax_name in ax_values else d.placeholder
            for d in self._dimensions
        }


def _ax_metric(key: str) -> str:
    """Ax's name for a result key: a prefix keeps sympy from reading it as a constant (E)."""
    return "m_" + re.sub(r"\W", "_", key)


def _dimensions(parameters: Sequence[Parameter]) -> list[_Dimension]:
    dimensions = []
    taken: set[str] = set()
    for parameter in parameters:
        if not parameter.searched:
            continue

        ax_name = re.sub(r"\W", "_", parameter.name)
        while ax_name in taken:
            ax_name += "_"
        taken.add(ax_name)

        if isinstance(parameter.domain, Choice):
            ax_type, ax_values = _choice_encoding(parameter.domain.values)
        else:
            ax_type = "int" if isinstance(parameter.domain, IntRange) else "float"
            ax_values = ()
        dimensions.append(
            _Dimension(parameter.name, ax_name, parameter.domain, ax_type, ax_values)
        )
    return dimensions


def _choice_encoding(values: tuple[Any, ...]) -> tuple[str, tuple[Any, ...]]:
    """Ax's parameter type for a choice and the value Ax sees for each of ours."""
    if all(isinstance(v, bool) for v in values):
        return "bool", values
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return "int", values
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        as_floats = tuple(float(v) for v in values)
        if len(set(as_floats)) == len(as_floats):
            return "float", as_floats
    if all(isinstance(v, str) for v in values):
        return "str", values

    # Mixed kinds, nulls or lists: Ax gets labels, numbered so that 1 and "1" stay apart.
    return "str", tuple(f"{i}:{show_value(v)}" for i, v in enumerate(values))


def _dependents(
    dimensions: Sequence[_Dimension], parameters: Sequence[Parameter]
) -> dict[str, dict[Any, list[str]]]:
    """Ax's hierarchy: parent name -> {parent's Ax value -> Ax names it switches on}.

    Ax's search space is a tree, so a parameter can hang under only one value of its parent.
    One that several values switch on (momentum under sgd and rmsprop), or whose parent is not
    a searched choice, is sampled always; parameters.resolve then discards it where it does
    not apply.
    """
    by_name = {d.name: d for d in dimensions}
    tree: dict[str, dict[Any, list[str]]] = {}
    for parameter in parameters:
        condition = parameter.condition
        if condition is None or parameter.name not in by_name:
            continue
        parent = by_name.get(condition.parent)
        if parent is None or not isinstance(parent.domain, Choice):
            continue

        switching = [v for v in parent.domain.values if v in condition.values]
        if len(switching) == 1:
            branch = tree.setdefault(parent.name, {})
            branch.setdefault(parent.encode(switching[0]), []).append(
                by_name[parameter.name].ax_name
            )
    return tree


def _space_size(
    dimensions: Sequence[_Dimension], dependents: Mapping[str, Mapping[Any, list[str]]]
) -> int | None:
    """How many distinct configs Ax can propose; None when a range is continuous.

    A parent choice counts, for each of its values, the configs of the dependents that value
    switches on (`_dependents` builds one level only: no dependent is a parent itself).
    """
    sizes = {}
    for dimension in dimensions:
        values = domain_values(dimension.domain)
        if values is None:
            return None
        sizes[dimension.ax_name] = len(values)

    dependent = {
        name for branch in dependents.values() for names in branch.values() for name in names
    }
    total = 1
    for dimension in dimensions:
        branch = dependents.get(dimension.name)
        if dimension.ax_name in dependent:
            continue
        if branch is None:
            total *= sizes[dimension.ax_name]
            continue
        total *= sum(
            math.prod(sizes[name] for name in branch.get(dimension.encode(value), []))
            for value in dimension.domain.values
        )
    return total


@contextlib.contextmanager
def _quiet_ax() -> Iterator[None]:
    """Hold Ax's stderr handler at WARNING while we call Ax, then put its level back.

    Ax logs every trial it generates or completes at INFO through a handler of its own, on an
    "ax" logger that does not propagate; Tune's progress report already says the same.
    """
    from ax.exceptions.core import AxOptimizationWarning
    from ax.utils.common.logger import ROOT_STREAM_HANDLER

    previous = ROOT_STREAM_HANDLER.level
    ROOT_STREAM_HANDLER.setLevel(max(previous, logging.WARNING))
    try:
        with warnings.catch_warnings():
            # Without objective thresholds Ax infers them, as we mean it to; the warning
            # would repeat at every suggestion of a multi-objective search.
            warnings.filterwarnings("ignore", message=".*without objective thresholds.*")
            warnings.filterwarnings("ignore", category=AxOptimizationWarning)
            # BoTorch's multi-objective code copies a tensor the way torch warns about.
            warnings.filterwarnings("ignore", message="To copy construct from a tensor")
            yield
    finally:
        ROOT_STREAM_HANDLER.setLevel(previous)

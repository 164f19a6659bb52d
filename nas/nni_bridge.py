"""NNI's search strategies (evolution, TPE, RL) as one Ray Tune Searcher.

An NNI strategy runs its own loop: it asks an execution engine whether a worker is free,
submits models, and learns from the events the engine dispatches when a model's metric
arrives or its training ends. `NniSearch` runs that loop in a background thread on an engine
of its own (`_TrialQueue`) that never trains anything: a submitted model waits in a queue
until Tune asks `suggest` for a config, and the trial's fold-mean objective comes back as
NNI's FinalMetric and TrainingEnd events from `on_trial_complete`.

The model space is our flat parameters as NNI mutables, labelled with our names. The queue
sits between NNI and Tune and fixes what NNI 3.0 gets wrong for us:

- Every resolved config runs once. A strategy that proposes one again is answered at once,
  without a trial: with the value it got before, or as failed while the first is still
  running, so that it proposes another. After `MAX_REPEATS` repeats in a row, or when the
  strategy has stopped proposing, the queue draws an unseen config itself (a "filler" trial,
  whose result no strategy is told, since none asked for it).
- No sleeping: the engine wakes the strategy the moment a worker frees up.
- Exactly `trial_limit` trials (the spec's budget, or the number of distinct configs of a
  smaller space), with at most `max_concurrent` waiting or running at once.
- A trial that errors or ends with a non-finite objective reaches NNI as a failed training,
  never as a NaN metric.

NNI maximises; for mode "min" it is handed the negated objective. Importing NNI takes
seconds and warns about the installed torch, so `import_nni` does it on first use, with
those warnings and NNI's console log kept from the user.
"""

from __future__ import annotations

import collections
import contextlib
import io
import itertools
import json
import logging
import math
import os
import threading
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from ray.tune.search import Searcher

from nas.numbering import TRIAL_NUMBER_KEY
from nas.objectives import Objective, final_value
from nas.pareto import crowding_distances, pareto_ranks
from nas.strategies import NNI_STRATEGIES, EvolutionSettings
from search_spaces.domains import Choice, Domain, FloatRange, IntRange, LogRange, domain_values
from search_spaces.errors import SpecError
from search_spaces.parameters import Parameter, resolve

if TYPE_CHECKING:
    from nni.mutable import MutableSymbol
    from nni.nas.space import ExecutableModelSpace
    from nni.nas.strategy import Strategy

logger = logging.getLogger(__name__)

# Repeated proposals in a row after which the queue stops waiting for the strategy to find
# a new config and draws one itself.
MAX_REPEATS = 50

# A finite space with at most this many raw combinations is enumerated to count its distinct
# resolved configs; a bigger one is treated as unbounded.
ENUMERATION_LIMIT = 20_000

# Points per continuous range for the RL policy, which picks from finite lists only.
RL_GRID_POINTS = 8


def import_nni() -> None:
    """Import NNI's strategies quietly; later calls cost nothing.

    NNI 3.0 warns at import that it may not support the installed torch (its NAS modules
    probe torch.nn classes) and that pkg_resources is deprecated, and it logs INFO to stdout
    through a handler of its own; none of that is for the user of a search.
    """
    nni_logger = logging.getLogger("nni")
    if any(isinstance(h, _Silenced) for h in nni_logger.handlers):
        return
    # gym prints its deprecation notice itself, when NNI's RL strategy imports it.
    with (
        warnings.catch_warnings(),
        contextlib.redirect_stdout(io.StringIO()),
        contextlib.redirect_stderr(io.StringIO()),
    ):
        warnings.simplefilter("ignore")
        import nni.nas.strategy  # noqa: F401
        from nni.runtime.log import silence_stdout

    silence_stdout()
    # NNI logs every individual at INFO; kept from the console handlers of logging's root and
    # from its last resort alike. The bridge logs what matters under its own name.
    nni_logger.addHandler(_Silenced())
    nni_logger.propagate = False


class _Silenced(logging.NullHandler):
    """Marks NNI's logger as already quietened."""


# --- the model space ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Dimension:
    """One searched parameter, the NNI mutable that samples it, and the way back."""

    name: str
    domain: Domain
    # For RL (and every Choice): our value for each index NNI picks.
    values: tuple[Any, ...] | None

    def mutable(self) -> MutableSymbol:
        from nni.mutable import Categorical, Numerical

        if self.values is not None:
            return Categorical(list(range(len(self.values))), label=self.name)
        domain = self.domain
        if isinstance(domain, IntRange):
            # Half a step past each end, so that rounding gives every integer the same share.
            return Numerical(domain.low - 0.5, domain.high + 0.5, quantize=1, label=self.name)
        return Numerical(
            domain.low, domain.high, log_distributed=isinstance(domain, LogRange), label=self.name
        )

    def decode(self, nni_value: Any) -> Any:
        if self.values is not None:
            return self.values[int(nni_value)]
        domain = self.domain
        if isinstance(domain, IntRange):
            return min(max(int(round(nni_value)), domain.low), domain.high)
        return min(max(float(nni_value), domain.low), domain.high)


def nni_dimensions(parameters: Sequence[Parameter], *, finite: bool) -> list[_Dimension]:
    """The searched parameters as NNI dimensions; `finite` gives ranges a list of points.

    Choices always cross as indices (NNI then never has to hash or compare our values); with
    `finite`, an int range lists its integers and a real range `RL_GRID_POINTS` points,
    evenly spaced on its scale, for a strategy that picks from lists only.
    """
    dimensions = []
    for parameter in parameters:
        if not parameter.searched:
            continue
        domain = parameter.domain
        values = domain_values(domain) if isinstance(domain, Choice) or finite else None
        if finite and values is None:
            values = _grid(domain)
        if isinstance(domain, IntRange) and finite and len(values) > 4 * RL_GRID_POINTS:
            values = tuple(sorted({int(round(v)) for v in _grid(domain, points=32)}))
        dimensions.append(_Dimension(parameter.name, domain, values))
    return dimensions


def _grid(domain: Domain, *, points: int = RL_GRID_POINTS) -> tuple[Any, ...]:
    if isinstance(domain, LogRange):
        return tuple(float(v) for v in np.geomspace(domain.low, domain.high, points))
    assert isinstance(domain, FloatRange | IntRange)
    return tuple(float(v) for v in np.linspace(domain.low, domain.high, points))


def config_key(parameters: Sequence[Parameter], sample: Mapping[str, Any]) -> str:
    """One string per distinct candidate: the sample after `resolve` drops inactive values."""
    return json.dumps(resolve(parameters, sample), sort_keys=True, default=repr)


def distinct_configs(
    parameters: Sequence[Parameter], dimensions: Sequence[_Dimension]
) -> int | None:
    """How many distinct resolved configs the dimensions can give; None when unbounded."""
    choices = []
    for dimension in dimensions:
        values = (
            dimension.values if dimension.values is not None else domain_values(dimension.domain)
        )
        if values is None:
            return None
        choices.append(values)
    if math.prod(len(v) for v in choices) > ENUMERATION_LIMIT:
        return None

    names = [d.name for d in dimensions]
    keys = {
        config_key(parameters, dict(zip(names, combo, strict=True)))
        for combo in itertools.product(*choices)
    }
    return len(keys)


# --- the engine ---------------------------------------------------------------------------


@dataclass
class _Entry:
    """A model that became (or will become) a Tune trial."""

    number: int
    sample: dict[str, Any]
    key: str
    # The NNI model the strategy submitted; None for a filler the queue drew itself.
    model: ExecutableModelSpace | None
    value: float | None = None
    done: bool = False
    # The objective of the trial's latest finite report, as Tune sent it.
    last: float | None = None


def _make_engine_class() -> type:
    from nni.nas.execution import ExecutionEngine
    from nni.nas.space import ModelStatus

    class TrialQueue(ExecutionEngine):
        """NNI's view of Tune: submitted models wait here until `NniSearch.suggest` takes them.

        Every method may be called from the strategy's thread or Tune's, under `cond`.
        """

        def __init__(self, owner: NniSearch) -> None:
            super().__init__()
            self.cond = threading.Condition()
            self._owner = owner
            self.stopped = False
            self.models: list[ExecutableModelSpace] = []

        def submit_models(self, *models: ExecutableModelSpace) -> None:
            for model in models:
                self.models.append(model)
                queued, answer = self._owner._enqueue(model)
                if not queued:
                    # Already tried: answered now, outside the lock, so that the strategy's
                    # callbacks may ask the engine anything.
                    self._answer(model, answer)

        def _answer(self, model: ExecutableModelSpace, value: float | None) -> None:
            from nni.nas.execution.event import FinalMetricEvent, TrainingEndEvent

            if value is not None:
                self.dispatch_model_event(FinalMetricEvent(model=model, metric=value))
                self.dispatch_model_event(TrainingEndEvent(model, ModelStatus.Trained))
            else:
                self.dispatch_model_event(TrainingEndEvent(model, ModelStatus.Failed))
            with self.cond:
                self.cond.notify_all()

        def list_models(self, status: ModelStatus | None = None) -> list[ExecutableModelSpace]:
            return [m for m in self.models if status is None or m.status == status]

        def idle_worker_available(self) -> bool:
            # Blocks until a worker frees up, instead of NNI's one-second polling.
            with self.cond:
                self.cond.wait_for(lambda: self.stopped or self._owner._has_room())
                return not self.stopped and self._owner._has_room()

        def budget_available(self) -> bool:
            with self.cond:
                return not self.stopped and self._owner._has_budget()

        def wait_models(self, *models: ExecutableModelSpace) -> None:
            with self.cond:
                self.cond.wait_for(
                    lambda: (
                        self.stopped or all(m.status.completed() for m in (models or self.models))
                    )
                )

        def shutdown(self) -> None:
            with self.cond:
                self.stopped = True
                self.cond.notify_all()

        # NNI's engine interface asks for these. The queue keeps no state worth saving: a
        # resumed search goes on from the results store (nas.strategies), not from NNI.
        def state_dict(self) -> dict:
            return {}

        def load_state_dict(self, state_dict: dict) -> None:
            """Nothing to restore; see `state_dict`."""
            return None

    return TrialQueue


# --- the searcher --------------------------------------------------------------------------


class NniSearch(Searcher):
    """Suggests trial configs from one of NNI's strategies (see the module docstring).

    Args:
        parameters: The spec's flat parameters; fixed ones are filled in by `resolve`.
        strategy: One of NNI_STRATEGIES.
        metric: The result key to optimise, as the trials report it.
        mode: "min" or "max".
        seed: Seeds the strategy and the queue's own draws.
        max_trials: The budget: how many trials to run (fewer on a smaller space).
        max_concurrent: Most trials waiting or running at once; 0 for no limit.
        evolution: Population and tournament size for `evolution`; None sizes them from
            the budget.
        first_number: The number of the first trial (a resumed search goes on after the
            numbers an earlier run used).
        objectives: With two or more, `evolution` picks parents by Pareto rank over them
            (see `_pareto_parent`); `tpe` and `rl` learn from `metric` alone.
    """

    def __init__(
        self,
        parameters: Sequence[Parameter],
        *,
        strategy: str,
        metric: str,
        mode: str,
        seed: int,
        max_trials: int,
        max_concurrent: int,
        evolution: EvolutionSettings | None = None,
        first_number: int = 0,
        seen_keys: Sequence[str] = (),
        objectives: Sequence[Objective] = (),
    ) -> None:
        if strategy not in NNI_STRATEGIES:
            raise SpecError(f"search.strategy: {strategy!r} is not one of {NNI_STRATEGIES}")
        if mode not in ("min", "max"):
            raise SpecError(f"evaluation.mode: must be min or max, got {mode!r}")
        if max_trials < 0:
            raise SpecError(f"search.trials: {max_trials} must be >= 1")
        super().__init__(metric=metric, mode=mode)

        self._parameters = list(parameters)
        self._dimensions = nni_dimensions(self._parameters, finite=strategy == "rl")
        if not self._dimensions:
            raise SpecError(
                f"search.strategy: {strategy} has nothing to search, every parameter is fixed; "
                "give one a domain such as {int: [2, 6]} or use strategy grid"
            )
        self._strategy_name = strategy
        self._seed = seed
        self._evolution = evolution
        self._objectives = list(objectives) if len(objectives) > 1 else []
        # Each finished model's objective values, by its NNI sample (`_sample_key`).
        self._vectors: dict[str, list[float | None]] = {}
        self._rng = np.random.default_rng(seed)

        size = distinct_configs(self._parameters, self._dimensions)
        left = None if size is None else max(size - len(seen_keys), 0)
        self._trial_limit = max_trials if left is None else min(max_trials, left)
        if self._trial_limit < max_trials:
            logger.info(
                "search.trials is %d but the space holds %s untried configs; running %d",
                max_trials,
                left,
                self._trial_limit,
            )
        self._concurrency = max_concurrent if max_concurrent > 0 else self._trial_limit

        # Guarded by the engine's condition, once it exists.
        self._seen: dict[str, _Entry | None] = dict.fromkeys(seen_keys)
        self._pending: collections.deque[_Entry] = collections.deque()
        self._running: dict[str, _Entry] = {}
        self._handed_out = 0
        self._next_number = first_number
        self._repeats = 0
        self._answered = 0
        self._strategy_done = False

        self._engine: Any = None
        self._thread: threading.Thread | None = None
        self._strategy_error: BaseException | None = None

    @property
    def trial_limit(self) -> int:
        """How many trials this search runs: the budget, or the untried configs of a smaller space."""
        return self._trial_limit

    @property
    def repeats_answered(self) -> int:
        """Proposals of an already-tried config that were answered without a trial."""
        return self._answered

    # --- Tune's side ---

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        """The next config NNI submitted; None while it thinks; FINISHED at the budget."""
        self._start()
        with self._engine.cond:
            if self._handed_out >= self._trial_limit:
                # Nothing more to propose: let the strategy's thread end now, not at exit.
                self._engine.shutdown()
                return Searcher.FINISHED
            if not self._pending and self._strategy_done:
                self._fill()
            if not self._pending:
                if self._strategy_done:
                    # FIXME: reached only when the queue found no unseen config in its draws
                    # from an unbounded space; the budget is then not spent.
                    return Searcher.FINISHED
                return None

            entry = self._pending.popleft()
            self._running[trial_id] = entry
            self._handed_out += 1
            if self._handed_out >= self._trial_limit:
                # Tune may never ask again once it has its samples; the strategy's thread
                # must not wait for that. Results still reach NNI's models after this.
                self._engine.shutdown()
            return {**entry.sample, TRIAL_NUMBER_KEY: entry.number}

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        """Pass an intermediate fold mean on, for strategies that read learning curves."""
        entry = self._running.get(trial_id)
        value, problem = final_value(result, metric=self.metric, error=False)
        if entry is None or problem is not None:
            return
        entry.last = value
        if entry.model is None:
            return
        from nni.nas.execution.event import IntermediateMetricEvent

        self._engine.dispatch_model_event(
            IntermediateMetricEvent(model=entry.model, metric=self._score(value))
        )

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        """Tell the strategy the trial's objective, or that it failed when there is none."""
        with self._engine.cond:
            entry = self._running.pop(trial_id, None)
        if entry is None:
            logger.debug("trial %s was not suggested by this search or has finished", trial_id)
            return

        value, problem = final_value(result, metric=self.metric, error=error)
        if problem is not None and not error and entry.last is not None:
            # A trial stopped while paused (HyperBand's halving) ends with no result; its
            # objective is the last one it reported.
            value, problem = entry.last, None
        if self._objectives and problem is None and entry.model is not None:
            self._vectors[_sample_key(entry.model.sample)] = [
                (result or {}).get(objective.key) for objective in self._objectives
            ]
        with self._engine.cond:
            entry.done = True
            entry.value = None if problem is not None else self._score(value)
        if problem is not None:
            logger.info("trial %d failed: %s; the strategy is told so", entry.number, problem)
        if entry.model is not None:
            self._engine._answer(entry.model, entry.value)
        else:
            with self._engine.cond:
                self._engine.cond.notify_all()

    def save(self, checkpoint_path: str) -> None:
        """Write the configs handed out so far, by number (Tune saves every searcher).

        The results store, not this file, is what a resumed search goes on from
        (`nas.strategies`); the file is a readable record of what NNI proposed.
        """
        with self._engine_lock():
            trials = [
                {"number": e.number, "config": e.sample, "value": e.value, "done": e.done}
                for e in self._seen.values()
                if e is not None
            ]
        state = {"strategy": self._strategy_name, "metric": self.metric, "trials": trials}
        partial = f"{checkpoint_path}.partial"
        Path(partial).write_text(json.dumps(state, default=repr))
        os.replace(partial, checkpoint_path)

    def _engine_lock(self) -> contextlib.AbstractContextManager:
        return self._engine.cond if self._engine is not None else contextlib.nullcontext()

    def close(self) -> None:
        """Stop the strategy's thread (it would otherwise wait for trials that never come)."""
        if self._engine is not None:
            self._engine.shutdown()
        if self._thread is not None:
            self._thread.join(timeout=30)

    # --- the queue, called under the engine's condition ---

    def _has_room(self) -> bool:
        busy = len(self._pending) + len(self._running)
        return self._has_budget() and busy < self._concurrency

    def _has_budget(self) -> bool:
        return self._handed_out + len(self._pending) < self._trial_limit

    def _enqueue(self, model: ExecutableModelSpace) -> tuple[bool, float | None]:
        """Queue a submitted model: (True, None); or for a repeat, (False, the answer to give).

        The answer is the value the config got, or None (failed) while it still runs or when
        the budget is spent: either costs the strategy nothing but a new proposal.
        """
        sample = self._decode(model.sample)
        key = config_key(self._parameters, sample)
        with self._engine.cond:
            if key not in self._seen and self._has_budget():
                self._repeats = 0
                self._queue(sample, key, model)
                return True, None

            self._repeats += 1
            self._answered += 1
            if self._repeats >= MAX_REPEATS and self._has_budget():
                # The strategy keeps circling what it knows: give Tune something new.
                self._fill()
                self._repeats = 0
            earlier = self._seen.get(key)
            return False, (earlier.value if earlier is not None and earlier.done else None)

    def _queue(self, sample: dict[str, Any], key: str, model: ExecutableModelSpace | None) -> None:
        entry = _Entry(self._next_number, sample, key, model)
        self._next_number += 1
        self._seen[key] = entry
        self._pending.append(entry)
        self._engine.cond.notify_all()

    def _fill(self) -> None:
        """Queue one config no trial has had, drawn uniformly by the queue itself."""
        for _ in range(10 * MAX_REPEATS):
            sample = {d.name: self._draw(d) for d in self._dimensions}
            key = config_key(self._parameters, sample)
            if key not in self._seen:
                logger.debug("filler trial %d: %s", self._next_number, sample)
                self._queue(sample, key, None)
                return
        logger.warning(
            "the %s search found no untried config in %d draws; stopping after %d trials",
            self._strategy_name,
            10 * MAX_REPEATS,
            self._handed_out,
        )

    def _draw(self, dimension: _Dimension) -> Any:
        rng = self._rng
        if dimension.values is not None:
            return dimension.values[int(rng.integers(len(dimension.values)))]
        domain = dimension.domain
        if isinstance(domain, IntRange):
            return int(rng.integers(domain.low, domain.high + 1))
        if isinstance(domain, LogRange):
            return float(math.exp(rng.uniform(math.log(domain.low), math.log(domain.high))))
        return float(rng.uniform(domain.low, domain.high))

    def _decode(self, nni_sample: Mapping[str, Any]) -> dict[str, Any]:
        return {d.name: d.decode(nni_sample[d.name]) for d in self._dimensions}

    def _score(self, value: float) -> float:
        # NNI's strategies maximise.
        return value if self.mode == "max" else -value

    # --- the strategy's side ---

    def _start(self) -> None:
        if self._thread is not None:
            return
        import_nni()
        from nni.mutable import MutableDict
        from nni.nas.space import RawFormatModelSpace

        self._engine = _make_engine_class()(self)
        space = RawFormatModelSpace(
            MutableDict({d.name: d.mutable() for d in self._dimensions}), None
        )
        strategy = self._new_strategy()
        strategy.initialize(space, self._engine)
        self._thread = threading.Thread(
            target=self._run_strategy, args=(strategy,), name="nni-strategy", daemon=True
        )
        self._thread.start()

    def _run_strategy(self, strategy: Strategy) -> None:
        try:
            with _seeded_torch(self._seed):
                strategy.run()
        except BaseException as exc:  # noqa: BLE001 - reported, then the queue takes over
            self._strategy_error = exc
            logger.warning("the %s strategy stopped: %r", self._strategy_name, exc)
        finally:
            with self._engine.cond:
                self._strategy_done = True
                self._engine.cond.notify_all()

    def _pareto_parent(self, population: Sequence[Any], tournament: Sequence[Any]) -> Any:
        """The tournament's best individual by Pareto rank over the whole population.

        NSGA-II's order: the lowest non-dominated rank wins, and within a rank the one in the
        least crowded region (largest crowding distance), so the front spreads out. An
        individual whose objectives are missing ranks last. Individuals are NNI's (x, y).
        """
        modes = [objective.mode for objective in self._objectives]
        rows = [self._vectors.get(_sample_key(individual.x)) for individual in population]
        ranks = pareto_ranks([row or [None] * len(modes) for row in rows], modes)
        crowding = [0.0] * len(population)
        for rank in {r for r in ranks if r is not None}:
            members = [i for i, r in enumerate(ranks) if r == rank]
            distances = crowding_distances([rows[i] for i in members], modes)
            for i, distance in zip(members, distances, strict=True):
                crowding[i] = distance
        order = {id(individual): i for i, individual in enumerate(population)}

        def preference(individual: Any) -> tuple[float, float]:
            i = order[id(individual)]
            rank = math.inf if ranks[i] is None else ranks[i]
            return (rank, -crowding[i])

        return min(tournament, key=preference).x

    def _new_strategy(self) -> Strategy:
        name = self._strategy_name
        if name == "evolution":
            from nas.strategies import default_evolution

            settings = self._evolution or default_evolution(self._trial_limit)
            return _evolution_strategy(
                population_size=settings.population_size,
                sample_size=settings.sample_size,
                # NNI's default (0.05 per dimension) leaves most children equal to their
                # parent on a space of a few dimensions; mutate one dimension on average.
                mutation_prob=max(0.05, 1 / len(self._dimensions)),
                seed=self._seed,
                parent_picker=self._pareto_parent if self._objectives else None,
            )
        if name == "tpe":
            return _tpe_strategy(seed=self._seed)
        from nni.nas.strategy import PolicyBasedRL

        # A policy update every few samples, so that a small budget still learns.
        return PolicyBasedRL(samples_per_update=max(2, min(20, self._trial_limit // 4)))


def _evolution_strategy(
    *, parent_picker: Callable[[Sequence[Any], Sequence[Any]], Any] | None, **options: Any
) -> Strategy:
    """NNI's regularized evolution, able to go on when its whole first population failed.

    `parent_picker(population, tournament)` replaces NNI's pick of the tournament's highest
    metric, e.g. with a Pareto-rank pick; None keeps NNI's.
    """
    from nni.nas.strategy import RegularizedEvolution

    class Evolution(RegularizedEvolution):
        def best_parent(self) -> Any:
            if parent_picker is None:
                return super().best_parent()
            population = list(self._population)
            picked = self._random_state.permutation(len(population))[: self.sample_size]
            return parent_picker(population, [population[i] for i in picked])

        def new_individual(self) -> ExecutableModelSpace:
            # NNI picks a parent from the population, which holds only trials that returned a
            # value; with none yet it would fail on an empty tournament.
            if not self._population:
                return self.random()
            return super().new_individual()

    return Evolution(**options)


def _tpe_strategy(*, seed: int) -> Strategy:
    """NNI's TPE strategy without its one-second sleep and its grid-point swap."""
    from nni.algorithms.hpo.tpe_tuner import TpeTuner
    from nni.nas.strategy.hpo import HPOTunerStrategy

    class TPE(HPOTunerStrategy):
        def _run(self) -> None:
            space = {
                label: _legacy_dict(mutable)
                for label, mutable in self.model_space.simplify().items()
            }
            with self._thread_lock:
                self.tuner.update_search_space(space)
                # NNI's deduplicator replaces a repeat with a grid point and records it under
                # the repeat's parameters; the queue rejects repeats itself.
                self.tuner.dedup = lambda params: params

            while self.engine.idle_worker_available():
                with self._thread_lock:
                    param = self.tuner.generate_parameters(self._model_count)
                    model = self.model_space.freeze(param)
                    self._model_to_id[model] = self._model_count
                    self._model_count += 1
                self.engine.submit_models(model)

    return TPE(TpeTuner(optimize_mode="maximize", seed=seed))


def _sample_key(nni_sample: Mapping[str, Any]) -> str:
    """A key for an NNI sample, the same for equal samples."""
    return json.dumps(nni_sample, sort_keys=True, default=str)


def _legacy_dict(mutable: Any) -> dict[str, Any]:
    """The HPO tuners' form of a mutable, which NNI 3.0 gives for Categorical only."""
    from nni.mutable import Numerical

    if not isinstance(mutable, Numerical):
        return mutable.as_legacy_dict()
    if mutable.quantize is not None:
        return {"_type": "quniform", "_value": [mutable.low, mutable.high, mutable.quantize]}
    kind = "loguniform" if mutable.log_distributed else "uniform"
    return {"_type": kind, "_value": [mutable.low, mutable.high]}


@contextlib.contextmanager
def _seeded_torch(seed: int) -> Iterator[None]:
    """Seed torch's global generator for the RL policy, on one thread; then put both back.

    The driver trains nothing while the search runs, so no one else draws from the generator
    meanwhile, and the policy's small updates run faster on one thread than on contended
    cores.
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            yield
    finally:
        torch.set_num_threads(threads)

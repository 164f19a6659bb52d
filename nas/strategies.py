"""Search strategies: flat parameters plus a strategy name in, a Ray Tune search plan out.

`build_search` is the one entry point the driver needs. Every strategy gives each trial a Tune
config from which `sampled_values` reads the flat sample (`{"model.depth": 3, ...}`), so
the trial code never depends on the strategy:

    grid      every combination of finite domains, on Tune's BasicVariantGenerator
    random    independent draws from each domain, on Tune's BasicVariantGenerator
    bayesian  Ax's Bayesian optimisation, through nas.bayesian.BayesianSearch
    evolution NNI's regularized evolution   } through nas.nni_bridge.NniSearch, which
    tpe       NNI's TPE                     } hands Tune the models NNI submits, each
    rl        NNI's policy-based RL (PPO)   } resolved config once

Ray, Ax and NNI are imported by the strategy that uses them, so importing this module is cheap.

A search resumed after its driver died is planned with the trials already finished: grid and
random draw the same configs under the same numbers again and skip the finished ones
(`nas.resume`); Bayesian reloads Ax's state, saved after each suggestion, and is told the
results it missed (`BayesianSearch.resume`); an NNI strategy starts afresh for the trials left,
numbered after the finished ones. Either way the search runs `total_trials` in all.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from nas.numbering import FinishedTrial
from nas.objectives import Objective
from nas.schedulers import SCHEDULERS, build_scheduler
from nas.variants import GRID_KEY, grid_points, random_space, variant_generator
from search_spaces.domains import did_you_mean
from search_spaces.errors import SpecError
from search_spaces.parameters import SEARCHABLE_SECTIONS, Parameter

if TYPE_CHECKING:
    from ray.tune.search import SearchAlgorithm, Searcher

__all__ = [
    "DEFAULT_TRIALS",
    "EvolutionSettings",
    "SCHEDULERS",
    "STRATEGIES",
    "SearchPlan",
    "build_scheduler",
    "build_search",
    "sampled_values",
]

logger = logging.getLogger(__name__)

# Strategies that nas.nni_bridge runs on NNI.
NNI_STRATEGIES = ("evolution", "tpe", "rl")

STRATEGIES = ("grid", "random", "bayesian", *NNI_STRATEGIES)

# Trials for random and bayesian search when the spec gives no search.trials.
DEFAULT_TRIALS = 20


@dataclass(frozen=True)
class EvolutionSettings:
    """Regularized evolution: the individuals kept, and how many enter each tournament."""

    population_size: int
    sample_size: int


@dataclass
class SearchPlan:
    """What tune.Tuner needs to run one search.

    Attributes:
        search_alg: for tune.TuneConfig(search_alg=...).
        param_space: for tune.Tuner(param_space=...).
        num_samples: for tune.TuneConfig(num_samples=...).
        total_trials: how many trials the search will run.
    """

    search_alg: Searcher | SearchAlgorithm
    param_space: dict[str, Any]
    num_samples: int
    total_trials: int


def build_search(
    parameters: Sequence[Parameter],
    *,
    strategy: str,
    trials: int | None,
    metric: str,
    mode: str,
    seed: int,
    max_concurrent: int,
    finished: Mapping[int, FinishedTrial] | None = None,
    state_path: str | None = None,
    objectives: Sequence[Objective] = (),
    bounds: Mapping[str, float] | None = None,
    evolution: EvolutionSettings | None = None,
) -> SearchPlan:
    """Plan a search over the searched parameters (fixed ones are left to parameters.resolve).

    Args:
        parameters: The spec's flat parameters, fixed ones included.
        strategy: One of STRATEGIES.
        trials: How many trials to run; None runs the whole grid, or DEFAULT_TRIALS.
        metric: The result key to optimise.
        mode: "min" or "max".
        seed: Seeds every random draw of the strategy.
        max_concurrent: Most trials running at once; 0 for no limit.
        finished: Resuming: the trials an earlier run of this search finished, by number
            (maybe none); they are not run again. None for a new search.
        state_path: A file where a strategy with state (Bayesian) keeps it after each
            suggestion, and reads it back when `finished` is given. None keeps it nowhere.
        objectives: Several objectives for a strategy that optimises them jointly (Bayesian
            by Ax's multi-objective optimisation, evolution by Pareto rank); the others
            optimise `metric` and the rest are only recorded. Empty: `metric` alone.
        bounds: Cost bounds by spec key (`max_params`), for a strategy that models them.
        evolution: Population and tournament size for `evolution`; None sizes them from the
            budget (`default_evolution`).

    Raises:
        SpecError: the strategy is unknown or cannot search these parameters.
        StoreError: resuming a Bayesian search whose state file is missing or damaged.
    """
    if strategy not in STRATEGIES:
        raise SpecError(
            f"search.strategy: unknown strategy {strategy!r}"
            f"{did_you_mean(strategy, STRATEGIES)}; use one of {', '.join(STRATEGIES)}"
        )
    if mode not in ("min", "max"):
        raise SpecError(f"evaluation.mode: must be min or max, got {mode!r}")
    if trials is not None and trials < 1:
        raise SpecError(f"search.trials: {trials} must be >= 1, or left out")

    parameters = list(parameters)
    resuming = finished is not None
    finished = dict(finished or {})
    if strategy == "grid":
        return _grid_plan(
            parameters, trials=trials, seed=seed, max_concurrent=max_concurrent, skip=finished
        )
    if strategy == "random":
        return _random_plan(
            parameters, trials=trials, seed=seed, max_concurrent=max_concurrent, skip=finished
        )
    if strategy in NNI_STRATEGIES:
        wanted = trials if trials is not None else DEFAULT_TRIALS
        return _nni_plan(
            parameters,
            strategy=strategy,
            trials=wanted,
            metric=metric,
            mode=mode,
            seed=seed,
            max_concurrent=max_concurrent,
            finished=finished,
            evolution=evolution or default_evolution(wanted),
            objectives=objectives,
        )
    return _bayesian_plan(
        parameters,
        trials=trials,
        metric=metric,
        mode=mode,
        seed=seed,
        max_concurrent=max_concurrent,
        finished=finished if resuming else None,
        state_path=state_path,
        objectives=objectives,
        bounds=bounds,
    )


def default_evolution(trials: int) -> EvolutionSettings:
    """A population of about a third of the budget (2 to 20), tournaments of a third of that.

    NNI's defaults (100 and 25) suit thousands of trials; on a budget of tens, evolution
    would never get past its random first population.
    """
    population = max(2, min(20, trials // 3))
    return EvolutionSettings(population_size=population, sample_size=max(1, population // 3))


def sampled_values(config: Mapping[str, Any]) -> dict[str, Any]:
    """The flat sample `{"model.depth": 3, ...}` held in a trial's Tune config.

    Grid configs hold their point under one key, which is unpacked; keys that are not
    parameter names (anything the driver adds to the config) are left out.
    """
    source = config.get(GRID_KEY, config)
    return {
        name: value.item() if isinstance(value, np.generic) else value
        for name, value in source.items()
        if name.partition(".")[0] in SEARCHABLE_SECTIONS and "." in name
    }


def _grid_plan(
    parameters: list[Parameter],
    *,
    trials: int | None,
    seed: int,
    max_concurrent: int,
    skip: Mapping[int, FinishedTrial],
) -> SearchPlan:
    from ray import tune

    points = grid_points(parameters)
    size = len(points)
    if trials is not None and trials < size:
        raise SpecError(
            f"search.trials: {trials} is fewer than the {size} points of the grid; leave "
            f"search.trials out (or set it to {size}) to run the whole grid, or use strategy "
            f"random to sample {trials}"
        )
    if trials is not None and trials > size:
        logger.info("search.trials is %d but the grid has %d points; running all", trials, size)

    # The order of points is fixed by the spec, so the seed only matters for Tune's generator.
    return SearchPlan(
        search_alg=variant_generator(seed=seed, max_concurrent=max_concurrent, skip=skip),
        param_space={GRID_KEY: tune.grid_search(points)},
        num_samples=1,
        total_trials=size,
    )


def _random_plan(
    parameters: list[Parameter],
    *,
    trials: int | None,
    seed: int,
    max_concurrent: int,
    skip: Mapping[int, FinishedTrial],
) -> SearchPlan:
    total = trials if trials is not None else DEFAULT_TRIALS
    return SearchPlan(
        search_alg=variant_generator(seed=seed, max_concurrent=max_concurrent, skip=skip),
        param_space=random_space(parameters),
        num_samples=total,
        total_trials=total,
    )


def _bayesian_plan(
    parameters: list[Parameter],
    *,
    trials: int | None,
    metric: str,
    mode: str,
    seed: int,
    max_concurrent: int,
    finished: Mapping[int, FinishedTrial] | None,
    state_path: str | None,
    objectives: Sequence[Objective],
    bounds: Mapping[str, float] | None,
) -> SearchPlan:
    from ray.tune.search import ConcurrencyLimiter

    from nas.bayesian import BayesianSearch

    wanted = trials if trials is not None else DEFAULT_TRIALS
    searcher = BayesianSearch(
        parameters,
        metric=metric,
        mode=mode,
        seed=seed,
        max_trials=wanted,
        state_path=state_path,
        objectives=objectives,
        bounds=bounds,
    )
    if finished is not None:
        searcher.resume(finished)
    total = searcher.trial_limit
    search_alg = (
        ConcurrencyLimiter(searcher, max_concurrent=max_concurrent)
        if max_concurrent > 0
        else searcher
    )
    # The search space lives in the searcher; Tune's param_space stays empty.
    return SearchPlan(search_alg=search_alg, param_space={}, num_samples=total, total_trials=total)


def _nni_plan(
    parameters: list[Parameter],
    *,
    strategy: str,
    trials: int,
    metric: str,
    mode: str,
    seed: int,
    max_concurrent: int,
    finished: Mapping[int, FinishedTrial],
    evolution: EvolutionSettings,
    objectives: Sequence[Objective] = (),
) -> SearchPlan:
    from nas.nni_bridge import NniSearch

    # FIXME: a resumed search's strategy neither learns from the finished trials nor knows
    # their configs, so it may try one of them again; Tune holds no config to give it.
    searcher = NniSearch(
        parameters,
        strategy=strategy,
        metric=metric,
        mode=mode,
        seed=seed + len(finished),
        max_trials=trials - len(finished),
        max_concurrent=max_concurrent,
        evolution=evolution,
        objectives=objectives,
        first_number=max(finished, default=-1) + 1,
    )
    total = len(finished) + searcher.trial_limit
    # The searcher limits the trials in flight itself; the space lives in it too.
    return SearchPlan(
        search_alg=searcher, param_space={}, num_samples=searcher.trial_limit, total_trials=total
    )

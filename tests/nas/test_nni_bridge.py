"""NNI's strategies behind the bridge, driven the way Tune drives a searcher.

`_drive` plays Tune: it asks `suggest` for configs, keeps up to `concurrency` of them running,
and reports each one's objective (a known function of the config) when it ends. No Ray
trials run here; the strategies, NNI's engine events and the queue are all real. Size: each
search is at most 12 synthetic trials; NNI's import (a few seconds) is paid once.
"""

from __future__ import annotations

import math
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from nas.nni_bridge import NniSearch, config_key, distinct_configs, import_nni, nni_dimensions
from nas.numbering import TRIAL_NUMBER_KEY
from nas.strategies import NNI_STRATEGIES, EvolutionSettings, build_search
from search_spaces.domains import Choice, Fixed, FloatRange, IntRange, LogRange
from search_spaces.parameters import flatten

ROOT = Path(__file__).resolve().parents[2]

SPACE = flatten(
    {
        "model": {
            "depth": IntRange(1, 4),
            "width": Choice((16, 32, 64)),
            "batch_norm": Choice((True, False)),
        },
        "regularization": {"dropout": FloatRange(0.0, 0.5)},
        "optimizer": {
            "name": Choice(("sgd", "adam")),
            "lr": LogRange(1e-4, 1e-1),
            "momentum": FloatRange(0.0, 0.9),
        },
    }
)

# 2 depths x 2 activations: 4 configs.
TINY = flatten({"model": {"depth": IntRange(1, 2), "activation": Choice(("relu", "tanh"))}})

# momentum matters for sgd only: sgd x 2 momenta + adam = 3 distinct configs, not 4.
CONDITIONAL = flatten(
    {
        "model": {"depth": Fixed(2)},
        "optimizer": {"name": Choice(("sgd", "adam")), "momentum": Choice((0.5, 0.9))},
    }
)


def _objective(config: dict[str, Any]) -> float:
    lr = config.get("optimizer.lr", 1e-2)
    return 0.1 * config["model.depth"] - 0.1 * abs(math.log10(lr) + 2)


def _search(parameters=SPACE, *, strategy: str, trials: int, concurrency: int = 2, **kw):
    return NniSearch(
        parameters,
        strategy=strategy,
        metric="accuracy_mean",
        mode=kw.pop("mode", "max"),
        seed=kw.pop("seed", 0),
        max_trials=trials,
        max_concurrent=concurrency,
        **kw,
    )


def _drive(
    search: NniSearch,
    *,
    concurrency: int,
    objective: Callable[[dict[str, Any]], float] = _objective,
    timeout: float = 120.0,
) -> tuple[list[dict[str, Any]], int]:
    """Run the search to FINISHED like Tune; (configs in suggestion order, most in flight)."""
    configs: list[dict[str, Any]] = []
    running: dict[str, dict[str, Any]] = {}
    most = 0
    deadline = time.monotonic() + timeout
    finished = False
    # Real trials take seconds, so a strategy that is still thinking (None) is given a
    # moment before a running trial ends.
    waited = 0
    while not finished or running:
        assert time.monotonic() < deadline, f"search stuck after {len(configs)} trials"
        answer = None if finished else search.suggest(f"trial_{len(configs)}")
        if answer == NniSearch.FINISHED:
            finished = True
        elif isinstance(answer, dict):
            running[f"trial_{len(configs)}"] = answer
            configs.append(answer)
            most = max(most, len(running))
            waited = 0
        patient = answer is None and waited < 40 and not finished
        if running and (
            finished or len(running) >= concurrency or (answer is None and not patient)
        ):
            trial_id, config = next(iter(running.items()))
            del running[trial_id]
            search.on_trial_complete(trial_id, {"accuracy_mean": objective(config)})
            waited = 0
        elif answer is None:
            waited += 1
            time.sleep(0.025)
    search.close()
    return configs, most


@pytest.fixture(scope="module", autouse=True)
def _nni_imported() -> None:
    # Paid once here, so that timings below measure the search alone.
    import_nni()


@pytest.mark.parametrize("strategy", NNI_STRATEGIES)
def test_runs_exactly_the_budget_with_distinct_configs_and_numbers(strategy: str) -> None:
    configs, most = _drive(_search(strategy=strategy, trials=9, concurrency=3), concurrency=3)

    assert len(configs) == 9
    assert sorted(c[TRIAL_NUMBER_KEY] for c in configs) == list(range(9))
    keys = {config_key(SPACE, c) for c in configs}
    assert len(keys) == 9
    # Several in flight, never more than allowed.
    assert most == 3


@pytest.mark.parametrize("strategy", NNI_STRATEGIES)
def test_samples_keep_our_names_types_and_bounds(strategy: str) -> None:
    configs, _ = _drive(_search(strategy=strategy, trials=8), concurrency=2)

    for config in configs:
        assert set(config) == {p.name for p in SPACE} | {TRIAL_NUMBER_KEY}
        assert type(config["model.depth"]) is int and 1 <= config["model.depth"] <= 4
        assert config["model.width"] in (16, 32, 64) and type(config["model.width"]) is int
        assert type(config["model.batch_norm"]) is bool
        assert config["optimizer.name"] in ("sgd", "adam")
        assert type(config["optimizer.lr"]) is float and 1e-4 <= config["optimizer.lr"] <= 1e-1
        assert 0.0 <= config["regularization.dropout"] <= 0.5


def test_ranges_cross_to_nni_on_their_own_scale() -> None:
    import_nni()
    by_name = {d.name: d for d in nni_dimensions(SPACE, finite=False)}

    lr = by_name["optimizer.lr"].mutable()
    assert lr.log_distributed and (lr.low, lr.high) == (1e-4, 1e-1)
    depth = by_name["model.depth"]
    assert depth.mutable().quantize == 1
    # Half a step past each end, so that every integer gets the same share of draws.
    assert [depth.decode(v) for v in (0.5, 1.0, 2.4, 4.5)] == [1, 1, 2, 4]
    assert by_name["model.width"].decode(2) == 64

    # RL's policy picks from lists: a log range becomes points spaced evenly in log.
    finite = {d.name: d for d in nni_dimensions(SPACE, finite=True)}
    points = finite["optimizer.lr"].values
    assert points[0] == pytest.approx(1e-4) and points[-1] == pytest.approx(1e-1)
    ratios = {round(b / a, 6) for a, b in zip(points, points[1:], strict=False)}
    assert len(ratios) == 1
    assert finite["model.depth"].values == (1, 2, 3, 4)


def test_space_size_counts_configs_after_conditions() -> None:
    assert distinct_configs(TINY, nni_dimensions(TINY, finite=False)) == 4
    assert distinct_configs(CONDITIONAL, nni_dimensions(CONDITIONAL, finite=False)) == 3
    assert distinct_configs(SPACE, nni_dimensions(SPACE, finite=False)) is None


@pytest.mark.parametrize("strategy", NNI_STRATEGIES)
@pytest.mark.parametrize(("parameters", "size"), [(TINY, 4), (CONDITIONAL, 3)])
def test_a_space_smaller_than_the_budget_runs_each_config_once(
    strategy: str, parameters, size: int
) -> None:
    search = _search(parameters, strategy=strategy, trials=10)
    assert search.trial_limit == size

    configs, _ = _drive(search, concurrency=2, objective=lambda c: 0.5)

    keys = [config_key(parameters, c) for c in configs]
    assert len(keys) == size and len(set(keys)) == size


# 6 momenta for sgd, none for adam: 7 distinct configs among 12 samples.
CONDITIONAL_WIDE = flatten(
    {
        "model": {"depth": Fixed(2)},
        "optimizer": {
            "name": Choice(("sgd", "adam")),
            "momentum": Choice((0.4, 0.5, 0.6, 0.7, 0.8, 0.9)),
        },
    }
)


@pytest.mark.parametrize(
    ("strategy", "parameters"), [("tpe", TINY), ("evolution", CONDITIONAL_WIDE)]
)
def test_repeated_proposals_are_answered_without_a_trial(strategy: str, parameters) -> None:
    # TPE proposes what it has tried on a 4-config space, and evolution's own check for
    # repeats misses configs that differ only in an inactive momentum; the queue answers both.
    search = _search(parameters, strategy=strategy, trials=10, concurrency=1)
    configs, _ = _drive(search, concurrency=1, objective=lambda c: 0.5)

    keys = [config_key(parameters, c) for c in configs]
    assert len(keys) == len(set(keys)) == search.trial_limit
    assert search.repeats_answered > 0


@pytest.mark.parametrize("strategy", NNI_STRATEGIES)
def test_a_failed_trial_is_told_as_failed_and_the_search_goes_on(strategy: str) -> None:
    def objective(config: dict[str, Any]) -> float:
        # Trials 1 and 4 diverge.
        return math.nan if config[TRIAL_NUMBER_KEY] in (1, 4) else _objective(config)

    search = _search(strategy=strategy, trials=8)
    configs, _ = _drive(search, concurrency=2, objective=objective)

    assert len(configs) == 8
    entries = {e.number: e for e in search._seen.values() if e is not None and e.model}
    for number, entry in entries.items():
        if number in (1, 4):
            # NNI holds no NaN: a failure carries no metric at all.
            assert entry.model.status.value == "failed" and entry.model.metric is None
        else:
            assert entry.model.status.value == "trained"
            assert entry.model.metric == pytest.approx(_objective(configs[number]))


def test_evolution_learns_negated_values_for_min_mode() -> None:
    search = _search(
        strategy="evolution",
        trials=6,
        mode="min",
        evolution=EvolutionSettings(population_size=3, sample_size=2),
    )
    configs, _ = _drive(search, concurrency=1, objective=lambda c: c["model.depth"] / 10)

    by_lr = {c["optimizer.lr"]: c for c in configs}
    for model in search._engine.models:
        if model.metric is not None:
            config = search._decode(model.sample)
            assert model.metric == pytest.approx(
                -by_lr[config["optimizer.lr"]]["model.depth"] / 10
            )


def test_tpe_does_not_sleep_between_proposals() -> None:
    # NNI's own TPE strategy sleeps 1 s after every submission: 10 trials would take >= 10 s.
    started = time.monotonic()
    configs, _ = _drive(_search(strategy="tpe", trials=10, concurrency=1), concurrency=1)
    elapsed = time.monotonic() - started

    assert len(configs) == 10
    assert elapsed < 5.0, f"10 TPE proposals took {elapsed:.1f} s"


def test_build_search_plans_an_nni_strategy_with_its_budget() -> None:
    plan = build_search(
        SPACE, strategy="evolution", trials=7, metric="a", mode="max", seed=0, max_concurrent=2
    )
    assert isinstance(plan.search_alg, NniSearch)
    assert (plan.num_samples, plan.total_trials, plan.param_space) == (7, 7, {})


@pytest.mark.slow  # a fresh interpreter imports NNI: 10-20 s on 2 shared cores
def test_importing_nni_says_nothing_to_the_user() -> None:
    code = (
        "import logging; logging.basicConfig(level=logging.INFO)\n"
        "from nas.nni_bridge import import_nni; import_nni()\n"
        "import nni.nas.strategy.evolution as e; e._logger.info('individual')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert done.stdout == "" and done.stderr == "", done.stdout + done.stderr


def test_evolution_goes_on_when_its_whole_first_population_fails() -> None:
    # NNI's own evolution would pick a parent from an empty population and stop.
    search = _search(
        strategy="evolution",
        trials=6,
        concurrency=1,
        evolution=EvolutionSettings(population_size=2, sample_size=1),
    )
    configs, _ = _drive(
        search,
        concurrency=1,
        objective=lambda c: math.nan if c[TRIAL_NUMBER_KEY] < 2 else _objective(c),
    )

    assert len(configs) == 6
    assert search._strategy_error is None
    # Every trial after the failed two came from the strategy, not from the queue's draws.
    assert all(e.model is not None for e in search._seen.values() if e is not None)


def test_multi_objective_evolution_picks_parents_by_pareto_rank() -> None:
    from nni.nas.strategy.evolution import Individual

    from nas.nni_bridge import _sample_key
    from nas.objectives import Objective

    search = _search(
        strategy="evolution",
        trials=12,
        evolution=EvolutionSettings(population_size=4, sample_size=2),
        objectives=[Objective("accuracy", "max"), Objective("latency_ms", "min")],
    )
    # (accuracy, latency): b dominates a, c dominates d; b and c form the front.
    points = {"a": (0.90, 5.0), "b": (0.95, 1.0), "c": (0.50, 0.5), "d": (0.40, 2.0)}
    population = [Individual({"id": name}, accuracy) for name, (accuracy, _) in points.items()]
    for individual in population:
        search._vectors[_sample_key(individual.x)] = list(points[individual.x["id"]])
    a, b, c, d = population

    # NNI alone would take a, the higher accuracy; a is dominated, c is on the front.
    assert search._pareto_parent(population, [a, c]) == {"id": "c"}
    assert search._pareto_parent(population, [d, b]) == {"id": "b"}
    # Unknown objectives (a failed trial) rank last.
    stranger = Individual({"id": "e"}, 0.99)
    assert search._pareto_parent([*population, stranger], [stranger, d]) == {"id": "d"}
    search.close()

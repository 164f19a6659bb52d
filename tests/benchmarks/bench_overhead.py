"""Fixed cost per trial: archsearch's driver against bare Ray Tune and an Optuna loop.

All three run the same trivial trial (one epoch of a width-8 MLP on 2 folds of 60 digits, a
few milliseconds of work) with the same sampled width and learning rate. Each runs `small`
and then `large` trials; the difference in wall time over the difference in trials is the
cost of one more trial, and what is left of the small run is the start-up cost (Ray, the
store, the spec). Both Ray paths run trials in worker processes, as many at once as there are
cores; Optuna runs them one after another in this process.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from tests.benchmarks.common import Section, markdown_table, ratio
from tests.benchmarks.specs import run_spec, tiny_spec

# FIXME: the multi-worker trial path (branch issue-4, resources.workers_per_trial > 1) is not
# measured yet; once it is merged, add a row that runs tiny_spec with workers_per_trial: 2
# through run_spec, beside the in-process rows below.
MULTI_WORKER_SPEC_OVERRIDES: dict[str, Any] | None = None


# FIXME: on a busy machine the start-up noise (Ray, the store) exceeds archsearch's cost of 9
# more trials, so the slope can come out 0; more trials or repeated runs would fix it, at
# minutes more of `make bench`.
@dataclass(frozen=True)
class Settings:
    small: int = 3
    large: int = 12


def _work(spec_raw: dict[str, Any]):
    """The trial's work as a function of (width, lr), outside any framework."""
    from cluster.driver import load_search_data
    from cluster.spec import parse_spec
    from search_spaces.parameters import resolve
    from trainers.folds import dataset_folds
    from trainers.loop import cross_validate

    spec = parse_spec(spec_raw, source="benchmark")
    _, data = load_search_data(spec)
    folds = dataset_folds(data, n_folds=2, stratified=True, seed=0)
    parameters = spec.parameters()

    def trial(width: int, lr: float) -> float:
        config = resolve(parameters, {"model.width": width, "optimizer.lr": lr})
        result = cross_validate(
            config,
            data,
            folds=folds,
            epochs=1,
            patience=None,
            objective="accuracy",
            mode="max",
            seed=0,
        )
        return result.best.mean["accuracy"]

    return trial


def _bare_tune(trials: int, trial) -> float:
    import ray
    from ray import tune

    def trainable(config: dict[str, Any]) -> None:
        tune.report({"accuracy": trial(config["width"], config["lr"])})

    started = time.perf_counter()
    ray.init(address="local", include_dashboard=False, log_to_driver=False)
    try:
        tuner = tune.Tuner(
            trainable,
            param_space={"width": tune.choice([8, 16]), "lr": tune.loguniform(1e-3, 1e-2)},
            tune_config=tune.TuneConfig(num_samples=trials, metric="accuracy", mode="max"),
            run_config=tune.RunConfig(verbose=0),
        )
        tuner.fit()
    finally:
        ray.shutdown()
    return time.perf_counter() - started


def _optuna(trials: int, trial) -> float:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    started = time.perf_counter()
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(0))
    study.optimize(
        lambda t: trial(
            t.suggest_categorical("width", [8, 16]), t.suggest_float("lr", 1e-3, 1e-2, log=True)
        ),
        n_trials=trials,
    )
    return time.perf_counter() - started


def run(settings: Settings) -> Section:
    started = time.perf_counter()
    trial = _work(tiny_spec(trials=1))

    # The work alone, warmed up: what a trial would cost with no framework at all.
    trial(8, 1e-3)
    t0 = time.perf_counter()
    for _ in range(5):
        trial(8, 1e-3)
    work = (time.perf_counter() - t0) / 5

    # Untimed first runs: the first Ray start in a process also pays for importing Ray,
    # Tune and the driver, which is no cost of a trial.
    run_spec(tiny_spec(trials=1))
    _bare_tune(1, trial)

    walls: dict[str, dict[int, float]] = {
        "archsearch driver": {},
        "bare Ray Tune": {},
        "Optuna loop": {},
    }
    for n in (settings.small, settings.large):
        walls["archsearch driver"][n] = run_spec(tiny_spec(trials=n))[1]
        walls["bare Ray Tune"][n] = _bare_tune(n, trial)
        walls["Optuna loop"][n] = _optuna(n, trial)

    span = settings.large - settings.small
    costs = {}
    for name, wall in walls.items():
        per_trial = max((wall[settings.large] - wall[settings.small]) / span, 0.0)
        startup = max(wall[settings.small] - per_trial * settings.small, 0.0)
        costs[name] = (per_trial, startup)

    base_trial, base_start = costs["Optuna loop"]
    rows = [
        [
            name,
            f"{wall[settings.small]:.1f}",
            f"{wall[settings.large]:.1f}",
            f"{per * 1000:.0f}",
            ratio(per, base_trial),
            f"{start:.1f}",
            ratio(start, base_start) if base_start > 0.05 else "-",
        ]
        for (name, wall), (per, start) in zip(walls.items(), costs.values(), strict=True)
    ]
    header = [
        "path",
        f"wall {settings.small} trials (s)",
        f"wall {settings.large} trials (s)",
        "ms per extra trial",
        "per trial vs Optuna",
        "start-up (s)",
        "start-up vs Optuna",
    ]
    body = "\n".join(
        [
            f"The trial's own work, alone in this process: {work * 1000:.0f} ms. Per-trial cost "
            f"= (wall at {settings.large} - wall at {settings.small}) / {span}; both Ray paths "
            "run 2 trials at once on 2 cores, Optuna one at a time. In-process trials only: "
            "the multi-worker path is not measured yet (FIXME in bench_overhead.py). Bare "
            "Ray Tune runs with Tune's defaults, as a first script would: a new worker "
            "process per trial (`reuse_actors` is off) and the data pickled with the "
            "trainable; archsearch reuses workers and puts the data in Ray's object store "
            "once (`tune.with_parameters`).",
            "",
            markdown_table(header, rows),
        ]
    )
    data = {name: {"per_trial": c[0], "startup": c[1]} for name, c in costs.items()}
    data["work"] = work
    return Section("Fixed cost per trial", body, seconds=time.perf_counter() - started, data=data)

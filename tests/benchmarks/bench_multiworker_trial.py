"""Fixed cost of a trial on Ray Train workers, against a bare TorchTrainer per trial.

Runs the same tiny trials (digits, 2 folds, 1 epoch, an 8-unit MLP: training is a fraction of
a second) in four ways on a local Ray, one trial at a time, and prints seconds per trial:

- in-process:     the trial trains in the Tune trial (the path for one CPU worker);
- bare trainer:   a TorchTrainer per trial whose workers only report once: what any trial on
                  Ray Train workers costs at least;
- per-fold:       a TorchTrainer per fold, each given its own copy of the data, Ray Train's
                  default 2 s controller poll (how a trial ran before the reuse work);
- per-trial:      one TorchTrainer per trial for all folds, the data put in the object
                  store once per search, still the 2 s poll;
- archsearch:     cluster.workers as it is: per-trial, and the controller polling every
                  0.2 s, so a trial ends as soon as its workers do.

    PYTHONPATH=$PWD .venv/bin/python tests/benchmarks/bench_multiworker_trial.py --trials 3

On a shared machine the seconds are inflated by whatever else runs; the ratios, measured in
the same run, are what to compare.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

WORKERS = 2
RAY_DEFAULT_POLL = "2.0"  # Ray Train's own controller poll interval, in seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=3, help="trials per way (default 3)")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray")
    args = parser.parse_args()

    import ray

    ray.init(address="local", num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
    try:
        seconds = _measure_all(trials=args.trials)
    finally:
        ray.shutdown()

    print(f"\nseconds per trial ({args.trials} trials each, {WORKERS} workers, one at a time):")
    for way, value in seconds.items():
        print(f"  {way:<12} {value:7.2f}")
    bare, inprocess = seconds["bare"], seconds["in-process"]
    for way in ("per-fold", "per-trial", "archsearch"):
        extra = seconds[way] - inprocess
        print(
            f"  {way}: {seconds[way] / bare:.2f}x a bare TorchTrainer trial; "
            f"{extra:.2f}s over in-process ({extra / (bare - inprocess):.2f}x the bare "
            "trainer's own overhead)"
        )


def _measure_all(*, trials: int) -> dict[str, float]:
    import ray
    from ray import tune

    from cluster.spec import parse_spec
    from cluster.trainable import TrialData, TrialSettings, train_candidate
    from cluster.workers import WorkerPlan
    from trainers.datasets import load_dataset, take_subset
    from trainers.folds import make_folds

    spec = parse_spec(
        {
            "name": "bench",
            "data": {"dataset": "digits"},
            "model": {"family": "mlp", "depth": 1, "width": {"choice": [8, 9, 10, 11, 12]}},
            "training": {"epochs": 1},
            "evaluation": {"folds": 2, "metric": "accuracy"},
        }
    )
    dataset = take_subset(load_dataset("digits", seed=0), 300, seed=0)
    folds = make_folds(dataset.y_train, n_folds=2, task=dataset.task, stratified=True, seed=0)
    data = TrialData(dataset, tuple(folds))
    storage = f"/tmp/archsearch-bench-{os.getpid()}"
    plan = WorkerPlan(
        workers=WORKERS,
        cpus_per_worker=0.5,
        gpus_per_worker=0.0,
        data=ray.put(data),
        storage_path=f"{storage}/workers",
    )
    settings = TrialSettings(
        parameters=tuple(spec.parameters()),
        metric="accuracy",
        mode="max",
        epochs=1,
        patience=None,
        search_seed=0,
        threads=1,
    )
    worker_settings = TrialSettings(**{**settings.__dict__, "workers": plan})
    space = {"model.width": tune.grid_search([8, 9, 10, 11, 12][:trials])}

    def run(way: str, trainable: Callable, cpu: float, **kwargs: Any) -> float:
        wrapped = tune.with_resources(tune.with_parameters(trainable, **kwargs), {"cpu": cpu})
        tuner = tune.Tuner(
            wrapped,
            param_space=space,
            tune_config=tune.TuneConfig(max_concurrent_trials=1),
            run_config=tune.RunConfig(name=way, storage_path=storage, verbose=0),
        )
        started = time.perf_counter()
        grid = tuner.fit()
        elapsed = (time.perf_counter() - started) / trials
        errors = [r.error for r in grid if r.error is not None]
        if errors:
            raise RuntimeError(f"{way}: {errors[0]}")
        print(f"{way}: {elapsed:.2f}s per trial", flush=True)
        return elapsed

    # Not counted: the first worker group also pays for cold caches and the first imports.
    run("warm-up", _bare_trainer_trial, 0.01, storage=storage)
    slow = {"poll": RAY_DEFAULT_POLL}
    return {
        "in-process": run("in-process", train_candidate, 1.0, data=data, settings=settings),
        "bare": run("bare", _bare_trainer_trial, 0.01, storage=storage, **slow),
        "per-fold": run(
            "per-fold", _per_fold_trial, 0.01, data=data, settings=worker_settings, **slow
        ),
        "per-trial": run("per-trial", _polled, 0.01, data=data, settings=worker_settings, **slow),
        "archsearch": run(
            "archsearch", train_candidate, 0.01, data=data, settings=worker_settings
        ),
    }


def _polled(config: dict[str, Any], *, poll: str, **kwargs: Any) -> None:
    """`train_candidate` with Ray Train's controller polling every `poll` seconds."""
    from cluster.trainable import train_candidate
    from cluster.workers import POLL_ENV

    os.environ[POLL_ENV] = poll
    train_candidate(config, **kwargs)


def _bare_trainer_trial(config: dict[str, Any], *, storage: str, poll: str = "2.0") -> None:
    import ray.train
    from ray import tune
    from ray.train.torch import TorchConfig, TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    from cluster.workers import POLL_ENV

    os.environ[POLL_ENV] = poll
    trial_id = tune.get_context().get_trial_id()
    TorchTrainer(
        lambda: ray.train.report({"accuracy_mean": 0.0}),
        torch_config=TorchConfig(backend="gloo"),
        scaling_config=ray.train.ScalingConfig(
            num_workers=WORKERS, resources_per_worker={"CPU": 0.5}
        ),
        run_config=ray.train.RunConfig(
            name=f"bare-{trial_id}",
            storage_path=f"{storage}/workers",
            callbacks=[TuneReportCallback()],
        ),
    ).fit()


def _per_fold_trial(config: dict[str, Any], *, data: Any, settings: Any, poll: str) -> None:
    """Without reuse: a worker group per fold, each shipped its own copy of the data.

    The fold is given twice so that each of the two workers trains one fold, as in the
    archsearch way: the same work per worker, twice the worker groups.
    """
    import dataclasses

    import ray
    from ray import tune

    from cluster.trainable import TrialData
    from cluster.workers import POLL_ENV, run_on_workers

    os.environ[POLL_ENV] = poll
    trial_id = tune.get_context().get_trial_id()
    for index, fold in enumerate(data.folds):
        plan = dataclasses.replace(
            settings.workers, data=ray.put(TrialData(data.dataset, (fold, fold)))
        )
        run_on_workers(
            config,
            settings=dataclasses.replace(settings, workers=plan),
            plan=plan,
            trial_id=f"{trial_id}-fold{index}",
        )


if __name__ == "__main__":
    main()

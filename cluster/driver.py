"""The search driver: from a validated spec to a filled results store, on Ray Tune.

The steps, in order: load and check the data (so bad data stops before Ray starts), make the
folds every trial shares, start or join Ray, build the strategy and scheduler, and run
`tune.Tuner` with a recorder that writes each trial into the store as it ends.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from cluster.progress import ProgressReporter
from cluster.recorder import StoreRecorder
from cluster.resume import finished_trials
from cluster.rundir import STRATEGY_STATE_FILE, hold_run_dir, write_spec_copy
from cluster.runtime import check_reachable, ray_session
from cluster.storage import RemotePath, check_storage, tune_storage
from cluster.store import ResultsStore
from cluster.tracking import check_tracking, tracking_callbacks
from cluster.trainable import TrialData, TrialSettings, train_candidate
from cluster.workers import trial_concurrency, trial_resources, warn_if_unfit, worker_plan
from nas.strategies import build_scheduler, build_search, sampled_values
from search_spaces.builder import build_model
from search_spaces.domains import Domain, domain_values
from search_spaces.parameters import resolve
from trainers.datasets import Dataset, check_dataset, load_dataset, take_subset
from trainers.folds import dataset_folds
from trainers.inputs import model_arguments
from trainers.metrics import metric_names

if TYPE_CHECKING:
    from ray.tune import Callback

    from cluster.spec import Spec

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SearchSummary:
    """What a finished search tells its caller."""

    run_dir: Path | RemotePath
    trials: int
    stopped_early: int
    seconds: float
    # Trials an earlier run of a resumed search had finished; not counted in `trials`.
    resumed: int = 0


def load_search_data(spec: Spec) -> tuple[Dataset, Dataset]:
    """(all training data with its test split, the part the search trains on)."""
    data = spec.data
    dataset = load_dataset(
        data.dataset,
        seed=spec.seed,
        test_fraction=data.test_fraction,
        path=data.path,
        **data.source_options(),
    )
    check_dataset(dataset)
    search_data = (
        dataset if data.subset is None else take_subset(dataset, data.subset, seed=spec.seed)
    )
    return dataset, search_data


def check_models_build(spec: Spec, dataset: Dataset) -> None:
    """Build one candidate now, so a family that cannot take this data fails before Ray starts."""
    first = {p.name: _first_value(p.domain) for p in spec.parameters() if p.searched}
    candidate = resolve(spec.parameters(), first)
    build_model(
        candidate["model"],
        dropout=candidate["regularization"]["dropout"],
        n_outputs=dataset.n_outputs,
        **model_arguments(dataset),
    )


def run_search(
    spec: Spec,
    *,
    run_dir: Path | RemotePath,
    spec_text: str,
    stream: TextIO | None,
    resume: bool = False,
    callbacks: Sequence[Callback] = (),
) -> SearchSummary:
    """Run the whole search of `spec`, writing results into `run_dir`.

    With `resume`, go on with the search `run_dir` holds (see `cluster.resume`): the trials in
    its store are not run again. `callbacks` are extra Tune callbacks, run after the store's.
    """
    from ray import tune

    started = time.monotonic()
    _, search_data = load_search_data(spec)
    # Shuffled (stratified) k-fold, or time-ordered folds for a series.
    folds = dataset_folds(
        search_data,
        n_folds=spec.evaluation.folds,
        stratified=bool(spec.evaluation.stratified),
        seed=spec.seed,
    )
    check_models_build(spec, search_data)
    check_tracking(spec)
    if spec.cluster.address is not None:
        # Before anything is written, so that a mistyped address leaves no run directory.
        check_reachable(spec.cluster.address)
    if not resume:
        write_spec_copy(run_dir, spec_text)
    # Held until the search ends; a second driver on this run directory is refused.
    lock = hold_run_dir(run_dir)

    parameters = spec.parameters()
    metrics = metric_names(spec.task)
    store = ResultsStore(run_dir, parameters=parameters, metrics=metrics)
    finished = None
    if resume:
        # Rows of trials that were being written when the driver died; they run again.
        store.remove_uncommitted()
        finished = finished_trials(store, metric=spec.evaluation.metric)
    resources = spec.resources
    remote = isinstance(run_dir, RemotePath)

    with lock, ray_session(address=spec.cluster.address, dashboard=spec.cluster.dashboard):
        import ray

        # Every node writes trial state there; a folder only this machine sees fails now.
        check_storage(run_dir)
        cluster_resources = ray.cluster_resources()
        warn_if_unfit(resources, cluster_resources, autoscaling=spec.cluster.address is not None)
        concurrency = spec.search.concurrency or trial_concurrency(resources, cluster_resources)
        plan = build_search(
            [p for p in parameters if p.searched],
            strategy=spec.search.strategy,
            trials=spec.search.trials,
            metric=spec.objective,
            mode=spec.mode,
            seed=spec.seed,
            # HyperBand pauses trials at each rung until their bracket catches up; a strategy
            # that counted paused trials as in flight would wait for them as they wait for it.
            max_concurrent=0 if spec.search.scheduler == "hyperband" else concurrency,
            finished=finished,
            # FIXME: Ax saves its state to a local file only, so a Bayesian search in an s3://
            # or gs:// run directory cannot be resumed.
            state_path=None if remote else str(run_dir / STRATEGY_STATE_FILE),
            objectives=spec.objectives,
            bounds=spec.search.constraints.bounds(),
            evolution=spec.search.evolution_settings(),
        )
        scheduler = build_scheduler(
            spec.search.scheduler,
            metric=spec.objective,
            mode=spec.mode,
            max_epochs=spec.training.epochs,
            grace_period=spec.search.grace_period,
            reduction_factor=spec.search.reduction_factor,
        )

        recorder = StoreRecorder(
            store,
            parameters=parameters,
            sample_of=sampled_values,
            metrics=metrics,
            n_folds=len(folds),
            strategy=spec.search.strategy,
            scheduler=spec.search.scheduler,
            objective=spec.objective,
        )
        reporter = ProgressReporter(
            stream,
            objective=spec.objective,
            mode=spec.mode,
            # Counts this run's trials: a resumed search runs only those not done yet.
            total=plan.total_trials - len(finished or {}),
            concurrency=concurrency,
            epochs=spec.training.epochs,
        )
        reporter.say(
            f"search {spec.name}: {spec.search.strategy} + {spec.search.scheduler}, "
            f"{plan.total_trials} trials, {concurrency} at a time, {len(folds)} folds on "
            f"{len(search_data.y_train)} samples, objective "
            + ", ".join(f"{o.key} ({o.mode})" for o in spec.objectives)
        )
        if finished is not None:
            reporter.say(
                f"resuming {run_dir}: {len(finished)} trials done, "
                f"{max(plan.total_trials - len(finished), 0)} to run"
            )

        data = TrialData(search_data, tuple(folds))
        settings = TrialSettings(
            parameters=tuple(parameters),
            metric=spec.evaluation.metric,
            mode=spec.mode,
            epochs=spec.training.epochs,
            patience=spec.training.patience,
            search_seed=spec.seed,
            threads=max(1, int(resources.cpus_per_worker)),
            constraints=tuple(spec.search.constraints.bounds().items()),
            workers=worker_plan(resources, data=data, storage=tune_storage(run_dir)),
        )
        # Worker trials read the data from the plan's object; a second copy would idle.
        trial_data = data if settings.workers is None else None
        trainable = tune.with_resources(
            tune.with_parameters(train_candidate, data=trial_data, settings=settings),
            trial_resources(resources),
        )
        tuner = tune.Tuner(
            trainable,
            param_space=plan.param_space,
            # Metric, mode and concurrency live in the search algorithm and scheduler;
            # Tune refuses to be told them twice.
            tune_config=tune.TuneConfig(
                search_alg=plan.search_alg,
                scheduler=scheduler,
                num_samples=plan.num_samples,
                reuse_actors=True,
            ),
            run_config=tune.RunConfig(
                name="tune",
                **tune_storage(run_dir),
                verbose=0,
                callbacks=[recorder, reporter, *tracking_callbacks(spec), *callbacks],
                # Only a dead worker reaches Tune as a failure: the trainable turns its own
                # errors into a last report (cluster.trainable), since a retry would fail again.
                failure_config=tune.FailureConfig(max_failures=spec.search.max_retries),
                # A retry needs the last epoch's state only.
                checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            ),
        )
        if finished and len(finished) >= plan.total_trials:
            reporter.say(f"all {len(finished)} trials of {run_dir} are done; nothing to resume")
        else:
            tuner.fit()

    return SearchSummary(
        run_dir=run_dir,
        trials=len(recorder.written),
        stopped_early=reporter.stopped_early,
        seconds=time.monotonic() - started,
        resumed=len(finished or {}),
    )


def _first_value(domain: Domain) -> Any:
    values = domain_values(domain)
    return values[0] if values else domain.low  # a continuous range: its lower bound

"""Trials on Ray Train workers: one `TorchTrainer` per trial, its workers splitting the folds.

A spec with `resources.workers_per_trial > 1` or any `gpus_per_trial` runs each trial as a Ray
Train worker group started from inside the Tune trial. The layout:

- the trial's k folds are dealt round-robin over its workers (worker r trains folds r, r+W, ...),
  each fold trained whole, on one device, exactly as the in-process path trains it: same
  seeds, same batches, same batch-norm statistics and dropout masks. So the numbers are the
  in-process path's numbers, not merely close to them; sharding each fold's batches with DDP
  would change batch-norm statistics and dropout draws and need their sync to match.
- after every epoch the workers all-gather their folds' values over the process group Ray
  Train sets up, so every worker holds the same fold mean and makes the same early-stopping
  decision; all report it and rank 0's report goes on to Tune (`TuneReportCallback`).
- only these small dicts cross the process group, so it is gloo on CPU and on GPU alike:
  NCCL would buy nothing for them and would fail where a node's GPUs are not visible to torch.

What is started once per trial: one worker group, for all folds and epochs. The search's data
goes into Ray's object store once (`WorkerPlan.data`), and workers on one node map it from
shared memory instead of receiving a pickled copy each.

The Tune trial itself only waits for the trainer; it asks Tune for a placement group of one
small bundle, and Ray Train reserves the workers' CPUs and GPUs in a placement group of its
own (`ScalingConfig`, packed). Ray Train 2.60 always makes that group itself, so reserving
the workers' share in Tune's group as well would hold every CPU and GPU twice. The driver caps
concurrent trials so that every started trial's worker group fits the cluster
(`trial_concurrency`).
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cluster.runtime import ClusterError
from cluster.trainable import TRIAL_ERROR, TRIAL_STATUS, error_line

if TYPE_CHECKING:
    from ray import ObjectRef
    from ray.tune import PlacementGroupFactory

    from cluster.spec import ResourcesSection
    from cluster.trainable import TrialData, TrialSettings

logger = logging.getLogger(__name__)

# How often Ray Train's controller polls its workers (Ray's default is 2 s). Each trial ends
# only when a poll sees its workers finished, so a short interval takes about 3 s off every
# trial (tests/benchmarks/bench_multiworker_trial.py); the polls themselves are cheap RPCs.
POLL_ENV = "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"
POLL_SECONDS = "0.2"

# What a Tune trial that only waits for its worker group reserves: some memory and no CPU.
# Tune refuses an empty bundle, and any CPU share would be missing from the workers' own: with
# 0.01 CPU, two 1-CPU workers of a trial never fit a 2-CPU machine and the trial waits forever.
WAITING_TRIAL_BUNDLE = {"memory": 256 * 2**20}


@dataclass(frozen=True)
class WorkerPlan:
    """How each trial's worker group is made; shared by every trial of a search."""

    workers: int
    cpus_per_worker: float
    gpus_per_worker: float
    data: ObjectRef  # the search's TrialData, put in the object store once by the driver
    storage_path: str  # where Ray Train keeps its run state; shared by all nodes on a cluster
    storage_filesystem: Any = None  # a pyarrow filesystem for a run directory given as a URI


def worker_plan(
    resources: ResourcesSection, *, data: TrialData, storage: dict[str, Any]
) -> WorkerPlan | None:
    """The plan for a search whose trials need Ray Train workers, else None.

    Puts `data` into the object store; call it with Ray connected, and keep the plan for the
    length of the search, since it holds the only reference to that object. `storage` is the
    run directory's `cluster.storage.tune_storage`.
    """
    import ray

    if not resources.uses_train_workers:
        return None
    return WorkerPlan(
        workers=resources.workers_per_trial,
        cpus_per_worker=resources.cpus_per_worker,
        gpus_per_worker=resources.gpus_per_worker,
        data=ray.put(data),
        storage_path=f"{storage['storage_path'].rstrip('/')}/workers",
        storage_filesystem=storage.get("storage_filesystem"),
    )


def trial_resources(resources: ResourcesSection) -> PlacementGroupFactory:
    """The placement group Tune reserves for one trial."""
    from ray.tune import PlacementGroupFactory

    if not resources.uses_train_workers:
        return PlacementGroupFactory([{"CPU": resources.cpus_per_trial}])
    return PlacementGroupFactory([dict(WAITING_TRIAL_BUNDLE)])


def trial_concurrency(resources: ResourcesSection, cluster: dict[str, float]) -> int:
    """How many trials fit the cluster's CPUs and GPUs at once (at least one)."""
    fits = [cluster.get("CPU", 1.0) / resources.cpus_per_trial]
    if resources.gpus_per_trial > 0:
        fits.append(cluster.get("GPU", 0.0) / resources.gpus_per_trial)
    # A tiny epsilon keeps 4 * 0.25 GPUs from flooring to 3 through rounding.
    return max(1, math.floor(min(fits) + 1e-9))


def warn_if_unfit(
    resources: ResourcesSection, cluster: dict[str, float], *, autoscaling: bool
) -> None:
    """Say so when one trial needs more than the cluster has: it waits until nodes are added.

    Not an error on a cluster, since an autoscaling one starts its GPU nodes only when asked
    for them. The private local Ray (`autoscaling` False) never grows, so there it is one.

    Raises:
        ClusterError: on the local Ray, a trial needs more CPUs or GPUs than this machine has.
    """
    for name, wanted in (("CPU", resources.cpus_per_trial), ("GPU", resources.gpus_per_trial)):
        have = cluster.get(name, 0.0)
        if wanted <= have + 1e-9:
            continue
        field = f"resources.{name.lower()}s_per_trial"
        if not autoscaling:
            raise ClusterError(
                f"{field}: a trial needs {wanted:g} {name} but this machine's Ray has "
                f"{have:g}; lower it, or join a cluster that has them (cluster.address)"
            )
        logger.warning(
            "%s: a trial needs %g %s but the cluster has %g; trials wait until an autoscaler "
            "adds nodes, so lower it if the cluster has none",
            field,
            wanted,
            name,
            have,
        )


def run_on_workers(
    config: dict[str, Any], *, settings: TrialSettings, plan: WorkerPlan, trial_id: str
) -> None:
    """Run one trial as a `TorchTrainer`; its rank-0 reports reach Tune as the trial's reports.

    A worker failure (a raised error, a lost node) ends the trainer; it becomes the trial's
    last report with status `failed`, as a raised error does on the in-process path.
    """
    import ray.train
    from ray import tune
    from ray.train.torch import TorchConfig, TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    # Ray Train hands the trial process's setting on to the controller it starts; a value
    # the user set wins.
    os.environ.setdefault(POLL_ENV, POLL_SECONDS)
    trainer = TorchTrainer(
        _train_folds,
        train_loop_config={"config": config, "trial_id": trial_id, "settings": settings},
        torch_config=TorchConfig(backend="gloo"),
        scaling_config=ray.train.ScalingConfig(
            num_workers=plan.workers,
            use_gpu=plan.gpus_per_worker > 0,
            resources_per_worker=_worker_resources(plan),
            placement_strategy="PACK",
        ),
        run_config=ray.train.RunConfig(
            name=f"train-{trial_id}",
            storage_path=plan.storage_path,
            storage_filesystem=plan.storage_filesystem,
            callbacks=[TuneReportCallback()],
            # A retry is Tune's to decide (search.max_retries), for the whole trial.
            failure_config=ray.train.FailureConfig(max_failures=0),
        ),
    )
    try:
        trainer.fit()
    except ray.train.TrainingFailedError as error:
        cause = _first_worker_error(error)
        logger.warning("trial %s failed on its workers: %s", trial_id, error_line(cause))
        tune.report(
            {
                TRIAL_STATUS: "failed",
                TRIAL_ERROR: error_line(cause),
                f"{settings.metric}_mean": math.nan,
                "last_report": True,
            }
        )


def _worker_resources(plan: WorkerPlan) -> dict[str, float]:
    resources = {"CPU": plan.cpus_per_worker}
    if plan.gpus_per_worker > 0:
        resources["GPU"] = plan.gpus_per_worker
    return resources


def _first_worker_error(error: BaseException) -> BaseException:
    failures = getattr(error, "worker_failures", None) or {}
    if failures:
        return failures[min(failures)]
    return getattr(error, "controller_failure", None) or error


def _train_folds(loop_config: dict[str, Any]) -> None:
    """Each worker's loop: train its own folds, share their values every epoch, report."""
    import ray
    import ray.train
    import torch

    from cluster.trainable import score_candidate

    settings: TrialSettings = loop_config["settings"]
    assert settings.workers is not None  # only worker trials get here
    data: TrialData = ray.get(settings.workers.data)
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    torch.set_num_threads(settings.threads)

    # A GPU that Ray assigned but torch cannot see (a resource declared on a CPU machine)
    # leaves the worker on the CPU rather than failing it.
    device = ray.train.torch.get_device() if torch.cuda.is_available() else torch.device("cpu")
    n_folds = len(data.folds)

    def gather(mine: dict[int, dict[str, float]]) -> list[dict[str, float]]:
        parts: list[Any] = [None] * world
        torch.distributed.all_gather_object(parts, mine)
        merged = {fold: values for part in parts for fold, values in part.items()}
        return [merged[fold] for fold in range(n_folds)]

    score_candidate(
        loop_config["config"],
        data=data,
        settings=settings,
        trial_id=loop_config["trial_id"],
        node=ray.get_runtime_context().get_node_id(),
        report=lambda result, _folder: ray.train.report(result),
        own_folds=list(range(rank, n_folds, world)),
        gather=gather,
        device=device,
        raise_failures=True,
    )
    logger.debug("worker %d of %d (pid %d) done", rank, world, os.getpid())

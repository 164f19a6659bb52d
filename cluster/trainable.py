"""The function Ray Tune runs for each trial: score one sampled candidate by k-fold CV.

Everything a trial needs but does not sample (the data, the folds, the fixed settings) is handed
over once through `tune.with_parameters`, which puts it in Ray's object store a single time per
search instead of pickling it into every trial.

A trial ends in one of two ways, and Tune sees only the first as a failure:

- its worker process dies (killed, out of memory, node lost): Tune retries the trial up to
  `search.max_retries` times, and the retry goes on from the state saved after the last epoch
  (`CHECKPOINT_FILE`, loaded with `weights_only=True`), so it gives the same numbers;
- anything the trial itself raises (a diverged loss, a bug, a result without the objective) is
  caught here and becomes a last report holding `TRIAL_STATUS` (`diverged` or `failed`),
  `TRIAL_ERROR` (one line) and a NaN objective. Retrying would only fail again, so the search
  goes on, and searchers and schedulers see the NaN: Ax marks the trial failed.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from nas.numbering import trial_number
from nas.objectives import INFEASIBLE_KEY, violations
from nas.strategies import sampled_values
from search_spaces.builder import build_model
from search_spaces.errors import ArchsearchError
from search_spaces.parameters import Parameter, resolve
from trainers.inputs import model_arguments

if TYPE_CHECKING:
    import torch

    from cluster.workers import WorkerPlan
    from trainers.datasets import Dataset
    from trainers.loop import CVState, EpochReport, Gather

logger = logging.getLogger(__name__)

# Keys of the last report of a trial that raised; no epoch report holds them.
TRIAL_STATUS = "trial_status"
TRIAL_ERROR = "trial_error"

# The file in each trial checkpoint: the fold-models, optimizers and history after an epoch.
CHECKPOINT_FILE = "cv_state.pt"

# (result, folder holding the state to go on from or None) -> sends it to Tune.
Report = Callable[[dict[str, Any], "Path | None"], None]


class MissingObjective(ArchsearchError, KeyError):
    """A trial's report lacks the objective that strategies and schedulers rank by."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


@dataclass(frozen=True)
class TrialSettings:
    """What every trial of one search shares."""

    parameters: tuple[Parameter, ...]
    metric: str  # the objective's metric name, e.g. "accuracy"
    mode: str
    epochs: int
    patience: int | None
    search_seed: int
    threads: int  # per worker
    # (spec key, limit) of search.constraints, e.g. ("max_params", 200000).
    constraints: tuple[tuple[str, float], ...] = ()
    # Set when trials run on Ray Train workers (cluster.workers); None trains in the trial.
    workers: WorkerPlan | None = None


@dataclass(frozen=True)
class TrialData:
    """The search's training data and its folds, computed once by the driver."""

    dataset: Dataset
    folds: tuple[tuple[np.ndarray, np.ndarray], ...]


def trial_seed(search_seed: int, number: int) -> int:
    """A seed per trial derived from the search seed and trial number, stable across runs."""
    digest = hashlib.sha256(f"{search_seed}:{number}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def epoch_result(report: EpochReport) -> dict[str, Any]:
    """Flatten one epoch of k-fold results into the keys Tune, schedulers and the store read.

    `<m>_mean` and `<m>_std` are the fold mean and spread; `<m>_fold<i>` the per-fold values.
    """
    result: dict[str, Any] = {"epoch": report.epoch, "epoch_seconds": report.seconds}
    for key, value in report.mean.items():
        result[f"{key}_mean"] = value
        result[f"{key}_std"] = report.std[key]
    for fold, values in enumerate(report.folds):
        for key, value in values.items():
            result[f"{key}_fold{fold}"] = value
    result["best_epoch"] = report.best_epoch
    # False when this report is followed by more: if the trial ends anyway, a scheduler
    # stopped it.
    result["last_report"] = report.final
    return result


def train_candidate(
    config: dict[str, Any], *, data: TrialData | None, settings: TrialSettings
) -> None:
    """Tune function trainable: trains the k fold-models in lockstep, reporting every epoch.

    `data` may be None for trials on Ray Train workers, which read `settings.workers.data`.
    """
    import ray
    import torch
    from ray import tune

    from trainers.loop import load_cv_state

    if settings.workers is not None:
        from cluster.workers import run_on_workers

        trial_id = tune.get_context().get_trial_id()
        run_on_workers(config, settings=settings, plan=settings.workers, trial_id=trial_id)
        return

    assert data is not None  # only worker trials go without
    # PyTorch would otherwise start one thread per core and fight the other trials for them.
    torch.set_num_threads(settings.threads)

    # A retry after the worker died: go on from the last epoch's state.
    restored = None
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            restored = load_cv_state(Path(folder) / CHECKPOINT_FILE)

    def report(result: dict[str, Any], folder: Path | None) -> None:
        if folder is None:
            tune.report(result)
        else:
            tune.report(result, checkpoint=tune.Checkpoint.from_directory(str(folder)))

    score_candidate(
        config,
        data=data,
        settings=settings,
        trial_id=tune.get_context().get_trial_id(),
        node=ray.get_runtime_context().get_node_id(),
        report=report,
        restored=restored,
    )


def score_candidate(
    config: dict[str, Any],
    *,
    data: TrialData,
    settings: TrialSettings,
    trial_id: str,
    node: str,
    report: Report,
    restored: CVState | None = None,
    own_folds: list[int] | None = None,
    gather: Gather | None = None,
    device: str | torch.device = "cpu",
    raise_failures: bool = False,
) -> None:
    """Score one trial's config by k-fold CV, sending every epoch to `report`.

    Each epoch but the last goes out with a folder holding the state to go on from, deleted
    once `report` returns. Whatever the training raises becomes a last report with
    `TRIAL_STATUS` and `TRIAL_ERROR` instead of an exception (see the module docstring).

    A Ray Train worker passes the folds it trains and how to gather the others
    (`cross_validate`'s `own_folds` and `gather`), and `raise_failures`: an error of one
    worker then ends the worker group, since the others would wait for it forever. A diverged
    loss is seen by every worker at once, so it is still reported.
    """
    from trainers.loop import TrialDiverged, cross_validate, save_cv_state

    number = trial_number(config, trial_id)
    seed = trial_seed(settings.search_seed, number)
    objective = f"{settings.metric}_mean"
    constant: dict[str, Any] = {
        "trial_number": number,
        "trial_seed": seed,
        "node": node,
        # Lets a watcher tell which process runs the trial, e.g. to test that a killed
        # worker's trial is retried.
        "pid": os.getpid(),
    }
    saved: list[Path] = []

    # FIXME: worker trials save no per-epoch state, so a retry after a lost worker starts
    # from epoch 1; saving it needs Ray Train checkpoints restored through Tune's retry.
    def on_checkpoint(state: CVState) -> None:
        folder = Path(tempfile.mkdtemp(prefix="archsearch-state-"))
        save_cv_state(state, folder / CHECKPOINT_FILE)
        saved.append(folder)

    def on_epoch(epoch: EpochReport) -> None:
        result = {**epoch_result(epoch), **constant}
        if objective not in result:
            reported = sorted(key.removesuffix("_mean") for key in result if key.endswith("_mean"))
            raise MissingObjective(
                f"the trial reported no {objective}; it reported {', '.join(reported) or 'none'}"
            )
        folder = saved.pop() if saved else None
        try:
            report(result, folder)
        finally:
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)

    try:
        candidate = resolve(settings.parameters, sampled_values(config))
        dataset = data.dataset
        # Every report carries the costs, so strategies can optimise them as objectives.
        constant |= candidate_cost(candidate, dataset)
        exceeded = violations(constant, dict(settings.constraints))
        if exceeded:
            report(
                {
                    **constant,
                    TRIAL_STATUS: "infeasible",
                    TRIAL_ERROR: f"over search.constraints: {'; '.join(exceeded)}; not trained",
                    INFEASIBLE_KEY: True,
                    objective: math.nan,
                    "last_report": True,
                },
                None,
            )
            return
        cross_validate(
            candidate,
            dataset,
            folds=list(data.folds),
            epochs=settings.epochs,
            patience=settings.patience,
            objective=settings.metric,
            mode=settings.mode,
            seed=seed,
            on_epoch=on_epoch,
            on_checkpoint=on_checkpoint if own_folds is None else None,
            resume=restored,
            own_folds=own_folds,
            gather=gather,
            device=device,
        )
    except Exception as error:  # every error of the trial's own making ends it, not the search
        status = "diverged" if isinstance(error, TrialDiverged) else "failed"
        if raise_failures and status == "failed":
            raise
        if status == "failed":
            logger.warning("trial %s failed", trial_id, exc_info=True)
        report(
            {
                **constant,
                TRIAL_STATUS: status,
                TRIAL_ERROR: error_line(error),
                objective: math.nan,
                "last_report": True,
            },
            None,
        )
    finally:
        for folder in saved:
            shutil.rmtree(folder, ignore_errors=True)


def candidate_cost(candidate: dict[str, Any], dataset: Dataset) -> dict[str, Any]:
    """params_count, macs and latency_ms of one sample through the candidate's fresh model."""
    from trainers.cost import example_input, measure_cost

    arguments = model_arguments(dataset)
    model = build_model(
        candidate["model"],
        dropout=candidate["regularization"]["dropout"],
        n_outputs=dataset.n_outputs,
        **arguments,
    )
    sample = example_input(arguments["input_shape"], vocab_size=arguments.get("vocab_size"))
    return measure_cost(model, sample).as_dict()


def error_line(error: BaseException) -> str:
    """One line for the store: `TypeName: the message's last line`."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[-1] if lines else 'no message'}"

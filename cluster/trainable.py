"""The function Ray Tune runs for each trial: score one sampled candidate by k-fold CV.

Everything a trial needs but does not sample (the data, the folds, the fixed settings) is handed
over once through `tune.with_parameters`, which puts it in Ray's object store a single time per
search instead of pickling it into every trial.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from nas.numbering import trial_number
from nas.strategies import sampled_values
from search_spaces.builder import build_model, count_parameters
from search_spaces.parameters import Parameter, resolve

if TYPE_CHECKING:
    from trainers.datasets import Dataset
    from trainers.loop import EpochReport


@dataclass(frozen=True)
class TrialSettings:
    """What every trial of one search shares."""

    parameters: tuple[Parameter, ...]
    metric: str  # the objective's metric name, e.g. "accuracy"
    mode: str
    epochs: int
    patience: int | None
    search_seed: int
    threads: int


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


def train_candidate(config: dict[str, Any], *, data: TrialData, settings: TrialSettings) -> None:
    """Tune function trainable: trains the k fold-models in lockstep, reporting every epoch."""
    import ray
    import torch
    from ray import tune

    from trainers.loop import cross_validate

    # PyTorch would otherwise start one thread per core and fight the other trials for them.
    torch.set_num_threads(settings.threads)

    number = trial_number(config, tune.get_context().get_trial_id())
    seed = trial_seed(settings.search_seed, number)
    candidate = resolve(settings.parameters, sampled_values(config))
    dataset = data.dataset
    size = count_parameters(
        build_model(
            candidate["model"],
            dropout=candidate["regularization"]["dropout"],
            input_shape=dataset.input_shape,
            n_outputs=dataset.n_outputs,
        )
    )
    constant = {
        "trial_number": number,
        "trial_seed": seed,
        "params_count": size,
        "node": ray.get_runtime_context().get_node_id(),
    }

    def on_epoch(report: EpochReport) -> None:
        tune.report({**epoch_result(report), **constant})

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
    )

"""After the search: refit the winner on all training data, test it once, export TorchScript.

The refit trains for the epoch count at which the winner's cross-validated objective peaked
(or `training.refit_epochs`), on every training sample, including those a `data.subset` left
out of the search. The test split is touched here only, once.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import torch

from cluster.driver import load_search_data
from cluster.results import best_trial
from cluster.rundir import load_run_spec
from nas.objectives import COSTS
from search_spaces.errors import StoreError
from search_spaces.parameters import flat_values, resolve
from trainers.export import export_model
from trainers.inputs import prepare
from trainers.loop import predict, train_model
from trainers.metrics import compute_metrics

logger = logging.getLogger(__name__)

# Scripted and eager outputs are compared on this many test samples.
AGREEMENT_BATCH = 64


def export_best(run_dir: Path, *, model_path: Path, stream: TextIO | None) -> dict[str, Any]:
    """Refit, test and export the best trial of `run_dir`; returns the written model.json."""
    spec = load_run_spec(run_dir)
    return export_trial(run_dir, best_trial(run_dir, spec), model_path=model_path, stream=stream)


def export_trial(
    run_dir: Path, winner: dict[str, Any], *, model_path: Path, stream: TextIO | None
) -> dict[str, Any]:
    """Refit, test and export one trial (its trials row) of `run_dir`; returns model.json."""
    spec = load_run_spec(run_dir)
    if winner["status"] not in ("completed", "pruned") or winner.get("best_epoch") is None:
        raise StoreError(
            f"--pick: trial {winner['trial_number']} is {winner['status']} and has no scores "
            "to refit from; pick a completed trial (see archsearch results)"
        )
    parameters = spec.parameters()
    candidate = resolve(parameters, {p.name: winner[f"param.{p.name}"] for p in parameters})
    epochs = spec.training.refit_epochs or int(winner["best_epoch"])
    dataset, _ = load_search_data(spec)

    if stream is not None:
        stream.write(
            f"refitting {winner['trial_id']} on {len(dataset.y_train)} samples for {epochs} "
            f"epochs (cv {spec.objective} {winner[spec.objective]:.4f})\n"
        )
        stream.flush()

    # The refit fits its own input preparation on all training data: for text, the
    # vocabulary the exported model's token ids refer to.
    inputs = prepare(dataset)
    # A recurrent step is a few tiny matrix products: split over threads, it mostly waits for
    # them, and beside other busy processes a 2-thread LSTM refit ran 16 times slower than 1.
    threads = 1 if candidate["model"]["family"] == "rnn" else torch.get_num_threads()
    with _torch_threads(threads):
        model = train_model(
            candidate,
            dataset.x_train,
            dataset.y_train,
            task=dataset.task,
            n_outputs=dataset.n_outputs,
            epochs=epochs,
            seed=int(winner["seed"]),
            inputs=inputs,
        )

    x_test = inputs.encode(dataset.x_test)
    outputs = predict(model, x_test, task=dataset.task)
    test_metrics = compute_metrics(
        dataset.task, dataset.y_test, outputs, n_classes=dataset.n_classes
    )
    example = torch.as_tensor(np.asarray(x_test[:AGREEMENT_BATCH]))
    if example.is_floating_point():
        example = example.float()
    described_inputs = inputs.describe()
    if dataset.series is not None:
        described_inputs |= dataset.series.describe()
    metric = spec.evaluation.metric
    metadata = {
        "name": spec.name,
        "task": dataset.task,
        "dataset": dataset.name,
        "trial_id": winner["trial_id"],
        "trial_number": winner["trial_number"],
        # The candidate's costs as the search measured them (one sample, one CPU thread).
        "cost": {name: winner.get(name) for name in COSTS},
        "config": flat_values(candidate),
        "refit_epochs": epochs,
        "refit_samples": int(len(dataset.y_train)),
        "cv": {
            "metric": metric,
            "mean": winner[f"{metric}_mean"],
            "std": winner[f"{metric}_std"],
            "folds": spec.evaluation.folds,
        },
        "test_metrics": test_metrics,
        "test_samples": int(len(dataset.y_test)),
        "class_names": list(dataset.class_names) if dataset.class_names else None,
        "seed": int(winner["seed"]),
        "inputs": described_inputs,
    }
    return export_model(model, path=model_path, example_input=example, metadata=metadata)


@contextlib.contextmanager
def _torch_threads(threads: int) -> Iterator[None]:
    """Run the body with torch using `threads` intra-op threads, then restore the count."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)

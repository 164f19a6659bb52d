"""Early stopping: epochs spent and best accuracy with each scheduler against none.

One random search over small MLPs on a Fashion-MNIST subset runs once per scheduler name in
`nas.schedulers.SCHEDULERS` (so schedulers registered there later join), with the same seed,
so every run draws the same configs; only the scheduler differs. Epochs spent (each trains
every fold once) and the best fold-mean accuracy come from the results store's trials table.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

from tests.benchmarks.common import Section, markdown_table, ratio
from tests.benchmarks.specs import run_spec


@dataclass(frozen=True)
class Settings:
    subset: int = 1000
    trials: int = 8
    epochs: int = 6
    folds: int = 2


def spec(settings: Settings, *, scheduler: str) -> dict[str, Any]:
    return {
        "name": f"bench-stop-{scheduler}",
        "seed": 0,
        "data": {"dataset": "fashion_mnist", "subset": settings.subset},
        "model": {
            "family": "mlp",
            "depth": {"int": [1, 2]},
            "width": {"choice": [32, 64, 128]},
        },
        "optimizer": {"name": "adam", "lr": {"log": [1.0e-4, 1.0e-1]}, "batch_size": 64},
        "training": {"epochs": settings.epochs},
        "evaluation": {"folds": settings.folds, "metric": "accuracy"},
        "search": {
            "strategy": "random",
            "trials": settings.trials,
            # Each scheduler's own defaults: grace period 1 (not hyperband's), reduction
            # factor 3 (not median's); a spec may not set what its scheduler ignores.
            "scheduler": scheduler,
        },
        "resources": {"cpus_per_trial": 1},
    }


def run(settings: Settings) -> Section:
    from cluster.store import read_table
    from nas.schedulers import SCHEDULERS

    started = time.perf_counter()
    results: dict[str, dict[str, float]] = {}
    for scheduler in SCHEDULERS:
        run_dir, seconds = run_spec(spec(settings, scheduler=scheduler))
        trials = read_table(run_dir, "trials")
        epochs = sum(n or 0 for n in trials.column("epochs_run").to_pylist())
        accuracies = [
            value
            for value in trials.column("accuracy_mean").to_pylist()
            if value is not None and math.isfinite(value)
        ]
        results[scheduler] = {
            "epochs": epochs,
            "best": max(accuracies, default=math.nan),
            "seconds": seconds,
        }

    base = results["none"]
    rows = [
        [
            name,
            str(int(r["epochs"])),
            ratio(r["epochs"], base["epochs"]),
            f"{r['best']:.4f}",
            f"{r['best'] - base['best']:+.4f}",
            f"{r['seconds']:.0f}",
            ratio(r["seconds"], base["seconds"]),
        ]
        for name, r in results.items()
    ]
    body = "\n".join(
        [
            f"Random search, {settings.trials} trials of up to {settings.epochs} epochs, MLPs on "
            f"{settings.subset} Fashion-MNIST images, {settings.folds}-fold CV, same seed for "
            "every scheduler (grace period 1, reduction factor 3).",
            "",
            markdown_table(
                [
                    "scheduler",
                    "epochs spent",
                    "epochs vs none",
                    "best fold-mean accuracy",
                    "accuracy vs none",
                    "wall (s)",
                    "wall vs none",
                ],
                rows,
            ),
        ]
    )
    return Section("Early stopping", body, seconds=time.perf_counter() - started, data=results)

"""Specs and stores that several test modules build the same way."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from cluster.spec import Spec, parse_spec
from cluster.store import ResultsStore
from search_spaces.parameters import Parameter
from trainers.metrics import metric_names


def digits_search_spec(name: str = "digits-test", **sections: dict[str, Any]) -> dict[str, Any]:
    """A real search small enough for a test: MLPs on 600 digits, 2 folds, 3 epochs, 3 trials.

    Each keyword replaces keys of that section, e.g. `search={"trials": 5}`.
    """
    spec: dict[str, Any] = {
        "name": name,
        "seed": 3,
        "data": {"dataset": "digits", "subset": 600},
        "model": {
            "family": "mlp",
            "depth": {"int": [1, 2]},
            "width": {"choice": [16, 32]},
            "activation": {"choice": ["relu", "tanh"]},
        },
        "optimizer": {"name": "adam", "lr": {"log": [3e-3, 3e-2]}, "batch_size": 64},
        "training": {"epochs": 3},
        "evaluation": {"folds": 2, "metric": "accuracy"},
        "search": {"strategy": "random", "trials": 3},
    }
    for section, values in sections.items():
        spec[section] = {**spec.get(section, {}), **values}
    return spec


def empty_classification_store(
    folder: Path, raw_spec: dict[str, Any]
) -> tuple[Spec, list[Parameter], list[str], ResultsStore]:
    """A run directory holding `raw_spec` as spec.yaml and an empty store for its parameters.

    For tests that write hand-made trial rows and then read them back through the CLI.
    """
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "spec.yaml").write_text(yaml.safe_dump(raw_spec), encoding="utf-8")
    spec = parse_spec(raw_spec)
    parameters = spec.parameters()
    metrics = metric_names("classification")
    return spec, parameters, metrics, ResultsStore(folder, parameters=parameters, metrics=metrics)

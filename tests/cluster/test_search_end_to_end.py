"""Real small searches on real data, through the CLI, on a real local Ray.

Each test runs `archsearch run` on scikit-learn's digits (or diabetes) with a few tiny trials,
then checks what a user would look at: the Parquet store, `archsearch results`, and the
exported TorchScript model scored again here on the test split.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import yaml

from cluster.cli import main
from tests.factories import digits_search_spec
from trainers.datasets import load_dataset
from trainers.metrics import compute_metrics

pytestmark = pytest.mark.slow


def run_cli(tmp_path, spec: dict, *extra: str) -> tuple[int, object]:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    run_dir = tmp_path / "run"
    code = main(["run", str(path), "--output", str(run_dir), *extra])
    return code, run_dir


def test_random_search_with_asha_fills_store_and_exports(tmp_path, local_ray, capsys):
    spec = digits_search_spec(search={"strategy": "random", "trials": 4, "scheduler": "asha"})
    code, run_dir = run_cli(tmp_path, spec)
    out = capsys.readouterr().out
    assert code == 0, out

    trials = pq.read_table(run_dir / "trials").to_pylist()
    assert len(trials) == 4
    assert {t["status"] for t in trials} <= {"completed", "pruned"}
    assert all(t["strategy"] == "random" and t["scheduler"] == "asha" for t in trials)
    assert all(1 <= t["param.model.depth"] <= 2 for t in trials)
    assert all(3e-3 <= t["param.optimizer.lr"] <= 3e-2 for t in trials)
    assert all(0.0 <= t["accuracy_mean"] <= 1.0 and t["accuracy_std"] >= 0 for t in trials)
    assert len({t["seed"] for t in trials}) == 4

    # Per-fold values at the best epoch average to the trial's fold mean.
    folds = pq.read_table(run_dir / "folds").to_pylist()
    epochs = pq.read_table(run_dir / "epochs").to_pylist()
    for trial in trials:
        mine = [f["accuracy"] for f in folds if f["trial_id"] == trial["trial_id"]]
        assert len(mine) == 2
        assert math.isclose(np.mean(mine), trial["accuracy_mean"], rel_tol=1e-9)
        assert len([e for e in epochs if e["trial_id"] == trial["trial_id"]]) == (
            2 * trial["epochs_run"]
        )

    assert "search finished: 4 trials" in out
    assert "test split: accuracy" in out


def test_exported_model_reproduces_its_test_metrics(tmp_path, local_ray):
    code, run_dir = run_cli(tmp_path, digits_search_spec())
    assert code == 0

    description = json.loads((run_dir / "model.json").read_text())
    model = torch.jit.load(str(run_dir / "model.pt"))
    dataset = load_dataset("digits", seed=3)
    with torch.no_grad():
        logits = model(torch.as_tensor(dataset.x_test)).numpy()
    again = compute_metrics("classification", dataset.y_test, logits, n_classes=10)

    assert math.isclose(again["accuracy"], description["test_metrics"]["accuracy"], rel_tol=1e-6)
    assert description["test_samples"] == len(dataset.y_test)
    assert description["refit_samples"] == len(dataset.y_train)  # all of it, not the subset
    assert description["class_names"] == list(dataset.class_names)
    assert again["accuracy"] > 0.5


def test_grid_runs_every_point_once(tmp_path, local_ray):
    spec = digits_search_spec(
        model={
            "depth": 1,
            "width": {"choice": [8, 16]},
            "activation": {"choice": ["relu", "tanh"]},
        },
        optimizer={"lr": 0.01},
        search={"strategy": "grid", "trials": None},
    )
    spec["search"].pop("trials")
    code, run_dir = run_cli(tmp_path, spec, "--no-export")
    assert code == 0

    trials = pq.read_table(run_dir / "trials").to_pylist()
    points = {(t["param.model.width"], t["param.model.activation"]) for t in trials}
    assert points == {(8, "relu"), (8, "tanh"), (16, "relu"), (16, "tanh")}
    assert len(trials) == 4


def test_bayesian_search_keeps_ints_and_log_scale(tmp_path, local_ray):
    spec = digits_search_spec(search={"strategy": "bayesian", "trials": 4})
    code, run_dir = run_cli(tmp_path, spec, "--no-export")
    assert code == 0

    table = pq.read_table(run_dir / "trials")
    assert table.schema.field("param.model.depth").type == pa.int64()
    assert table.schema.field("param.optimizer.lr").type == pa.float64()
    rows = table.to_pylist()
    assert len(rows) == 4
    assert all(r["strategy"] == "bayesian" for r in rows)
    assert all(math.isfinite(r["accuracy_mean"]) for r in rows)


def test_diverging_trial_is_recorded_and_search_goes_on(tmp_path, local_ray):
    # Plain SGD at lr 10 on a squared loss blows up within an epoch; lr 0.01 trains fine.
    spec = {
        "name": "diverge-test",
        "data": {"dataset": "diabetes"},
        "model": {"family": "mlp", "depth": 2, "width": 32, "activation": "relu"},
        "optimizer": {"name": "sgd", "lr": {"choice": [10.0, 0.01]}, "momentum": 0.9},
        "training": {"epochs": 3},
        "evaluation": {"folds": 2, "metric": "mse"},
        "search": {"strategy": "grid"},
    }
    code, run_dir = run_cli(tmp_path, spec, "--no-export")
    assert code == 0

    rows = {r["param.optimizer.lr"]: r for r in pq.read_table(run_dir / "trials").to_pylist()}
    assert rows[10.0]["status"] == "diverged"
    assert "training loss became" in rows[10.0]["error"]
    assert math.isnan(rows[10.0]["mse_mean"])
    assert rows[0.01]["status"] == "completed"
    assert math.isfinite(rows[0.01]["mse_mean"])


def test_regression_search_reports_regression_metrics(tmp_path, local_ray, capsys):
    spec = {
        "name": "diabetes-test",
        "data": {"dataset": "diabetes"},
        "model": {"family": "mlp", "depth": 1, "width": {"choice": [8, 16]}, "activation": "relu"},
        "optimizer": {"name": "adam", "lr": 0.01, "batch_size": 32},
        "training": {"epochs": 3},
        "evaluation": {"folds": 2, "metric": "mae"},
        "search": {"strategy": "random", "trials": 2},
    }
    code, run_dir = run_cli(tmp_path, spec)
    assert code == 0
    rows = pq.read_table(run_dir / "trials").to_pylist()
    assert len(rows) == 2 and all(r["mae_mean"] > 0 for r in rows)
    for fold in pq.read_table(run_dir / "folds").to_pylist():
        assert math.isclose(fold["rmse"] ** 2, fold["mse"], rel_tol=1e-9)
        assert fold["mae"] <= fold["rmse"]
    description = json.loads((run_dir / "model.json").read_text())
    assert set(description["test_metrics"]) >= {"mse", "rmse", "mae", "median_ae", "r2"}
    assert "mae (mean +- std)" in capsys.readouterr().out


def test_results_command_ranks_by_objective(tmp_path, local_ray, capsys):
    code, run_dir = run_cli(tmp_path, digits_search_spec(), "--no-export")
    assert code == 0
    capsys.readouterr()

    assert main(["results", str(run_dir), "--top", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    ranked = sorted(
        pq.read_table(run_dir / "trials").to_pylist(), key=lambda r: -r["accuracy_mean"]
    )
    assert lines[2].split()[1] == ranked[0]["trial_id"]
    assert lines[3].split()[1] == ranked[1]["trial_id"]
    assert len(lines) == 4

"""Real small searches with the rnn family, through the CLI, on a real local Ray.

One search on text (Rotten Tomatoes, a 600-sentence subset, tiny GRUs) and one on a series
(Mauna Loa CO2, short windows): each exports its winner, which is loaded with
`torch.jit.load` and scored again here on the test split. The README's lines that score raw
sentences are run as they are written against the exported text model.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import re
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
import yaml

from cluster.cli import main
from trainers.datasets import load_dataset
from trainers.metrics import compute_metrics
from trainers.text import Vocabulary

pytestmark = pytest.mark.slow

README = Path(__file__).parents[2] / "README.md"


def run_cli(tmp_path: Path, spec: dict) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    run_dir = tmp_path / "run"
    assert main(["run", str(path), "--output", str(run_dir), "--quiet"]) == 0
    return run_dir


def readme_snippet() -> str:
    """The first python block under the README's "Scoring raw text" heading."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("### Scoring raw text") :]
    return re.search(r"```python\n(.*?)```", section, flags=re.DOTALL).group(1)


@pytest.fixture(scope="module")
def text_run(tmp_path_factory, local_ray) -> Path:
    spec = {
        "name": "rt-test",
        "seed": 1,
        "data": {"dataset": "rotten_tomatoes", "subset": 600, "max_length": 24},
        "model": {
            "family": "rnn",
            "cell": {"choice": ["gru", "lstm"]},
            "bidirectional": {"choice": [True, False]},
            "depth": 1,
            "width": 8,
            "embedding_dim": 8,
            "summary": "mean",
        },
        "optimizer": {"name": "adam", "lr": 0.01, "batch_size": 64},
        "training": {"epochs": 2, "refit_epochs": 1},
        "evaluation": {"folds": 2, "metric": "accuracy"},
        "search": {"strategy": "random", "trials": 2},
    }
    return run_cli(tmp_path_factory.mktemp("text"), spec)


def test_text_search_fills_the_store_and_exports_a_token_id_model(text_run: Path) -> None:
    trials = pq.read_table(text_run / "trials").to_pylist()
    assert len(trials) == 2
    assert all(t["status"] == "completed" for t in trials)
    assert {t["param.model.cell"] for t in trials} <= {"gru", "lstm"}
    assert all(0.0 <= t["accuracy_mean"] <= 1.0 for t in trials)

    description = json.loads((text_run / "model.json").read_text())
    inputs = description["inputs"]
    assert description["input_shape"] == [24]
    assert inputs["kind"] == "text" and inputs["dtype"] == "int64"
    assert inputs["vocabulary"][:2] == ["<pad>", "<unk>"]
    assert description["class_names"] == ["rotten", "fresh"]

    # The exported model, fed the stored vocabulary's ids, gives the recorded test metrics.
    dataset = load_dataset("rotten_tomatoes", seed=1, max_length=24)
    vocabulary = Vocabulary.from_description(inputs)
    model = torch.jit.load(str(text_run / "model.pt"))
    with torch.no_grad():
        logits = model(torch.from_numpy(vocabulary.encode(dataset.x_test))).numpy()
    again = compute_metrics("classification", dataset.y_test, logits, n_classes=2)
    assert math.isclose(again["accuracy"], description["test_metrics"]["accuracy"], rel_tol=1e-6)
    assert description["refit_samples"] == len(dataset.y_train)  # vocabulary of all of them
    # The refit's vocabulary is built on all training rows, far more than the 600 searched.
    assert len(inputs["vocabulary"]) > 2_000


def test_readme_lines_score_raw_sentences(text_run: Path) -> None:
    code = readme_snippet().replace("runs/rotten-tomatoes-gru-20261203-140000", str(text_run))
    namespace: dict = {}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, "README.md", "exec"), namespace)

    lines = printed.getvalue().splitlines()
    assert len(lines) == 2
    assert all(line.split(" ", 1)[0] in ("rotten", "fresh") for line in lines)
    assert lines[0].endswith("A gorgeous, witty, seductive movie.")

    # The README's encode gives exactly the ids the library's vocabulary gives.
    vocabulary = Vocabulary.from_description(namespace["meta"]["inputs"])
    dataset = load_dataset("rotten_tomatoes", seed=1)
    for sentence in [*dataset.x_test[:200], "", "Zzyzx!!"]:
        assert namespace["encode"](sentence) == vocabulary.ids(sentence)


def test_series_search_forecasts_with_time_ordered_folds(tmp_path, local_ray) -> None:
    spec = {
        "name": "co2-test",
        "data": {"dataset": "co2", "window": 12, "horizon": 2},
        "model": {
            "family": "rnn",
            "cell": {"choice": ["rnn", "gru"]},
            "depth": 1,
            "width": 8,
            "summary": "last",
        },
        "optimizer": {"name": "adam", "lr": 0.01, "batch_size": 64},
        "training": {"epochs": 2},
        "evaluation": {"folds": 3, "metric": "mae"},
        "search": {"strategy": "random", "trials": 2},
    }
    run_dir = run_cli(tmp_path, spec)

    trials = pq.read_table(run_dir / "trials").to_pylist()
    assert len(trials) == 2 and all(t["mae_mean"] > 0 for t in trials)
    assert "param.model.embedding_dim" not in pq.read_table(run_dir / "trials").column_names
    folds = pq.read_table(run_dir / "folds").to_pylist()
    assert sorted({f["fold"] for f in folds}) == [0, 1, 2]
    for fold in folds:
        assert math.isclose(fold["rmse"] ** 2, fold["mse"], rel_tol=1e-9)
        assert fold["median_ae"] >= 0

    description = json.loads((run_dir / "model.json").read_text())
    assert description["input_shape"] == [12, 1]
    assert (
        description["inputs"] | {"kind": "series", "window": 12, "horizon": 2}
        == (description["inputs"])
    )
    assert description["inputs"]["features"] == ["co2"]

    dataset = load_dataset("co2", seed=0, window=12, horizon=2)
    model = torch.jit.load(str(run_dir / "model.pt"))
    with torch.no_grad():
        predictions = model(torch.from_numpy(dataset.x_test)).numpy()[:, 0]
    again = compute_metrics("regression", dataset.y_test, predictions, n_classes=0)
    assert set(description["test_metrics"]) >= {"mse", "rmse", "mae", "median_ae"}
    assert math.isclose(again["mae"], description["test_metrics"]["mae"], rel_tol=1e-5)
    # Two weeks ahead, forecasting the change: within a few ppm of the truth.
    assert again["mae"] < 3.0
    assert np.isfinite(predictions).all()

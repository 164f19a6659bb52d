"""TensorBoard event files by default, and MLflow runs when the spec asks for them.

The slow test runs a real small search with an MLflow store in a local SQLite file (MLflow 3
refuses its old plain-folder store unless told otherwise), then reads back both what TensorBoard
would show and what MLflow recorded.
"""

from __future__ import annotations

import importlib.util
import struct
from pathlib import Path

import pytest
import yaml

from cluster.cli import main
from cluster.spec import parse_spec
from cluster.tracking import check_tracking, tracking_callbacks
from search_spaces.errors import SpecError

BASE = {
    "name": "tracking-test",
    "data": {"dataset": "digits", "subset": 300},
    "model": {"family": "mlp", "depth": 1, "width": {"choice": [8, 16]}},
    "optimizer": {"name": "adam", "lr": 0.01},
    "training": {"epochs": 2},
    "evaluation": {"folds": 2, "metric": "accuracy"},
    "search": {"strategy": "grid"},
}


def spec_with(tracking: dict | None):
    raw = dict(BASE) if tracking is None else {**BASE, "tracking": tracking}
    return parse_spec(raw)


def test_tensorboard_is_on_by_default_and_mlflow_off():
    from ray.tune.logger import TBXLoggerCallback

    callbacks = tracking_callbacks(spec_with(None))
    assert [type(c) for c in callbacks] == [TBXLoggerCallback]
    assert tracking_callbacks(spec_with({"tensorboard": False})) == []


def test_mlflow_callback_takes_the_spec_settings():
    pytest.importorskip("mlflow")
    from ray.air.integrations.mlflow import MLflowLoggerCallback

    spec = spec_with({"tensorboard": False, "mlflow": {"tracking_uri": "sqlite:///x.db"}})
    (callback,) = tracking_callbacks(spec)
    assert isinstance(callback, MLflowLoggerCallback)
    assert callback.tracking_uri == "sqlite:///x.db"
    assert callback.experiment_name == "tracking-test"  # the spec's name by default
    named = spec_with({"mlflow": {"experiment": "mine"}})
    assert tracking_callbacks(named)[1].experiment_name == "mine"


def test_missing_mlflow_is_a_spec_error(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a)
    )
    spec = spec_with({"mlflow": {"tracking_uri": "sqlite:///x.db"}})
    with pytest.raises(SpecError, match=r"^tracking\.mlflow: needs the mlflow package"):
        check_tracking(spec)
    check_tracking(spec_with(None))  # nothing to check without mlflow


def scalar_tags(event_file: Path) -> dict[str, list[float]]:
    """Scalar values by tag in a TensorBoard event file (TFRecord framing, Event protos)."""
    from tensorboardX.proto import event_pb2

    found: dict[str, list[float]] = {}
    data = event_file.read_bytes()
    position = 0
    while position < len(data):
        (length,) = struct.unpack("<Q", data[position : position + 8])
        record = data[position + 12 : position + 12 + length]  # after the length and its CRC
        position += 12 + length + 4  # and the record's CRC
        event = event_pb2.Event.FromString(record)
        for value in event.summary.value:
            found.setdefault(value.tag, []).append(value.simple_value)
    return found


@pytest.mark.slow
def test_search_writes_tensorboard_and_mlflow(tmp_path, local_ray):
    pytest.importorskip("mlflow")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    spec = {**BASE, "tracking": {"mlflow": {"tracking_uri": uri, "experiment": "digits-mlflow"}}}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    run_dir = tmp_path / "run"
    assert main(["run", str(path), "--output", str(run_dir), "--no-export", "--quiet"]) == 0

    # TensorBoard: one event file per trial, under the run directory, with each epoch's value.
    event_files = sorted(run_dir.glob("tune/*/events.out.tfevents.*"))
    assert len(event_files) == 2
    for event_file in event_files:
        tags = scalar_tags(event_file)
        assert len(tags["ray/tune/accuracy_mean"]) == 2  # two epochs
        assert all(0.0 <= v <= 1.0 for v in tags["ray/tune/accuracy_mean"])
        assert "ray/tune/accuracy_fold1" in tags

    # MLflow: one finished run per trial with the config and the per-epoch metrics.
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("digits-mlflow")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 2
    assert {run.info.status for run in runs} == {"FINISHED"}
    # Tune's config of a grid search holds its point under one key, which MLflow flattens.
    assert {run.data.params["grid_point/model.width"] for run in runs} == {"8", "16"}
    for run in runs:
        history = client.get_metric_history(run.info.run_id, "accuracy_mean")
        assert [m.step for m in history] == [1, 2]
        assert run.data.tags["archsearch.search"] == "tracking-test"

"""The store recorder driven by hand, as Tune drives it: retries, terminal reports, odd trials.

Trials are stand-ins with the attributes the recorder reads (`trial_id`, `config`, `path`, the
error files); results are built by the trainable's own `epoch_result`.
"""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from cluster.recorder import StoreRecorder, trial_outcome
from cluster.store import ResultsStore
from cluster.trainable import TRIAL_ERROR, TRIAL_STATUS, epoch_result
from nas.strategies import sampled_values
from search_spaces.domains import Fixed, IntRange
from search_spaces.parameters import flatten
from trainers.loop import EpochReport, TrialDiverged

PARAMETERS = flatten({"model": {"family": Fixed("mlp"), "depth": IntRange(1, 3)}})
METRICS = ("accuracy", "loss")


def _recorder(tmp_path: Path) -> tuple[StoreRecorder, ResultsStore]:
    store = ResultsStore(tmp_path / "run", parameters=PARAMETERS, metrics=METRICS)
    recorder = StoreRecorder(
        store,
        parameters=PARAMETERS,
        sample_of=sampled_values,
        metrics=METRICS,
        n_folds=2,
        strategy="random",
        scheduler="none",
        objective="accuracy_mean",
    )
    return recorder, store


def _trial(trial_id: str = "abcde_00003", path: Path | None = None, error: str | None = None):
    error_file = None
    if error is not None:
        assert path is not None
        error_file = path / "error.txt"
        error_file.write_text(error)
    return SimpleNamespace(
        trial_id=trial_id,
        config={"model.depth": 2},
        path=None if path is None else str(path),
        pickled_error_file=None,
        error_file=None if error_file is None else str(error_file),
    )


def _result(epoch: int, accuracy: tuple[float, float], *, best: int, final: bool = False) -> dict:
    folds = [{"accuracy": a, "loss": 1 - a, "train_loss": 0.5} for a in accuracy]
    mean = {k: sum(f[k] for f in folds) / 2 for k in folds[0]}
    report = EpochReport(
        epoch=epoch,
        folds=folds,
        mean=mean,
        std={k: 0.0 for k in mean},
        seconds=0.1,
        best_epoch=best,
        final=final,
    )
    constant = {"trial_number": 3, "trial_seed": 99, "node": "n1", "params_count": 10, "pid": 1}
    return {**epoch_result(report), **constant}


def _feed(recorder: StoreRecorder, trial: Any, *events: Any) -> None:
    """Events: "start", a result dict, "complete", or an exception for on_trial_error."""
    for event in events:
        if event == "start":
            recorder.on_trial_start(0, [], trial)
        elif event == "complete":
            recorder.on_trial_complete(0, [], trial)
        elif event == "error":
            recorder.on_trial_error(0, [], trial)
        else:
            recorder.on_trial_result(0, [], trial, event)


def test_retry_after_a_dead_worker_keeps_the_epochs_before_it(tmp_path: Path) -> None:
    recorder, store = _recorder(tmp_path)
    trial = _trial()
    _feed(
        recorder,
        trial,
        "start",
        _result(1, (0.5, 0.6), best=1),
        _result(2, (0.7, 0.8), best=2),
        "start",  # the retry starts from the checkpoint of epoch 2
        _result(3, (0.6, 0.6), best=2, final=True),
        "complete",
    )

    (row,) = store.read("trials").to_pylist()
    assert row["status"] == "completed" and row["error"] is None
    assert row["epochs_run"] == 3 and row["best_epoch"] == 2
    assert row["accuracy_mean"] == pytest.approx(0.75)
    assert row["trial_number"] == 3 and row["seed"] == 99
    epochs = store.read("epochs").to_pylist()
    assert sorted((e["epoch"], e["fold"]) for e in epochs) == [
        (1, 0),
        (1, 1),
        (2, 0),
        (2, 1),
        (3, 0),
        (3, 1),
    ]


def test_an_epoch_reported_twice_counts_once_the_later_winning(tmp_path: Path) -> None:
    recorder, store = _recorder(tmp_path)
    _feed(
        recorder,
        _trial(),
        "start",
        _result(1, (0.5, 0.5), best=1),
        _result(2, (0.1, 0.1), best=1),
        "start",
        _result(2, (0.9, 0.7), best=2, final=True),
        "complete",
    )
    epochs = store.read("epochs").to_pylist()
    assert len(epochs) == 4
    assert {e["accuracy"] for e in epochs if e["epoch"] == 2} == {0.9, 0.7}
    assert store.read("trials").to_pylist()[0]["accuracy_mean"] == pytest.approx(0.8)


def test_diverged_trial_keeps_its_good_epochs_and_the_error(tmp_path: Path) -> None:
    recorder, store = _recorder(tmp_path)
    terminal = {
        "trial_number": 3,
        "trial_seed": 99,
        "node": "n1",
        TRIAL_STATUS: "diverged",
        TRIAL_ERROR: "TrialDiverged: fold 1: training loss became nan at epoch 2",
        "accuracy_mean": math.nan,
        "last_report": True,
    }
    _feed(recorder, _trial(), "start", _result(1, (0.5, 0.7), best=1), terminal, "complete")

    (row,) = store.read("trials").to_pylist()
    assert row["status"] == "diverged"
    assert row["error"] == "TrialDiverged: fold 1: training loss became nan at epoch 2"
    assert row["epochs_run"] == 1 and row["accuracy_mean"] == pytest.approx(0.6)
    assert len(store.read("epochs")) == 2  # the terminal report is not an epoch


def test_failed_trial_without_epochs_has_its_number_and_nan_metrics(tmp_path: Path) -> None:
    recorder, store = _recorder(tmp_path)
    terminal = {
        "trial_number": 3,
        "trial_seed": 99,
        "node": "n1",
        TRIAL_STATUS: "failed",
        TRIAL_ERROR: "RuntimeError: boom",
        "accuracy_mean": math.nan,
        "last_report": True,
    }
    _feed(recorder, _trial(), "start", terminal, "complete")

    (row,) = store.read("trials").to_pylist()
    assert (row["status"], row["error"], row["trial_number"]) == (
        "failed",
        "RuntimeError: boom",
        3,
    )
    assert row["epochs_run"] == 0 and row["best_epoch"] is None
    assert math.isnan(row["accuracy_mean"]) and math.isnan(row["loss_std"])
    assert len(store.read("folds")) == 0 and len(store.read("epochs")) == 0


def test_worker_that_died_too_often_is_failed_with_the_last_line(tmp_path: Path) -> None:
    recorder, store = _recorder(tmp_path)
    trial = _trial(path=tmp_path, error="Traceback ...\nray.exceptions.ActorDiedError: it died\n")
    _feed(recorder, trial, "start", _result(1, (0.5, 0.5), best=1), "error")

    (row,) = store.read("trials").to_pylist()
    assert row["status"] == "failed"
    assert row["error"] == "RuntimeError: ray.exceptions.ActorDiedError: it died"
    assert row["epochs_run"] == 1


def test_trial_that_never_reported_the_objective_names_what_it_did(tmp_path: Path) -> None:
    recorder, store = _recorder(tmp_path)
    result = _result(1, (0.5, 0.5), best=1, final=True)
    del result["accuracy_mean"]
    _feed(recorder, _trial(), "start", result, "complete")

    (row,) = store.read("trials").to_pylist()
    assert row["status"] == "failed"
    assert row["error"] == "the trial never reported accuracy_mean; it reported loss, train_loss"


def test_trial_that_reported_nothing_is_failed_under_its_number(tmp_path: Path) -> None:
    recorder, store = _recorder(tmp_path)
    _feed(recorder, _trial("abcde_00007"), "start", "complete")

    (row,) = store.read("trials").to_pylist()
    assert row["status"] == "failed"
    assert row["error"] == "the trial ended without reporting anything"
    assert row["trial_number"] == 7 and row["seed"] is None


def test_finished_trial_loses_its_checkpoints(tmp_path: Path) -> None:
    recorder, _ = _recorder(tmp_path)
    folder = tmp_path / "trial"
    (folder / "checkpoint_000001").mkdir(parents=True)
    (folder / "checkpoint_000001" / "cv_state.pt").write_bytes(b"x")
    (folder / "events.out").write_text("kept")

    _feed(recorder, _trial(path=folder), "start", _result(1, (0.5, 0.5), best=1, final=True))
    recorder.on_trial_complete(0, [], _trial(path=folder))

    assert sorted(p.name for p in folder.iterdir()) == ["events.out"]


@pytest.mark.parametrize(
    ("epochs", "terminal", "error", "expected"),
    [
        ([{"accuracy_mean": 0.5, "last_report": True}], None, None, ("completed", None)),
        ([{"accuracy_mean": 0.5, "last_report": False}], None, None, ("pruned", None)),
        ([], {TRIAL_STATUS: "diverged", TRIAL_ERROR: "x"}, None, ("diverged", "x")),
        ([], None, TrialDiverged("fold 0: nan"), ("diverged", "TrialDiverged: fold 0: nan")),
        ([], None, ValueError("a\nb"), ("failed", "ValueError: b")),
    ],
)
def test_trial_outcome(epochs, terminal, error, expected) -> None:
    assert trial_outcome(epochs, terminal=terminal, error=error, objective="accuracy_mean") == (
        expected
    )


def test_metric_undefined_in_a_fold_is_said_once_per_search(tmp_path: Path, caplog) -> None:
    recorder, store = _recorder(tmp_path)
    for number in (1, 2):
        result = _result(1, (0.5, 0.5), best=1, final=True)
        result["loss_fold1"] = math.nan
        result["loss_mean"] = math.nan
        _feed(recorder, _trial(f"abcde_0000{number}"), "start", result, "complete")

    said = [r.getMessage() for r in caplog.records if r.name == "cluster.recorder"]
    assert said == [
        "trial abcde_00001: loss is undefined (NaN) in 1 of 2 folds, so its fold mean is NaN; "
        "see trainers.metrics for when a metric is undefined (said once per search)"
    ]
    assert all(math.isnan(row["loss_mean"]) for row in store.read("trials").to_pylist())

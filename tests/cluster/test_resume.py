"""`archsearch run --resume`: which spec may resume a run, and what the store says is done.

The searches themselves (killed and resumed) are in test_resume_and_failures.py; these tests
need no Ray.
"""

from __future__ import annotations

import copy
import math
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from cluster.cli import main
from cluster.resume import finished_trials, spec_difference
from cluster.rundir import hold_run_dir
from cluster.spec import parse_spec
from cluster.store import ResultsStore
from nas.numbering import FinishedTrial
from trainers.metrics import metric_names

SPEC: dict[str, Any] = {
    "name": "resumable",
    "data": {"dataset": "digits"},
    "model": {"family": "mlp", "depth": {"int": [1, 3]}, "width": 32},
    "optimizer": {"lr": 0.01},
    "evaluation": {"folds": 2, "metric": "accuracy"},
    "search": {"strategy": "random", "trials": 8},
}


def _changed(**sections: Any) -> dict[str, Any]:
    spec = copy.deepcopy(SPEC)
    for name, values in sections.items():
        spec[name] = {**spec.get(name, {}), **values}
    return spec


@pytest.mark.parametrize(
    ("other", "expected"),
    [
        (_changed(), None),
        # Defaults written out are the same spec.
        (_changed(training={"epochs": 10}, evaluation={"stratified": True}), None),
        # Where it runs may change.
        (_changed(cluster={"address": "auto", "storage": "elsewhere"}), None),
        (_changed(search={"trials": 12}), ("search.trials", "8", "12")),
        (
            _changed(model={"depth": {"int": [1, 4]}}),
            ("model.depth", "{int: [1, 3]}", "{int: [1, 4]}"),
        ),
        (_changed(model={"width": {"choice": [32]}}), ("model.width", "32", "{choice: [32]}")),
        (_changed(optimizer={"lr": 0.02}), ("optimizer.lr", "0.01", "0.02")),
        (_changed(search={"max_retries": 3}), ("search.max_retries", "1", "3")),
        ({**_changed(), "seed": 4}, ("seed", "0", "4")),
    ],
)
def test_spec_difference_names_the_first_field(other: dict, expected: tuple | None) -> None:
    assert spec_difference(parse_spec(SPEC), parse_spec(other)) == expected


def _run_dir(tmp_path: Path) -> Path:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "spec.yaml").write_text(yaml.safe_dump(SPEC))
    return run_dir


def _refused(argv: list[str], capsys) -> str:
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("archsearch: "), err
    return err.removeprefix("archsearch: ").rstrip("\n")


def test_resume_with_another_spec_is_refused_naming_what_changed(tmp_path, capsys) -> None:
    run_dir = _run_dir(tmp_path)
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump(_changed(model={"depth": {"int": [2, 3]}})))

    message = _refused(["run", str(other), "--resume", str(run_dir)], capsys)

    assert message == (
        f"model.depth: {run_dir} was started with {{int: [1, 3]}}, the spec now says "
        f"{{int: [2, 3]}}; resume with the spec the run started with ({run_dir}/spec.yaml), "
        "or start a new run"
    )
    assert sorted(p.name for p in run_dir.iterdir()) == ["spec.yaml"]


def test_resume_with_another_trial_budget_is_refused(tmp_path, capsys) -> None:
    run_dir = _run_dir(tmp_path)
    message = _refused(["run", "--resume", str(run_dir), "--trials", "20"], capsys)
    assert message.startswith(f"search.trials: {run_dir} was started with 8, the spec now says 20")


def test_resume_of_a_folder_without_a_search_is_refused(tmp_path, capsys) -> None:
    message = _refused(["run", "--resume", str(tmp_path / "nowhere")], capsys)
    assert message.startswith(f"--resume: {tmp_path / 'nowhere'} has no spec.yaml")
    assert not (tmp_path / "nowhere").exists()


def test_resume_elsewhere_than_the_run_directory_is_refused(tmp_path, capsys) -> None:
    run_dir = _run_dir(tmp_path)
    message = _refused(["run", "--resume", str(run_dir), "--output", str(tmp_path / "x")], capsys)
    assert message.startswith(f"--output: {tmp_path / 'x'} differs from --resume {run_dir}")


def test_run_without_a_spec_or_resume_is_refused(capsys) -> None:
    assert _refused(["run"], capsys) == "spec: give the YAML spec to run, or --resume RUN_DIR"


def test_finished_trials_hold_the_last_epochs_objective(tmp_path: Path) -> None:
    spec = parse_spec(SPEC)
    store = ResultsStore(tmp_path, parameters=spec.parameters(), metrics=metric_names(spec.task))
    rows = [
        # (number, status, {epoch: fold accuracies})
        (0, "completed", {1: (0.5, 0.7), 2: (0.8, 0.9)}),
        (1, "pruned", {1: (0.4, 0.5)}),
        (2, "diverged", {1: (0.1, 0.3)}),
        (3, "failed", {}),
    ]
    for number, status, epochs in rows:
        trial_id = f"abcde_0000{number}"
        store.write_trial(
            trial={
                "trial_id": trial_id,
                "trial_number": number,
                "status": status,
                "strategy": "random",
                "scheduler": "none",
            },
            folds=[],
            epochs=[
                {"fold": fold, "epoch": epoch, "accuracy": value}
                for epoch, values in epochs.items()
                for fold, value in enumerate(values)
            ],
        )

    finished = finished_trials(store, metric="accuracy")

    assert sorted(finished) == [0, 1, 2, 3]
    assert finished[0] == FinishedTrial(0, pytest.approx(0.85), stopped_early=False)
    assert finished[1] == FinishedTrial(1, pytest.approx(0.45), stopped_early=True)
    assert math.isnan(finished[2].value) and math.isnan(finished[3].value)


def test_parts_of_an_uncommitted_trial_are_removed(tmp_path: Path) -> None:
    spec = parse_spec(SPEC)
    store = ResultsStore(tmp_path, parameters=spec.parameters(), metrics=metric_names(spec.task))
    for trial_id in ("kept", "torn"):
        store.write_trial(
            trial={
                "trial_id": trial_id,
                "status": "completed",
                "strategy": "random",
                "scheduler": "none",
            },
            folds=[{"fold": 0, "accuracy": 0.5}],
            epochs=[{"fold": 0, "epoch": 1, "accuracy": 0.5}],
        )
    # The driver died after writing the trial's epochs and folds, before its commit record.
    (tmp_path / "trials" / "part-torn.parquet").unlink()

    assert store.remove_uncommitted() == ["torn"]
    for table in ("trials", "folds", "epochs"):
        assert [p.name for p in (tmp_path / table).iterdir()] == ["part-kept.parquet"]
    assert store.remove_uncommitted() == []


def test_resume_of_a_search_a_live_driver_runs_is_refused(tmp_path, capsys, monkeypatch) -> None:
    run_dir = _run_dir(tmp_path)

    def tripwire(**kwargs: Any) -> None:
        raise AssertionError("Ray was started beside a live driver")

    monkeypatch.setattr("cluster.driver.ray_session", tripwire)
    with hold_run_dir(run_dir):
        message = _refused(["run", "--resume", str(run_dir)], capsys)

    assert message == (
        f"--resume: {run_dir} is being searched by pid {os.getpid()} right now; wait for it "
        "to end or stop it, then resume"
    )
    # Released with its file: the next driver gets it.
    hold_run_dir(run_dir).close()

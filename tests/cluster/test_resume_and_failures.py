"""Nothing lost, nothing silent: a killed driver resumed, a killed worker retried, reproducible runs.

The kill tests run `archsearch run` in a subprocess (its own Ray, its own process group), kill
the driver with SIGKILL once at least two trials are in the store, and resume it with
`archsearch run --resume`. Each trial number must then be in the store once, the trials stored
before the kill unchanged, and (random search) every trial equal, config and metrics, to the
same trial of an uninterrupted run in this process. Digits, 600 samples, tiny MLPs, 2 folds.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml
from ray.tune import Callback

from cluster.cli import main
from cluster.driver import run_search
from cluster.spec import parse_spec
from cluster.trainable import trial_seed
from nas.strategies import sampled_values
from search_spaces.parameters import resolve
from tests.factories import digits_search_spec
from trainers.datasets import load_dataset, take_subset
from trainers.folds import make_folds
from trainers.loop import cross_validate

pytestmark = pytest.mark.slow

ARCHSEARCH = str(Path(sys.executable).parent / "archsearch")

# Columns that may differ between two runs of the same trial: where and how fast it ran.
# latency_ms is a wall time too: the candidate's measured single-sample latency.
RUN_COLUMNS = ("trial_id", "node", "seconds", "latency_ms")


def _spec(strategy: str = "random", trials: int = 8, epochs: int = 8) -> dict[str, Any]:
    return digits_search_spec(
        "resume-test",
        training={"epochs": epochs},
        search={"strategy": strategy, "trials": trials, "concurrency": 2},
    )


def _write_spec(folder: Path, spec: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def _trials(run_dir: Path) -> list[dict[str, Any]]:
    return pq.read_table(run_dir / "trials").to_pylist()


def _by_number(rows: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    numbers = [row["trial_number"] for row in rows]
    assert len(numbers) == len(set(numbers)), f"a trial number twice: {sorted(numbers)}"
    return {row["trial_number"]: row for row in rows}


def _same(first: dict[str, Any], second: dict[str, Any]) -> bool:
    """Equal in everything but where and how fast the trial ran; NaN equals NaN."""
    for key in first.keys() - set(RUN_COLUMNS):
        a, b = first[key], second[key]
        both_nan = (
            isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)
        )
        if a != b and not both_nan:
            return False
    return True


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory, local_ray: object) -> Path:
    """The random search of `_spec()` run start to end in this process."""
    folder = tmp_path_factory.mktemp("uninterrupted")
    spec = _write_spec(folder, _spec())
    assert main(["run", str(spec), "--output", str(folder / "run"), "--no-export"]) == 0
    return folder / "run"


def _run_killed(tmp_path: Path, spec: dict[str, Any], *, kill_after: int) -> tuple[Path, list]:
    """Start a search in a subprocess and SIGKILL its driver once `kill_after` trials are stored.

    Returns the run directory and the trials rows stored at the moment of the kill.
    """
    path = _write_spec(tmp_path, spec)
    run_dir = tmp_path / "run"
    log = (tmp_path / "first.log").open("w")
    driver = subprocess.Popen(
        [ARCHSEARCH, "run", str(path), "--output", str(run_dir), "--no-export"],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its Ray lives in its process group, killed with it below
    )
    try:
        deadline = time.monotonic() + 240
        while len(list((run_dir / "trials").glob("part-*.parquet"))) < kill_after:
            assert driver.poll() is None, (tmp_path / "first.log").read_text()
            assert time.monotonic() < deadline, "no trials stored in time"
            time.sleep(0.02)
        driver.send_signal(signal.SIGKILL)
        driver.wait(timeout=30)
        stored = _trials(run_dir)
    finally:
        _kill_group(driver)
        log.close()
    return run_dir, stored


def _resume(run_dir: Path, *extra: str) -> str:
    done = subprocess.run(
        [ARCHSEARCH, "run", "--resume", str(run_dir), "--no-export", *extra],
        capture_output=True,
        text=True,
        timeout=300,
        start_new_session=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _kill_group(process: subprocess.Popen) -> None:
    """End what is left of a killed driver's Ray (its process group, which this test made)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(timeout=30)


def test_random_search_killed_and_resumed_equals_an_uninterrupted_one(
    tmp_path: Path, uninterrupted: Path
) -> None:
    run_dir, before = _run_killed(tmp_path, _spec(), kill_after=2)
    assert 2 <= len(before) < 8, "the driver must die mid-search"

    out = _resume(run_dir)
    assert f"{len(before)} trials done, {8 - len(before)} to run" in out

    after = _by_number(_trials(run_dir))
    assert sorted(after) == list(range(8))
    assert len({row["trial_id"] for row in after.values()}) == 8

    # What was stored before the kill is kept as it was, not run again.
    for row in before:
        assert after[row["trial_number"]] == row

    # Every trial, stored before the kill, in flight at the kill, or never started then, has
    # the config and the numbers it has in an uninterrupted run.
    reference = _by_number(_trials(uninterrupted))
    for number, row in after.items():
        assert _same(row, reference[number]), (row, reference[number])

    # Every recorded trial has its epochs, once each.
    epochs = pq.read_table(run_dir / "epochs").to_pylist()
    for row in after.values():
        mine = [(e["epoch"], e["fold"]) for e in epochs if e["trial_id"] == row["trial_id"]]
        assert sorted(mine) == [(e, f) for e in range(1, row["epochs_run"] + 1) for f in (0, 1)]


def test_bayesian_search_killed_and_resumed_runs_its_budget_once(tmp_path: Path) -> None:
    run_dir, before = _run_killed(tmp_path, _spec("bayesian", trials=4, epochs=4), kill_after=2)
    assert 2 <= len(before) < 4, "the driver must die mid-search"

    _resume(run_dir)

    after = _by_number(_trials(run_dir))
    assert sorted(after) == list(range(4))
    for row in before:
        assert after[row["trial_number"]] == row
    assert all(row["status"] == "completed" for row in after.values())
    assert (run_dir / "strategy-state.json").is_file()


def test_resume_of_a_finished_search_runs_nothing(tmp_path: Path, uninterrupted: Path) -> None:
    rows = _trials(uninterrupted)

    assert main(["run", "--resume", str(uninterrupted), "--no-export", "--quiet"]) == 0
    assert _trials(uninterrupted) == rows


def test_same_spec_and_seed_give_the_same_trials(tmp_path: Path, uninterrupted: Path) -> None:
    # Random search, two trials at a time: which trial finishes first varies between the
    # runs, what each trial number samples and scores does not.
    spec = _write_spec(tmp_path, _spec())
    assert main(["run", str(spec), "--output", str(tmp_path / "run"), "--no-export"]) == 0

    again = _by_number(_trials(tmp_path / "run"))
    reference = _by_number(_trials(uninterrupted))
    assert sorted(again) == sorted(reference) == list(range(8))
    for number, row in again.items():
        assert _same(row, reference[number]), (row, reference[number])
        assert row["seed"] == trial_seed(3, number)


# -- a worker killed mid-trial --------------------------------------------------------------


class _KillWorker(Callback):
    """SIGKILLs the worker of trial 0 once, right after its report of epoch `at`."""

    def __init__(self, at: int) -> None:
        self.at = at
        self.killed: int | None = None
        # (trial number, epoch, the process that reported it), in order
        self.reports: list[tuple[int, int, int]] = []

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info):
        if "epoch" not in result:
            return
        self.reports.append((result["trial_number"], result["epoch"], result["pid"]))
        if result["trial_number"] == 0 and result["epoch"] == self.at and self.killed is None:
            self.killed = result["pid"]
            os.kill(result["pid"], signal.SIGKILL)


def _search_with(callback: Callback, tmp_path: Path, **search: Any) -> Path:
    raw = _spec(trials=2, epochs=5)
    raw["search"].update(search)
    spec = parse_spec(raw)
    run_dir = tmp_path / "run"
    run_search(
        spec,
        run_dir=run_dir,
        spec_text=yaml.safe_dump(raw),
        stream=None,
        callbacks=[callback],
    )
    return run_dir


def _expected_epochs(row: dict[str, Any]) -> list[float]:
    """Fold-mean accuracy per epoch of the trial's config, trained here without Ray."""
    raw = _spec(trials=2, epochs=5)
    spec = parse_spec(raw)
    data = take_subset(load_dataset("digits", seed=3), 600, seed=3)
    folds = make_folds(data.y_train, n_folds=2, task=data.task, stratified=True, seed=3)
    sample = {p.name: row[f"param.{p.name}"] for p in spec.parameters() if p.searched}
    result = cross_validate(
        resolve(spec.parameters(), sampled_values(sample)),
        data,
        folds=folds,
        epochs=5,
        patience=None,
        objective="accuracy",
        mode="max",
        seed=trial_seed(3, row["trial_number"]),
    )
    return [report.mean["accuracy"] for report in result.history]


def test_killed_worker_is_retried_from_its_checkpoint_with_complete_records(
    tmp_path: Path, local_ray: object
) -> None:
    killer = _KillWorker(at=2)
    run_dir = _search_with(killer, tmp_path, max_retries=1)

    # The retry ran in another process and went on from a checkpoint: epoch 1 was not trained
    # again. (Tune registers epoch 2's checkpoint after the callbacks have seen its result, so
    # the retry may start at epoch 2 or 3; an epoch reported twice is recorded once.)
    assert killer.killed is not None
    mine = [(epoch, pid) for number, epoch, pid in killer.reports if number == 0]
    assert mine[:2] == [(1, killer.killed), (2, killer.killed)]
    retried = [epoch for epoch, pid in mine[2:] if pid != killer.killed]
    assert retried[0] in (2, 3) and retried[-1] == 5

    rows = _by_number(_trials(run_dir))
    assert sorted(rows) == [0, 1]
    trial = rows[0]
    assert trial["status"] == "completed" and trial["epochs_run"] == 5

    epochs = [
        e
        for e in pq.read_table(run_dir / "epochs").to_pylist()
        if e["trial_id"] == trial["trial_id"]
    ]
    assert sorted((e["epoch"], e["fold"]) for e in epochs) == [
        (e, f) for e in range(1, 6) for f in (0, 1)
    ]
    means = [np.mean([e["accuracy"] for e in epochs if e["epoch"] == n]) for n in range(1, 6)]
    assert means == pytest.approx(_expected_epochs(trial), abs=1e-12)


def test_killed_worker_without_retries_fails_the_trial_and_the_search_goes_on(
    tmp_path: Path, local_ray: object
) -> None:
    killer = _KillWorker(at=2)
    run_dir = _search_with(killer, tmp_path, max_retries=0)

    rows = _by_number(_trials(run_dir))
    assert rows[0]["status"] == "failed"
    assert "died" in rows[0]["error"].lower() and "\n" not in rows[0]["error"]
    assert rows[0]["epochs_run"] == 2
    assert rows[1]["status"] == "completed" and rows[1]["epochs_run"] == 5

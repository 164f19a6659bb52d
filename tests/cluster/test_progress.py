"""The live progress lines: counts, best-epoch values, the estimate of the time left, quiet Ray.

The reporter is driven here by hand with fake trials and a fake clock, the way Tune calls it;
one slow test runs a real search with a failing trial through the CLI and reads the console.
"""

from __future__ import annotations

import io
import logging
import math
import pickle
from types import SimpleNamespace

import pytest
import yaml

from cluster.cli import main
from cluster.progress import (
    ProgressReporter,
    estimate_seconds_left,
    format_duration,
    tame_ray_console,
)
from cluster.trainable import TRIAL_ERROR, TRIAL_STATUS


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def trial(trial_id: str) -> SimpleNamespace:
    return SimpleNamespace(trial_id=trial_id, pickled_error_file=None, error_file=None)


def result(epoch: int, best_epoch: int, mean: float, std: float, *, last: bool) -> dict:
    return {
        "epoch": epoch,
        "best_epoch": best_epoch,
        "accuracy_mean": mean,
        "accuracy_std": std,
        "last_report": last,
    }


def reporter(stream, clock, **options) -> ProgressReporter:
    settings = {"objective": "accuracy_mean", "mode": "max", "total": 4, "concurrency": 2}
    return ProgressReporter(stream, clock=clock, **{**settings, **options})


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (42.4, "42s"), (59.6, "1m00s"), (185, "3m05s"), (3720, "1h02m"), (math.nan, "?")],
)
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        # Mean finished trial 15 s; the running one has 10 s to go; 3 pending take 45 s;
        # 2 slots share the 55 s.
        ({"finished": [10, 20], "running": [(5, 1)], "pending": 3, "slots": 2}, 27.5),
        # A running trial older than the mean counts as about to finish.
        ({"finished": [10], "running": [(30, 4)], "pending": 0, "slots": 1}, 0.0),
        # No trial finished: 6 s for 2 epochs and 4 s for 1 give 3.5 s per epoch, 17.5 s per
        # 5-epoch trial; rests 11.5 + 13.5, one pending 17.5, over 2 slots.
        ({"finished": [], "running": [(6, 2), (4, 1)], "pending": 1, "slots": 2}, 21.25),
    ],
)
def test_estimate_seconds_left_by_hand(options, expected):
    assert estimate_seconds_left(epochs=5, **options) == pytest.approx(expected)


def test_estimate_is_nan_without_evidence():
    left = estimate_seconds_left(finished=[], running=[(3, 0)], pending=4, slots=2, epochs=5)
    assert math.isnan(left)
    assert math.isnan(
        estimate_seconds_left(finished=[], running=[(3, 1)], pending=4, slots=2, epochs=None)
    )


def test_lines_show_the_best_epoch_not_the_last():
    stream, clock = io.StringIO(), Clock()
    progress = reporter(stream, clock)
    a, b = trial("a_00000"), trial("a_00001")

    progress.on_trial_start(0, [], a)
    progress.on_trial_start(0, [], b)
    clock.now += 10
    progress.on_trial_result(0, [], a, result(1, 1, 0.70, 0.05, last=False))
    progress.on_trial_result(0, [], a, result(2, 2, 0.80, 0.02, last=False))
    # Epoch 3 is worse; the trial still marks epoch 2 as its best.
    progress.on_trial_result(0, [], a, result(3, 2, 0.75, 0.04, last=True))
    progress.on_trial_complete(0, [], a)

    line = stream.getvalue().splitlines()[-1]
    assert line.startswith("[1/4] a_00000 done after 3 epochs (best 2): accuracy_mean 0.8000 +- ")
    assert "best 0.8000 +- 0.0200 (a_00000)" in line
    assert "1 running, 0 stopped early" in line
    assert progress.best == (0.80, 0.02, "a_00000")


def test_counts_stopped_early_failed_and_the_time_left():
    stream, clock = io.StringIO(), Clock()
    progress = reporter(stream, clock)
    a, b, c = trial("a"), trial("b"), trial("c")

    progress.on_trial_start(0, [], a)
    progress.on_trial_start(0, [], b)
    clock.now += 20
    # The scheduler stops `a` after a report that announced more epochs.
    progress.on_trial_result(0, [], a, result(1, 1, 0.60, 0.01, last=False))
    progress.on_trial_complete(0, [], a)
    # One trial of 20 s done; b runs for 20 s already; c and d pending: (0 + 2 * 20) / 2.
    assert progress.seconds_left() == pytest.approx(20.0)
    assert "stopped early after 1 epochs" in stream.getvalue()

    progress.on_trial_start(0, [], c)
    clock.now += 10
    progress.on_trial_error(0, [], b)
    lines = stream.getvalue().splitlines()
    assert lines[-1].startswith(
        "[2/4] b failed: RuntimeError: the trial failed without an error message |"
    )
    assert "1 running, 1 stopped early, 1 failed" in lines[-1]
    assert progress.stopped_early == 1 and progress.failed == 1
    # Durations 20 and 30 average 25; c has run 10 s (15 s to go), 1 pending: (15 + 25) / 2.
    assert "30s elapsed, ~20s left" in lines[-1]


def test_a_trial_that_raised_ends_with_its_error_line():
    # A trial that raises ends with a last report holding its status and error, no epoch.
    stream, clock = io.StringIO(), Clock()
    progress = reporter(stream, clock)
    progress.on_trial_start(0, [], trial("d"))
    progress.on_trial_result(0, [], trial("d"), result(1, 1, 0.5, 0.1, last=False))
    terminal = {
        TRIAL_STATUS: "diverged",
        TRIAL_ERROR: "TrialDiverged: fold 0: training loss became nan at epoch 2",
        "accuracy_mean": math.nan,
        "last_report": True,
    }
    progress.on_trial_result(0, [], trial("d"), terminal)
    progress.on_trial_complete(0, [], trial("d"))

    line = stream.getvalue().splitlines()[-1]
    assert line.startswith(
        "[1/4] d diverged: TrialDiverged: fold 0: training loss became nan at epoch 2 | "
    )
    assert "0 running, 0 stopped early, 1 failed" in line
    assert progress.best is None and progress.stopped_early == 0


def test_better_means_lower_in_min_mode():
    stream, clock = io.StringIO(), Clock()
    progress = reporter(stream, clock, objective="loss_mean", mode="min", total=2)
    for name, loss in (("x", 0.5), ("y", 0.3)):
        progress.on_trial_start(0, [], trial(name))
        progress.on_trial_result(
            0, [], trial(name), {"epoch": 1, "best_epoch": 1, "loss_mean": loss, "loss_std": 0.1}
        )
        progress.on_trial_complete(0, [], trial(name))
    assert progress.best == (0.3, 0.1, "y")
    assert stream.getvalue().splitlines()[-1].endswith("elapsed, ~0s left")


def test_heartbeat_only_after_quiet_seconds():
    stream, clock = io.StringIO(), Clock()
    progress = reporter(stream, clock, heartbeat=60.0, epochs=10)
    progress.on_step(0, [])  # nothing running yet: silent
    progress.on_trial_start(0, [], trial("a"))
    progress.on_trial_result(0, [], trial("a"), result(1, 1, 0.5, 0.1, last=False))
    clock.now += 59
    progress.on_step(0, [])
    assert stream.getvalue() == ""

    clock.now += 1
    progress.on_step(0, [])
    # Nothing finished: 60 s for 1 of 10 epochs gives 600 s a trial; 540 s to go for a, and
    # three pending trials of 600 s, over 2 slots.
    assert stream.getvalue() == (
        "[0/4] 1 running, 0 stopped early | 1m00s elapsed, ~19m30s left\n"
    )
    progress.on_step(0, [])
    assert stream.getvalue().count("\n") == 1  # the next one waits another minute


def test_quiet_reporter_counts_but_writes_nothing():
    clock = Clock()
    progress = reporter(None, clock)
    progress.on_trial_start(0, [], trial("a"))
    progress.on_trial_result(0, [], trial("a"), result(1, 1, 0.5, 0.1, last=False))
    progress.on_trial_complete(0, [], trial("a"))
    assert progress.stopped_early == 1


def test_reporter_pickles_without_its_stream():
    progress = reporter(io.StringIO(), Clock())
    restored = pickle.loads(pickle.dumps(progress))
    assert restored._stream is None
    restored.say("nowhere")  # a restored reporter without a console writes nothing


def test_tame_ray_console_drops_only_the_repeats(monkeypatch):
    for name in ("TUNE_PRINT_ALL_TRIAL_ERRORS", "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"):
        monkeypatch.delenv(name, raising=False)
    tame_ray_console()
    tame_ray_console()  # twice adds no second filter

    import os

    assert os.environ["TUNE_PRINT_ALL_TRIAL_ERRORS"] == "0"
    auth = logging.getLogger("ray._private.authentication.authentication_token_setup")
    assert len(auth.filters) == 1

    def passes(logger: logging.Logger, message: str) -> bool:
        record = logger.makeRecord(logger.name, logging.WARNING, __file__, 1, message, (), None)
        return logger.filter(record)

    assert not passes(auth, "Token authentication is enabled for this Ray cluster. Set ...")
    assert passes(auth, "Token authentication is disabled for this Ray cluster. Anyone ...")
    tune_logger = logging.getLogger("ray.tune.tune")
    assert not passes(tune_logger, "Trials did not complete: %s")
    assert passes(tune_logger, "Total run time: 3.00 seconds")


@pytest.mark.slow
def test_console_of_a_search_with_a_failing_trial(tmp_path, local_ray, capfd):
    # lr 10 diverges within an epoch; lr 0.01 trains. Tune's traceback of the failure must not
    # reach the console: our line says it in one line and the store keeps the error.
    spec = {
        "name": "console-test",
        "data": {"dataset": "diabetes"},
        "model": {"family": "mlp", "depth": 1, "width": 16, "activation": "relu"},
        "optimizer": {"name": "sgd", "lr": {"choice": [10.0, 0.01]}, "momentum": 0.9},
        "training": {"epochs": 2},
        "evaluation": {"folds": 2, "metric": "mse"},
        "search": {"strategy": "grid"},
    }
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    code = main(["run", str(path), "--output", str(tmp_path / "run"), "--no-export"])
    out, err = capfd.readouterr()

    assert code == 0
    assert "Traceback" not in err and "Trial task failed" not in err, err
    assert "Trials did not complete" not in err
    lines = out.splitlines()
    assert lines[0].startswith("search console-test: grid + none, 2 trials")
    assert any("diverged: TrialDiverged: fold" in line and "1 failed" in line for line in lines)
    assert any(" done after 2 epochs: mse_mean " in line for line in lines)


@pytest.mark.slow
def test_quiet_run_prints_only_the_summary(tmp_path, local_ray, capfd):
    spec = {
        "name": "quiet-test",
        "data": {"dataset": "digits", "subset": 200},
        "model": {"family": "mlp", "depth": 1, "width": {"choice": [8, 16]}},
        "training": {"epochs": 1},
        "evaluation": {"folds": 2, "metric": "accuracy"},
        "search": {"strategy": "grid"},
    }
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    code = main(["run", str(path), "--output", str(tmp_path / "run"), "--no-export", "--quiet"])
    out, err = capfd.readouterr()

    assert code == 0
    assert out.splitlines()[0].startswith("search finished: 2 trials (0 stopped early)")
    assert not any(line.startswith("[") for line in out.splitlines())
    assert "Traceback" not in err

"""Trial resources and cluster addresses; the worker path itself runs in test_multinode.py."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cluster.runtime import ClusterError, check_reachable
from cluster.spec import ResourcesSection, parse_spec
from cluster.trainable import TRIAL_STATUS
from cluster.workers import WAITING_TRIAL_BUNDLE, trial_concurrency, trial_resources

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("resources", "cluster", "expected"),
    [
        ({"cpus_per_trial": 1}, {"CPU": 3.0}, 3),
        ({"cpus_per_trial": 0.25, "gpus_per_trial": 0.5}, {"CPU": 3.0, "GPU": 2.0}, 4),
        ({"cpus_per_trial": 2, "gpus_per_trial": 0.5}, {"CPU": 3.0, "GPU": 2.0}, 1),
        ({"cpus_per_trial": 0.1, "gpus_per_trial": 0.1}, {"CPU": 8.0, "GPU": 0.3}, 3),
        ({"gpus_per_trial": 1}, {"CPU": 8.0}, 1),  # no GPU yet (an autoscaler may add one)
    ],
)
def test_trial_concurrency_fits_cpus_and_gpus(resources, cluster, expected):
    assert trial_concurrency(ResourcesSection(**resources), cluster) == expected


def test_worker_trials_reserve_a_small_bundle_and_split_resources():
    resources = ResourcesSection(cpus_per_trial=2, gpus_per_trial=1, workers_per_trial=4)

    assert resources.uses_train_workers
    assert (resources.cpus_per_worker, resources.gpus_per_worker) == (0.5, 0.25)
    # The waiting trial holds no CPU, so a trial's workers can use every CPU of a machine.
    assert trial_resources(resources).bundles == [WAITING_TRIAL_BUNDLE]
    assert "CPU" not in WAITING_TRIAL_BUNDLE


def test_one_cpu_worker_stays_in_process():
    resources = ResourcesSection(cpus_per_trial=2)

    assert not resources.uses_train_workers
    assert trial_resources(resources).bundles == [{"CPU": 2.0}]


def test_gpu_alone_takes_the_worker_path():
    spec = parse_spec(
        {
            "name": "t",
            "data": {"dataset": "digits"},
            "model": {"family": "mlp"},
            "resources": {"gpus_per_trial": 0.5},
        }
    )
    assert spec.resources.uses_train_workers
    assert spec.resources.workers_per_trial == 1


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # closed again when the block ends


@pytest.mark.parametrize("scheme", ["", "ray://"])
def test_unreachable_address_is_refused_at_once(scheme):
    address = f"{scheme}127.0.0.1:{_closed_port()}"
    with pytest.raises(ClusterError, match=rf"^cluster\.address: cannot reach {address} \("):
        check_reachable(address, timeout=2)


def test_auto_is_left_to_ray():
    check_reachable("auto")  # no port to try; Ray reports a missing cluster itself


def test_cli_with_unreachable_address_says_one_line(tmp_path):
    spec = {"name": "t", "data": {"dataset": "digits", "subset": 100}, "model": {"family": "mlp"}}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    address = f"127.0.0.1:{_closed_port()}"

    done = subprocess.run(
        [sys.executable, "-c", "import sys; from cluster.cli import main; sys.exit(main())"]
        + ["run", str(path), "--address", address]
        + ["--output", str(tmp_path / "run"), "--no-export"],
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith(f"archsearch: cluster.address: cannot reach {address} (")
    # Refused before anything was written: the same --output can be used once it is fixed.
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())


# -- how a worker's error reaches the trial ------------------------------------------------------


def test_worker_reraises_its_own_failure_but_reports_a_divergence(monkeypatch):
    from tests.cluster.test_trainable import _score, _setup

    # An error of this worker alone (here a broken loop) must end the worker group, since
    # the other workers would wait for its folds forever.
    def broken(*args, **kwargs):
        raise RuntimeError("this worker's own trouble")

    with monkeypatch.context() as patch:
        patch.setattr("trainers.loop.cross_validate", broken)
        with pytest.raises(RuntimeError, match="own trouble"):
            _score(*_setup("breast_cancer", "accuracy"), raise_failures=True)
        assert _score(*_setup("breast_cancer", "accuracy")).results[-1][TRIAL_STATUS] == "failed"

    # A diverged loss is seen by every worker after the gather: reported, not raised.
    config, data, settings = _setup("diabetes", "mse", name="sgd", lr=10.0, momentum=0.9)
    reports = _score(config, data, settings, raise_failures=True)
    assert reports.results[-1][TRIAL_STATUS] == "diverged"


def test_the_first_failing_rank_names_the_trial_error():
    from ray.train import WorkerGroupError

    from cluster.workers import _first_worker_error

    error = WorkerGroupError("2 workers failed", {1: ValueError("late"), 0: KeyError("first")})
    assert repr(_first_worker_error(error)) == "KeyError('first')"
    assert _first_worker_error(RuntimeError("x")).args == ("x",)


def test_a_trial_larger_than_the_cluster_is_warned_about(caplog):
    from cluster.workers import warn_if_unfit

    warn_if_unfit(ResourcesSection(gpus_per_trial=1), {"CPU": 2.0}, autoscaling=True)
    assert "a trial needs 1 GPU but the cluster has 0" in caplog.text
    caplog.clear()
    warn_if_unfit(
        ResourcesSection(cpus_per_trial=2, workers_per_trial=2), {"CPU": 2.0}, autoscaling=False
    )
    assert caplog.text == ""


def test_a_trial_larger_than_this_machine_is_refused_on_the_local_ray():
    from cluster.runtime import ClusterError
    from cluster.workers import warn_if_unfit

    # The private local Ray never grows, so the trial would wait forever.
    with pytest.raises(
        ClusterError,
        match=r"^resources\.gpus_per_trial: a trial needs 1 GPU but this machine's Ray has 0; ",
    ):
        warn_if_unfit(ResourcesSection(gpus_per_trial=1), {"CPU": 2.0}, autoscaling=False)

"""Searches on a real three-node Ray cluster on this machine (see multinode_scenario.py).

One subprocess starts the cluster (a 1-CPU head, two nodes of 1 CPU and 1 declared GPU), runs
a grid of 3 in-process trials and a grid of 2 trials on two Ray Train workers each at 0.5 GPU
per worker, and reserves the GPU bundles of 0.5-GPU trials. About 2.5 minutes of wall time on
2 busy cores; a separate process, since a cluster cannot share one with the session's Ray.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from cluster.store import read_table

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def scenario(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("multinode")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    done = subprocess.run(
        [sys.executable, "-m", "tests.cluster.multinode_scenario", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads((out / "scenario.json").read_text())


def test_trials_run_on_several_nodes_and_record_them(scenario):
    trials = read_table(scenario["cpu_run"], "trials").to_pylist()

    assert [t["status"] for t in trials] == ["completed"] * 3
    nodes = [t["node"] for t in trials]
    assert all(isinstance(node, str) and len(node) == 56 for node in nodes)  # Ray node ids
    # Three 1-CPU trials at once on three 1-CPU nodes: they cannot share a node.
    assert len(set(nodes)) >= 2


def test_gpu_trials_run_on_workers_on_gpu_nodes(scenario):
    trials = read_table(scenario["gpu_run"], "trials").to_pylist()

    assert [t["status"] for t in trials] == ["completed"] * 2
    # Rank 0 holds half a GPU, so it runs on a node that declares one; torch finds no CUDA
    # there and trains on the CPU.
    assert {t["node"] for t in trials} <= set(scenario["gpu_nodes"])


def test_half_gpu_requests_pack_four_to_two_gpus(scenario):
    packed = scenario["packed"]

    assert packed["concurrency"] == 4
    assert packed["ready_at_once"] == 4
    assert packed["fifth_ready"] is False
    assert sorted(Counter(packed["nodes"]).values()) == [2, 2]


def test_two_worker_trials_match_in_process_trials(scenario):
    """The same grid point with the same seed gives the same numbers on both paths."""
    paths = {
        way: {
            "trials": read_table(scenario[f"{way}_run"], "trials").to_pandas(),
            "epochs": read_table(scenario[f"{way}_run"], "epochs").to_pandas(),
        }
        for way in ("cpu", "gpu")
    }
    compared = 0
    for width in (8, 12):
        rows = {}
        for way, tables in paths.items():
            trial = tables["trials"].set_index("param.model.width").loc[width]
            epochs = tables["epochs"][tables["epochs"].trial_id == trial.trial_id]
            rows[way] = (trial, epochs.sort_values(["epoch", "fold"]))
        (cpu, cpu_epochs), (gpu, gpu_epochs) = rows["cpu"], rows["gpu"]

        assert cpu.seed == gpu.seed
        assert len(cpu_epochs) == len(gpu_epochs) == 4  # 2 folds x 2 epochs
        for column in ("accuracy", "loss", "train_loss"):
            np.testing.assert_allclose(
                gpu_epochs[column].to_numpy(), cpu_epochs[column].to_numpy(), rtol=1e-6
            )
        assert gpu.accuracy_mean == pytest.approx(cpu.accuracy_mean, rel=1e-9)
        compared += 1

    # The comparison has teeth: the two widths do not score alike.
    widths = paths["cpu"]["trials"].set_index("param.model.width")
    assert widths.loc[8].train_loss_mean != widths.loc[12].train_loss_mean
    assert compared == 2

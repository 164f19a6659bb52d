"""The cluster templates parse, and hold what starting them needs."""

from __future__ import annotations

from pathlib import Path

import yaml

from cluster.spec import parse_spec

TEMPLATES = Path(__file__).resolve().parents[2] / "cluster" / "templates"


def test_cluster_launcher_template_has_gpu_workers():
    config = yaml.safe_load((TEMPLATES / "ray-cluster-gpu.yaml").read_text())

    assert config["provider"]["type"] == "aws"
    types = config["available_node_types"]
    assert config["head_node_type"] in types
    gpu = types["gpu_workers"]
    assert gpu["resources"]["GPU"] >= 1
    assert gpu["max_workers"] <= config["max_workers"]
    assert any("archsearch" in command for command in config["setup_commands"])
    assert any("--head" in command for command in config["head_start_ray_commands"])
    assert all(
        "$RAY_HEAD_IP:6379" in command
        for command in config["worker_start_ray_commands"]
        if "ray start" in command
    )


def test_rayjob_runs_archsearch_on_gpu_workers_with_a_valid_spec():
    config_map, job = yaml.safe_load_all((TEMPLATES / "rayjob.yaml").read_text())

    assert (job["apiVersion"], job["kind"]) == ("ray.io/v1", "RayJob")
    entrypoint = job["spec"]["entrypoint"].split()
    assert entrypoint[:2] == ["archsearch", "run"] and "--address" in entrypoint

    cluster = job["spec"]["rayClusterSpec"]
    head = cluster["headGroupSpec"]["template"]["spec"]
    mount = head["containers"][0]["volumeMounts"][0]
    assert entrypoint[2] == f"{mount['mountPath']}/spec.yaml"
    assert head["volumes"][0]["configMap"]["name"] == config_map["metadata"]["name"]

    (workers,) = cluster["workerGroupSpecs"]
    limits = workers["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert int(limits["nvidia.com/gpu"]) >= 1

    # The spec the job runs is one archsearch accepts, on Ray Train workers with GPUs.
    spec = parse_spec(yaml.safe_load(config_map["data"]["spec.yaml"]))
    assert spec.resources.uses_train_workers and spec.resources.gpus_per_trial > 0
    assert spec.cluster.storage.startswith("s3://")

"""Searches on a three-node Ray cluster on this machine; run by test_multinode.py in its own process.

A `ray.cluster_utils.Cluster` cannot share a process with the test session's local Ray, so
the test runs this module as a subprocess:

    python -m tests.cluster.multinode_scenario OUT_DIR

Nodes: a head with 1 CPU, and two nodes with 1 CPU and 1 GPU each. The GPUs are declared
resources only; nothing here touches CUDA. The module runs a CPU search whose trials spread over
the nodes, a search on Ray Train workers asking 0.5 GPU per worker, and reserves the GPU
bundles of four trials at once, then writes what it saw to OUT_DIR/scenario.json.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


def base_spec(name: str, **sections: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": name,
        "seed": 1,
        "data": {"dataset": "digits", "subset": 300},
        "model": {"family": "mlp", "depth": 1, "width": {"choice": [8, 12, 16]}},
        "regularization": {"dropout": 0.1},
        "optimizer": {"name": "adam", "lr": 0.01, "batch_size": 32},
        "training": {"epochs": 2},
        "evaluation": {"folds": 2, "metric": "accuracy"},
        "search": {"strategy": "grid"},
        "tracking": {"tensorboard": False},
    }
    spec.update(sections)
    return spec


def main(out: Path) -> None:
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False}
    )
    gpu_nodes = [cluster.add_node(num_cpus=1, num_gpus=1) for _ in range(2)]
    cluster.wait_for_nodes()
    seen: dict[str, Any] = {"gpu_nodes": sorted(node.node_id for node in gpu_nodes)}
    try:
        # Each search joins the running cluster through cluster.address, as a user's would.
        address = {"address": cluster.address}
        seen["cpu_run"] = str(run(out / "cpu", base_spec("spread", cluster=address)))
        seen["gpu_run"] = str(
            run(
                out / "gpu",
                base_spec(
                    "gpu",
                    model={"family": "mlp", "depth": 1, "width": {"choice": [8, 12]}},
                    resources={"cpus_per_trial": 0.5, "gpus_per_trial": 1, "workers_per_trial": 2},
                    cluster=address,
                ),
            )
        )
        ray.init(address=cluster.address, log_to_driver=False)
        seen["packed"] = reserve_gpu_bundles()
    finally:
        ray.shutdown()
        cluster.shutdown()
    (out / "scenario.json").write_text(json.dumps(seen, indent=2))


def run(run_dir: Path, raw: dict[str, Any]) -> Path:
    import yaml

    from cluster.driver import run_search
    from cluster.spec import parse_spec

    text = yaml.safe_dump(raw)
    run_search(parse_spec(raw), run_dir=run_dir, spec_text=text, stream=sys.stdout)
    return run_dir


def reserve_gpu_bundles() -> dict[str, Any]:
    """Reserve the worker bundles of 0.5-GPU trials as Ray Train would; how many fit at once?"""
    import ray
    from ray.util.placement_group import (
        placement_group,
        placement_group_table,
        remove_placement_group,
    )

    from cluster.spec import ResourcesSection
    from cluster.workers import trial_concurrency

    resources = ResourcesSection(cpus_per_trial=0.25, gpus_per_trial=0.5)
    bundle = {"CPU": resources.cpus_per_worker, "GPU": resources.gpus_per_worker}
    groups = [placement_group([bundle], strategy="PACK") for _ in range(5)]
    ready, _ = ray.wait([g.ready() for g in groups[:4]], num_returns=4, timeout=60)
    fifth, _ = ray.wait([groups[4].ready()], timeout=3)
    nodes = [placement_group_table(g)["bundles_to_node_id"][0] for g in groups[:4]]
    for group in groups:
        remove_placement_group(group)
    return {
        "concurrency": trial_concurrency(resources, ray.cluster_resources()),
        "ready_at_once": len(ready),
        "fifth_ready": bool(fifth),
        "nodes": nodes,
    }


if __name__ == "__main__":
    main(Path(sys.argv[1]))

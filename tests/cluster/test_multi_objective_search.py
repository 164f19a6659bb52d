"""A multi-objective search with a cost bound on digits, through the CLI on a real local Ray:
costs in the store, an infeasible trial never trained, the Pareto set marked and exported,
and an exported model compressed and measured.
"""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
import torch
import yaml

from cluster.cli import main
from nas.pareto import pareto_ranks

pytestmark = pytest.mark.slow

BOUND = 10_000


def _spec() -> dict:
    return {
        "name": "digits-moo",
        "seed": 1,
        "data": {"dataset": "digits", "subset": 600},
        # 64 inputs, 10 classes: 610, 2,410 and 38,410 parameters.
        "model": {"family": "mlp", "depth": 1, "width": {"choice": [8, 32, 512]}},
        "optimizer": {"name": "adam", "lr": 0.01, "batch_size": 64},
        "training": {"epochs": 2, "refit_epochs": 1},
        "evaluation": {"folds": 2, "objectives": [{"accuracy": "max"}, {"params_count": "min"}]},
        "search": {"strategy": "grid", "constraints": {"max_params": BOUND}},
        "compression": {"prune_rates": [0.5], "quantize": True, "finetune_epochs": 1},
    }


def test_search_marks_and_exports_the_pareto_set_then_compresses(tmp_path, local_ray, capsys):
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(_spec()))
    run_dir = tmp_path / "run"
    assert main(["run", str(path), "--output", str(run_dir), "--no-export", "--quiet"]) == 0

    # Every trial has its costs; the one over the bound was recorded, never trained.
    trials = {t["param.model.width"]: t for t in pq.read_table(run_dir / "trials").to_pylist()}
    assert {w: t["params_count"] for w, t in trials.items()} == {8: 610, 32: 2410, 512: 38410}
    assert all(t["macs"] >= t["params_count"] and t["latency_ms"] > 0 for t in trials.values())
    over = trials[512]
    assert over["status"] == "infeasible" and over["epochs_run"] == 0
    assert f"params_count 38410 > max_params {BOUND}" in over["error"]
    assert {trials[8]["status"], trials[32]["status"]} == {"completed"}

    # `results` marks the Pareto set: exactly the trials pareto_ranks puts first.
    capsys.readouterr()
    assert main(["results", str(run_dir)]) == 0
    table = capsys.readouterr().out
    assert "pareto" in table.splitlines()[1] and "infeasible" in table
    values = [[trials[w]["accuracy_mean"], trials[w]["params_count"]] for w in (8, 32)]
    front = {
        w
        for w, rank in zip((8, 32), pareto_ranks(values, ["max", "min"]), strict=True)
        if rank == 0
    }
    marked = {int(line.split()[-1]) for line in table.splitlines()[2:] if " * " in f" {line} "}
    assert marked == front and 8 in front  # the smallest feasible model is always optimal
    query = ["results", str(run_dir), "--where", "pareto == true", "--format", "json"]
    assert main(query) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {row["param.model.width"] for row in rows} == front
    assert all(row["pareto"] is True for row in rows)

    # Each Pareto trial is refit and exported on its own; a named trial too.
    assert main(["export", str(run_dir), "--pick", "pareto"]) == 0
    for width in front:
        folder = run_dir / "models" / f"trial-{trials[width]['trial_number']}"
        info = json.loads((folder / "model.json").read_text())
        assert info["trial_number"] == trials[width]["trial_number"]
        assert info["cost"]["params_count"] == trials[width]["params_count"]
        assert torch.jit.load(str(folder / "model.pt")) is not None
    assert main(["export", str(run_dir), "--pick", str(over["trial_number"])]) == 2
    assert "is infeasible and has no scores" in capsys.readouterr().err

    # Compression of one exported model: every variant measured, loadable, written down.
    model = run_dir / "models" / f"trial-{trials[8]['trial_number']}" / "model.pt"
    assert main(["compress", str(run_dir), "--model", str(model)]) == 0
    compression = json.loads(model.with_suffix(".json").read_text())["compression"]
    variants = {v["variant"]: v for v in compression["variants"]}
    assert set(variants) == {"original", "int8-dynamic", "pruned-0.5", "pruned-0.5-int8-dynamic"}
    assert variants["pruned-0.5"]["sparsity"] == pytest.approx(0.5, abs=0.01)
    assert variants["pruned-0.5"]["finetune_epochs"] == 1
    for variant in variants.values():
        assert 0.0 <= variant["test_metrics"]["accuracy"] <= 1.0
        assert variant["size_bytes"] > 0 and variant["latency_ms"] > 0
        loaded = torch.jit.load(str(model.parent / variant["file"]))
        assert loaded(torch.zeros(2, 64)).shape == (2, 10)

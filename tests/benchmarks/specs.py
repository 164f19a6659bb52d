"""Tiny specs and one in-process search run, shared by the benchmarks that go through the driver."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import yaml


def tiny_spec(*, trials: int, name: str = "bench-tiny") -> dict[str, Any]:
    """A search whose trials do almost nothing: 60 digits, 2 folds, one epoch of a width-8 MLP."""
    return {
        "name": name,
        "seed": 0,
        "data": {"dataset": "digits", "subset": 60},
        "model": {"family": "mlp", "depth": 1, "width": {"choice": [8, 16]}},
        "optimizer": {"name": "adam", "lr": {"log": [1.0e-3, 1.0e-2]}, "batch_size": 32},
        "training": {"epochs": 1},
        "evaluation": {"folds": 2, "metric": "accuracy"},
        "search": {"strategy": "random", "trials": trials},
    }


def run_spec(raw: dict[str, Any]) -> tuple[Path, float]:
    """Run `raw` through archsearch's driver, in this process; the run folder and seconds."""
    from cluster.driver import run_search
    from cluster.progress import tame_ray_console
    from cluster.runtime import use_loopback_only
    from cluster.spec import parse_spec

    spec = parse_spec(raw, source="benchmark")
    run_dir = Path(tempfile.mkdtemp(prefix="archsearch-bench-")) / "run"
    use_loopback_only()
    tame_ray_console()
    started = time.perf_counter()
    run_search(spec, run_dir=run_dir, spec_text=yaml.safe_dump(raw), stream=None)
    return run_dir, time.perf_counter() - started

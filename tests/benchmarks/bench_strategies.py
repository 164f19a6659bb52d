"""Best fold-mean accuracy each strategy finds on digits for one fixed budget.

    PYTHONPATH=$PWD python tests/benchmarks/bench_strategies.py [--trials 12] [--out DIR]

Every strategy searches the same MLP space with the same seed and budget through
`archsearch run`, with no scheduler (so each trial's value is its full-training value). Grid
cannot sample a budget from a continuous space, so it runs the 12-point grid of the same space
with lr on two values instead. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq
import yaml

from cluster.cli import main

STRATEGIES = ("grid", "random", "bayesian", "evolution", "tpe", "rl")

SPEC = {
    "name": "bench",
    "seed": 0,
    "data": {"dataset": "digits", "subset": 600},
    "model": {
        "family": "mlp",
        "depth": {"int": [1, 3]},
        "width": {"choice": [16, 64]},
        "activation": {"choice": ["relu", "tanh"]},
    },
    "optimizer": {"name": "adam", "lr": {"log": [1.0e-3, 3.0e-2]}, "batch_size": 64},
    "training": {"epochs": 3},
    "evaluation": {"folds": 2, "metric": "accuracy"},
    "search": {"trials": 12, "concurrency": 2},
}


def spec_for(strategy: str, trials: int) -> dict:
    spec = copy.deepcopy(SPEC)
    spec["name"] = f"bench-{strategy}"
    spec["search"].update(strategy=strategy, trials=trials)
    if strategy == "grid":
        # 3 depths x 2 widths x 2 lrs = 12 points; activation fixed.
        spec["model"]["activation"] = "relu"
        spec["optimizer"]["lr"] = {"choice": [3.0e-3, 3.0e-2]}
        del spec["search"]["trials"]
    return spec


def run(strategy: str, trials: int, out: Path) -> tuple[float, int, float]:
    path = out / f"{strategy}.yaml"
    path.write_text(yaml.safe_dump(spec_for(strategy, trials)))
    run_dir = out / strategy
    started = time.monotonic()
    code = main(["run", str(path), "--output", str(run_dir), "--quiet", "--no-export"])
    seconds = time.monotonic() - started
    if code != 0:
        raise SystemExit(f"{strategy}: archsearch run exited {code}")
    table = pq.read_table(run_dir / "trials").to_pandas()
    assert set(table["strategy"]) == {strategy}
    return float(table["accuracy_mean"].max()), len(table), seconds


def main_bench() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--strategies", nargs="*", default=list(STRATEGIES))
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="bench-strategies-"))
    out.mkdir(parents=True, exist_ok=True)

    rows = []
    for strategy in args.strategies:
        best, count, seconds = run(strategy, args.trials, out)
        rows.append(f"| {strategy} | {count} | {best:.4f} | {seconds:.0f} |")
        print(rows[-1], flush=True)
    print("\n| strategy | trials | best accuracy_mean | seconds (2 shared cores) |")
    print("|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main_bench()

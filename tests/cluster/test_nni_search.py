"""`archsearch run` with NNI's strategies and the new schedulers, on digits, on a real local Ray.

Each search is 4 tiny MLP trials of 2 epochs on 2 folds of 300 digits, without the refit; the
store must name the strategy and scheduler of every trial. About 30-60 s each on 2 shared
cores, mostly Ray's start and NNI's import.
"""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
import yaml

from cluster.cli import main
from tests.factories import digits_search_spec

pytestmark = pytest.mark.slow


def _spec(strategy: str, scheduler: str, **search) -> dict:
    spec = digits_search_spec(
        f"digits-{strategy}",
        data={"subset": 300},
        training={"epochs": 2},
        search={
            "strategy": strategy,
            "trials": 4,
            "scheduler": scheduler,
            "concurrency": 2,
            **search,
        },
    )
    spec["seed"] = 5
    return spec


@pytest.mark.parametrize(
    ("strategy", "scheduler", "search"),
    [
        ("evolution", "hyperband", {"population_size": 2, "sample_size": 1}),
        ("tpe", "median", {}),
        ("rl", "asha", {}),
    ],
)
def test_run_writes_every_trial_with_its_strategy_and_scheduler(
    tmp_path, local_ray, capsys, strategy: str, scheduler: str, search: dict
) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(_spec(strategy, scheduler, **search)))
    run_dir = tmp_path / "run"

    code = main(["run", str(path), "--output", str(run_dir), "--no-export"])
    captured = capsys.readouterr()
    assert code == 0, captured.out + captured.err

    trials = pq.read_table(run_dir / "trials").to_pandas()
    assert len(trials) == 4
    assert set(trials["strategy"]) == {strategy}
    assert set(trials["scheduler"]) == {scheduler}
    assert sorted(trials["trial_number"]) == [0, 1, 2, 3]
    configs = trials[["param.model.depth", "param.model.width", "param.optimizer.lr"]]
    assert not configs.duplicated().any()
    assert trials["accuracy_mean"].between(0, 1).all()
    # NNI's own log and import warnings stay off the console.
    for noise in ("nni.", "PyTorch version", "pkg_resources", "Gym"):
        assert noise not in captured.out + captured.err

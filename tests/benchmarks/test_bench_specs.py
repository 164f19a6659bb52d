"""The specs the benchmarks run are valid for every scheduler and strategy they loop over."""

from __future__ import annotations

import pytest

from cluster.spec import parse_spec
from nas.schedulers import SCHEDULERS
from tests.benchmarks import bench_early_stopping


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_early_stopping_spec_is_valid_for_every_scheduler(scheduler: str) -> None:
    settings = bench_early_stopping.Settings()
    spec = parse_spec(bench_early_stopping.spec(settings, scheduler=scheduler))
    assert spec.search.scheduler == scheduler
    assert spec.search.strategy == "random"

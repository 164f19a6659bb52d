"""Pareto ranks and crowding distances, checked by hand and against BoTorch's front."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nas.pareto import crowding_distances, pareto_front, pareto_ranks


def test_ranks_peel_fronts_in_order() -> None:
    # (accuracy: max, latency: min)
    values = [
        [0.90, 2.0],  # front: most accurate
        [0.80, 1.0],  # front: fastest
        [0.85, 1.5],  # front: in between
        [0.80, 2.0],  # dominated by [0.90, 2.0] and [0.85, 1.5] -> rank 1
        [0.70, 3.0],  # dominated by everything above it -> rank 2
        [0.90, 2.0],  # a tie with the first: neither dominates the other
    ]
    assert pareto_ranks(values, ["max", "min"]) == [0, 0, 0, 1, 2, 0]
    assert pareto_front(values, ["max", "min"]) == [0, 1, 2, 5]


def test_modes_turn_the_order_around() -> None:
    values = [[1.0, 1.0], [2.0, 2.0]]
    assert pareto_ranks(values, ["min", "min"]) == [0, 1]
    assert pareto_ranks(values, ["max", "max"]) == [1, 0]
    assert pareto_ranks(values, ["max", "min"]) == [0, 0]


def test_rows_with_missing_or_nan_values_get_no_rank_and_dominate_nothing() -> None:
    values = [[0.5, 1.0], [math.nan, 0.1], [None, 0.1], [0.4, 2.0]]
    assert pareto_ranks(values, ["max", "min"]) == [0, None, None, 1]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_front_matches_botorch(seed: int) -> None:
    import torch
    from botorch.utils.multi_objective.pareto import is_non_dominated

    rng = np.random.default_rng(seed)
    values = rng.integers(0, 6, size=(40, 3)).astype(float)  # ties on purpose
    modes = ["max", "min", "max"]

    ours = pareto_front(values.tolist(), modes)

    # BoTorch maximises every objective and keeps duplicates with deduplicate=False.
    signs = torch.tensor([1.0, -1.0, 1.0], dtype=torch.float64)
    theirs = is_non_dominated(torch.tensor(values) * signs, deduplicate=False)
    assert ours == torch.nonzero(theirs).flatten().tolist()


def test_bad_modes_and_ragged_rows_are_refused() -> None:
    with pytest.raises(ValueError, match="modes: each must be max or min, got 'up'"):
        pareto_ranks([[1.0]], ["up"])
    with pytest.raises(ValueError, match="values: row 1 has 1 values but there are 2"):
        pareto_ranks([[1.0, 2.0], [1.0]], ["max", "min"])


def test_crowding_distance_keeps_the_extremes_and_measures_gaps() -> None:
    # One front of four, spread unevenly along a line.
    values = [[0.0, 4.0], [1.0, 3.0], [3.0, 1.0], [4.0, 0.0]]
    distances = crowding_distances(values, ["max", "min"])
    assert distances[0] == distances[3] == math.inf
    # Each inner point: (3 - 0) / 4 per objective, twice.
    assert distances[1] == pytest.approx(1.5)
    assert distances[2] == pytest.approx(1.5)
    assert crowding_distances([[1.0, 1.0], [2.0, 0.0]], ["max", "min"]) == [math.inf] * 2

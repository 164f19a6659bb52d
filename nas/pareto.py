"""Pareto dominance over several objectives: non-dominated ranks and crowding distances.

Candidate `a` dominates `b` when `a` is at least as good in every objective and better in one.
Rank 0 is the Pareto front (dominated by no candidate); rank 1 is the front once rank 0 is set
aside, and so on (NSGA-II's non-dominated sorting). Within a rank, the crowding distance says
how isolated a candidate is, so a selection can keep the front spread out.

A candidate with a missing or non-finite value has no rank (None): it neither dominates nor
is compared.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def pareto_ranks(
    values: Sequence[Sequence[float | None]], modes: Sequence[str]
) -> list[int | None]:
    """The non-dominated rank of each candidate; 0 is the Pareto front.

    Args:
        values: One row per candidate, one value per objective `(N, M)`.
        modes: `max` or `min` for each of the M objectives.

    Returns:
        N ranks; None for a row holding None or a non-finite value.

    Raises:
        ValueError: A mode is not max or min, or a row's length differs from len(modes).
    """
    signs = _signs(modes)
    ranks: list[int | None] = [None] * len(values)
    scored = _minimised(values, signs)
    remaining = [i for i, row in enumerate(scored) if row is not None]
    rank = 0
    while remaining:
        points = np.array([scored[i] for i in remaining])  # (R, M), every objective minimised
        front = [
            i for i, dominated in zip(remaining, _dominated(points), strict=True) if not dominated
        ]
        for i in front:
            ranks[i] = rank
        taken = set(front)
        remaining = [i for i in remaining if i not in taken]
        rank += 1
    return ranks


def pareto_front(values: Sequence[Sequence[float | None]], modes: Sequence[str]) -> list[int]:
    """Indices of the candidates no other candidate dominates, in input order."""
    return [i for i, rank in enumerate(pareto_ranks(values, modes)) if rank == 0]


def crowding_distances(values: Sequence[Sequence[float]], modes: Sequence[str]) -> list[float]:
    """NSGA-II's crowding distance of each candidate within one rank `(N, M)`.

    The sum over objectives of the gap between each candidate's two neighbours, divided by the
    objective's range; the extremes of each objective get infinity, so they are kept first.
    """
    _signs(modes)
    points = np.asarray(values, dtype=float).reshape(len(values), len(modes))
    distances = np.zeros(len(points))
    if len(points) <= 2:
        return [math.inf] * len(points)
    for m in range(points.shape[1]):
        order = np.argsort(points[:, m], kind="stable")
        column = points[order, m]
        spread = column[-1] - column[0]
        distances[order[0]] = distances[order[-1]] = math.inf
        if spread > 0:
            distances[order[1:-1]] += (column[2:] - column[:-2]) / spread
    return distances.tolist()


def _signs(modes: Sequence[str]) -> list[float]:
    for mode in modes:
        if mode not in ("max", "min"):
            raise ValueError(f"modes: each must be max or min, got {mode!r}")
    # Every objective turned into one to minimise.
    return [-1.0 if mode == "max" else 1.0 for mode in modes]


def _minimised(
    values: Sequence[Sequence[float | None]], signs: list[float]
) -> list[list[float] | None]:
    rows: list[list[float] | None] = []
    for i, row in enumerate(values):
        if len(row) != len(signs):
            raise ValueError(
                f"values: row {i} has {len(row)} values but there are {len(signs)} objectives"
            )
        finite = all(v is not None and math.isfinite(v) for v in row)
        rows.append([s * float(v) for s, v in zip(signs, row, strict=True)] if finite else None)
    return rows


def _dominated(points: np.ndarray) -> np.ndarray:
    """Whether each row of `points` `(R, M)` (all minimised) is dominated by another row."""
    no_worse = (points[:, None, :] <= points[None, :, :]).all(axis=2)  # (R, R): i no worse than j
    better = (points[:, None, :] < points[None, :, :]).any(axis=2)
    dominates = no_worse & better  # dominates[i, j]: i dominates j
    return dominates.any(axis=0)

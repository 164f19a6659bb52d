"""What a search optimises and what it must respect: objectives, costs and cost bounds.

An objective is a metric, scored by cross-validation (`accuracy`, reported as its fold mean
`accuracy_mean`), or a cost, measured once per candidate before it trains (`params_count`,
`macs`, `latency_ms`; see `trainers.cost`). A bound on a cost (`max_params`) makes a
candidate over it infeasible: it is recorded but never trained.

`final_value` reads an objective from a trial's last result for the strategies, which are never
handed a NaN: a result without a finite value is a failure, with its reason.

Pure Python, so the spec can import it without torch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# Costs every trial reports and the store keeps, in the order of its columns.
COSTS = ("params_count", "macs", "latency_ms")

# The spec's `search.constraints` keys and the cost each bounds from above.
BOUNDS = {"max_params": "params_count", "max_macs": "macs", "max_latency_ms": "latency_ms"}

# Set (true) in the last report of a trial whose costs exceed a bound; it trained nothing.
INFEASIBLE_KEY = "infeasible"


@dataclass(frozen=True)
class Objective:
    """One quantity to optimise: a metric or cost name and `max` or `min`."""

    name: str
    mode: str

    @property
    def is_cost(self) -> bool:
        return self.name in COSTS

    @property
    def key(self) -> str:
        """The result key and trials column holding it: a metric's fold mean, or the cost."""
        return self.name if self.is_cost else f"{self.name}_mean"


def violations(costs: Mapping[str, float], bounds: Mapping[str, float]) -> list[str]:
    """One phrase per exceeded bound, e.g. `params_count 310000 > max_params 200000`.

    `bounds` maps spec keys (`max_params`) to their limits; a cost equal to its bound is
    within it.
    """
    exceeded = []
    for bound, limit in bounds.items():
        cost = BOUNDS[bound]
        value = costs[cost]
        if value > limit:
            shown = f"{value:.3g}" if isinstance(value, float) else str(value)
            exceeded.append(f"{cost} {shown} > {bound} {limit}")
    return exceeded


def final_value(
    result: Mapping[str, Any] | None, *, metric: str, error: bool
) -> tuple[float, str | None]:
    """The metric from a trial's last result, or NaN and the reason it cannot be used.

    A strategy is never handed the NaN: it is told the trial failed, with the reason.
    """
    if error:
        return math.nan, "the trial raised an error"
    if result is None or metric not in result:
        return math.nan, f"its last result has no {metric}"

    raw = result[metric]
    try:
        value = math.nan if isinstance(raw, bool) else float(raw)
    except (TypeError, ValueError):
        value = math.nan
    if not math.isfinite(value):
        return math.nan, f"{metric} is {raw!r}, not a finite number"
    return value, None

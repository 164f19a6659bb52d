"""The objective a searcher learns from: a trial's last reported fold mean, or why there is none."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any


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

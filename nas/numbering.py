"""A stable number for each trial of a search, whatever the strategy.

Trial seeds are derived from the search seed and this number, so the same spec and seed give
the same trials. Tune names the trials of its variant generator `<experiment>_<00007>`; a
searcher's trials get random ids instead, so searchers put the number in the config.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# Config key under which a searcher passes the trial's number; not a searched parameter.
TRIAL_NUMBER_KEY = "trial_number"


def trial_number(config: Mapping[str, Any], trial_id: str) -> int:
    """The number a searcher put in `config`, else the variant generator's id suffix."""
    if TRIAL_NUMBER_KEY in config:
        return int(config[TRIAL_NUMBER_KEY])

    suffix = trial_id.rsplit("_", 1)[-1]
    if not suffix.isdigit():
        raise ValueError(
            f"trial {trial_id!r} has no number: its id has no numeric suffix and its config no "
            f"{TRIAL_NUMBER_KEY!r}; a new strategy must put one in the configs it suggests"
        )
    return int(suffix)


@dataclass(frozen=True)
class FinishedTrial:
    """A trial an earlier run of the same search already finished and recorded.

    A resumed search does not run it again; a strategy that learns from results (Bayesian) is
    told `value` if the run that recorded the trial stopped before telling it.

    Attributes:
        number: The trial's number.
        value: The objective of the trial's last report; NaN when it failed or diverged.
        stopped_early: A scheduler stopped it before its last epoch.
        others: Its other recorded values by result key (costs, other metrics' fold means),
            for strategies with several objectives or cost bounds.
        infeasible: Its costs exceeded a bound, so it never trained.
    """

    number: int
    value: float
    stopped_early: bool = False
    others: Mapping[str, float] = field(default_factory=dict)
    infeasible: bool = False

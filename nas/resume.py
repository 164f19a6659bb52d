"""Grid and random search that skip the trials an earlier run of the same search finished.

A resumed grid or random search runs Tune's variant generator again with the same seed, so it
draws the same configs under the same trial numbers as the first run, and passes over the
numbers already in the results store. The trials left (never started, or in flight when the
driver died) run with exactly the configs they would have had.
"""

from __future__ import annotations

from collections.abc import Collection

from ray.tune.experiment import Trial
from ray.tune.search.basic_variant import BasicVariantGenerator

from nas.numbering import trial_number


class SkippingVariantGenerator(BasicVariantGenerator):
    """Tune's BasicVariantGenerator, minus the trials whose numbers are in `skip`."""

    def __init__(self, *, skip: Collection[int], random_state: int, max_concurrent: int) -> None:
        super().__init__(random_state=random_state, max_concurrent=max_concurrent)
        self._skip = frozenset(skip)

    def next_trial(self) -> Trial | None:
        while True:
            trial = super().next_trial()
            if trial is None or trial_number(trial.config, trial.trial_id) not in self._skip:
                return trial
            # Drawn like any other, so the draws after it are the first run's; then freed at
            # once, so it takes no place among the trials running at a time.
            self.on_trial_complete(trial.trial_id)

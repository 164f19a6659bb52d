"""Ask-and-tell over a search plan: run any strategy's suggestions in-process, without Ray trials.

The driver hands a `SearchPlan` to `tune.Tuner`, which runs every trial as a Ray task. Code
that scores a config in microseconds (a lookup in a tabular benchmark, a test) can instead ask
the plan's search algorithm for one config at a time and tell it the result, the way Tune's
controller does, so hundreds of searches run in seconds:

    search = AskTell(flat_parameters({"model.depth": IntRange(1, 4)}), strategy="random",
                     trials=10, metric="acc", mode="max", seed=0)
    while (asked := search.ask()) is not None:
        trial_id, sample = asked
        search.tell(trial_id, {"acc": score(sample)})

Searchers (Bayesian, and any strategy built on Tune's `Searcher`) are asked through
`suggest`; Tune's variant generator (grid, random) through `next_trial`, which makes Tune
`Trial` objects but starts nothing.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from nas.strategies import build_search, sampled_values
from search_spaces.domains import Domain
from search_spaces.errors import SpecError
from search_spaces.parameters import SEARCHABLE_SECTIONS, Parameter

if TYPE_CHECKING:
    from nas.strategies import SearchPlan

__all__ = ["AskTell", "flat_parameters"]

# Tune calls suggest again when a searcher answers None. With no trial in flight, a searcher
# still answering None after this long is stuck, not thinking.
_SUGGESTION_TIMEOUT_S = 60.0


def flat_parameters(domains: Mapping[str, Domain]) -> list[Parameter]:
    """Parameters for `build_search` from a flat `{"model.name": Domain}` mapping.

    Names must read `section.field` with a searchable section, since that is how
    `sampled_values` tells parameters from other keys of a Tune config.

    Raises:
        SpecError: a name lacks a searchable section.
    """
    parameters = []
    for name, domain in domains.items():
        section, dot, field = name.partition(".")
        if not dot or not field or section not in SEARCHABLE_SECTIONS:
            raise SpecError(
                f"parameter {name!r}: names read section.field with a section among "
                f"{', '.join(SEARCHABLE_SECTIONS)}; write e.g. model.{name}"
            )
        parameters.append(Parameter(name, domain))
    return parameters


class AskTell:
    """One search of a strategy, asked for one config at a time and told each result.

    Args:
        parameters: Flat parameters, as for `build_search`.
        strategy: A name in `nas.strategies.STRATEGIES`.
        trials: How many configs to ask for; None as in `build_search`.
        metric: The result key the strategy optimises.
        mode: "min" or "max".
        seed: Seeds the strategy.
    """

    def __init__(
        self,
        parameters: list[Parameter],
        *,
        strategy: str,
        trials: int | None,
        metric: str,
        mode: str,
        seed: int,
    ) -> None:
        from ray.tune.search import Searcher

        # One trial in flight at a time: each suggestion sees every earlier result.
        self.plan: SearchPlan = build_search(
            parameters,
            strategy=strategy,
            trials=trials,
            metric=metric,
            mode=mode,
            seed=seed,
            max_concurrent=1,
        )
        self._alg = self.plan.search_alg
        self._metric = metric
        self._asked = 0
        self._is_searcher = isinstance(self._alg, Searcher)
        if self._is_searcher:
            self._alg.set_search_properties(metric, mode, self.plan.param_space)
        else:
            self._alg.add_configurations(
                {
                    "asktell": {
                        "run": _never_run,
                        "config": self.plan.param_space,
                        "num_samples": self.plan.num_samples,
                    }
                }
            )

    @property
    def total_trials(self) -> int:
        """How many configs the plan will hand out."""
        return self.plan.total_trials

    def ask(self) -> tuple[str, dict[str, Any]] | None:
        """The next trial id and its flat sample, or None when the search is done."""
        if self._asked >= self.plan.total_trials:
            return None
        if self._is_searcher:
            trial_id = f"asktell_{self._asked:05d}"
            # A strategy thinking in its own thread (the NNI bridge) answers None until its
            # next proposal is ready, so None is waited out, up to a limit.
            deadline = time.monotonic() + _SUGGESTION_TIMEOUT_S
            while (config := self._alg.suggest(trial_id)) is None:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"the strategy suggested nothing for {_SUGGESTION_TIMEOUT_S:g} s "
                        "with no trial in flight"
                    )
                time.sleep(0.002)
            if config == self._alg.FINISHED:
                return None
        else:
            trial = self._alg.next_trial()
            if trial is None:
                return None
            trial_id, config = trial.trial_id, trial.config
        self._asked += 1
        return trial_id, sampled_values(config)

    def tell(self, trial_id: str, result: Mapping[str, Any]) -> None:
        """Report the final result of a trial `ask` handed out."""
        self._alg.on_trial_complete(trial_id, dict(result))

    def close(self) -> None:
        """End the strategy's own thread, if it has one (the NNI bridge's)."""
        close = getattr(self._alg, "close", None)
        if callable(close):
            close()

    def __enter__(self) -> AskTell:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _never_run(config: dict[str, Any]) -> None:
    raise RuntimeError("AskTell only draws configs; no trial runs this")

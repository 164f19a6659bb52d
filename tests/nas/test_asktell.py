"""AskTell: strategies asked for configs in-process, without Ray trials (a few seconds)."""

from __future__ import annotations

import pytest

from nas.asktell import AskTell, flat_parameters
from search_spaces.domains import Choice, IntRange, LogRange
from search_spaces.errors import SpecError

DOMAINS = {
    "model.depth": IntRange(1, 3),
    "model.activation": Choice(("relu", "tanh")),
    "optimizer.lr": LogRange(1e-4, 1e-1),
}


def _drain(search: AskTell, score) -> list[dict]:
    seen = []
    while (asked := search.ask()) is not None:
        trial_id, sample = asked
        seen.append(sample)
        search.tell(trial_id, {"acc": score(sample)})
    return seen


def test_random_hands_out_trials_samples_within_their_domains():
    search = AskTell(
        flat_parameters(DOMAINS), strategy="random", trials=7, metric="acc", mode="max", seed=3
    )
    seen = _drain(search, lambda s: float(s["model.depth"]))

    assert len(seen) == search.total_trials == 7
    for sample in seen:
        assert set(sample) == set(DOMAINS)
        assert sample["model.depth"] in (1, 2, 3)
        assert sample["model.activation"] in ("relu", "tanh")
        assert 1e-4 <= sample["optimizer.lr"] <= 1e-1
    # Seeded: a second search with the same seed asks the same configs.
    again = AskTell(
        flat_parameters(DOMAINS), strategy="random", trials=7, metric="acc", mode="max", seed=3
    )
    assert _drain(again, lambda s: 0.0) == seen


def test_grid_asks_every_point_once_then_stops():
    domains = {"model.depth": IntRange(1, 3), "model.activation": Choice(("relu", "tanh"))}
    search = AskTell(
        flat_parameters(domains), strategy="grid", trials=None, metric="acc", mode="max", seed=0
    )
    seen = _drain(search, lambda s: 0.0)
    assert sorted((s["model.depth"], s["model.activation"]) for s in seen) == [
        (d, a) for d in (1, 2, 3) for a in ("relu", "tanh")
    ]
    assert search.ask() is None


def test_bayesian_is_driven_through_its_searcher():
    search = AskTell(
        flat_parameters({"model.depth": IntRange(1, 6)}),
        strategy="bayesian",
        trials=4,
        metric="acc",
        mode="max",
        seed=0,
    )
    seen = _drain(search, lambda s: -abs(s["model.depth"] - 4))
    assert len(seen) == 4
    assert all(1 <= s["model.depth"] <= 6 for s in seen)


@pytest.mark.parametrize("name", ["depth", "data.depth", "model."])
def test_flat_parameters_refuses_names_without_a_searchable_section(name):
    with pytest.raises(
        SpecError, match=rf"parameter '{name}'.*section\.field.*write e\.g\. model"
    ):
        flat_parameters({name: IntRange(1, 2)})


@pytest.mark.parametrize("strategy", ["evolution", "tpe"])
def test_nni_strategies_thinking_in_their_own_thread_are_waited_for(strategy):
    with AskTell(
        flat_parameters(DOMAINS), strategy=strategy, trials=8, metric="acc", mode="max", seed=1
    ) as search:
        seen = _drain(search, lambda s: float(s["model.depth"]))

    assert len(seen) == 8
    keys = {tuple(sorted(sample.items())) for sample in seen}
    assert len(keys) == 8  # the bridge never hands out a config twice

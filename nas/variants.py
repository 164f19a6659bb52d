"""Grid and random search: parameters as Ray Tune's own search space.

Both strategies run on Tune's `BasicVariantGenerator`, which samples from a `param_space` of
Tune domains. Random search gives every searched parameter its own Tune domain. Grid search
enumerates the points itself, so that a parameter switched off by its condition (momentum
under Adam) yields one point instead of one per value, and hands Tune the finished list under
a single key, `GRID_KEY`. Ray is imported where it is used, so that reading a spec stays fast.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Collection, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from search_spaces.domains import (
    Choice,
    Domain,
    Fixed,
    FloatRange,
    IntRange,
    LogRange,
    domain_values,
    show_value,
)
from search_spaces.errors import SpecError
from search_spaces.parameters import Parameter

if TYPE_CHECKING:
    from ray.tune.search.basic_variant import BasicVariantGenerator
    from ray.tune.search.sample import Domain as TuneDomain

# The Tune config key under which grid search hands each trial its whole point.
GRID_KEY = "grid_point"

# Past this many raw combinations the grid is refused before it is enumerated.
MAX_GRID_POINTS = 1_000_000


def variant_generator(
    *, seed: int, max_concurrent: int, skip: Collection[int] = ()
) -> BasicVariantGenerator:
    """Tune's generator for grid and random search, drawing from its own seeded generator.

    Trials whose numbers are in `skip` (done by an earlier run) are drawn but not run.
    """
    from ray.tune.search.basic_variant import BasicVariantGenerator

    if not skip:
        return BasicVariantGenerator(random_state=seed, max_concurrent=max(0, max_concurrent))

    from nas.resume import SkippingVariantGenerator

    return SkippingVariantGenerator(
        skip=skip, random_state=seed, max_concurrent=max(0, max_concurrent)
    )


def tune_domain(domain: Domain) -> TuneDomain:
    """The Tune domain that samples the same values as `domain`."""
    from ray import tune

    if isinstance(domain, IntRange):
        # Tune's integer upper bound is exclusive; ours is included.
        return tune.randint(domain.low, domain.high + 1)
    if isinstance(domain, FloatRange):
        return tune.uniform(domain.low, domain.high)
    if isinstance(domain, LogRange):
        return tune.loguniform(domain.low, domain.high)
    if isinstance(domain, Choice):
        return tune.choice(list(domain.values))
    raise TypeError(f"a fixed value ({domain!r}) has no Tune domain; only searched ones do")


def random_space(parameters: Iterable[Parameter]) -> dict[str, TuneDomain]:
    """param_space for random search: one Tune domain per searched parameter.

    Conditioned parameters are sampled always; `parameters.resolve` discards the ones whose
    condition does not hold, which costs random search nothing.
    """
    return {p.name: tune_domain(p.domain) for p in parameters if p.searched}


def grid_points(parameters: Sequence[Parameter]) -> list[dict[str, Any]]:
    """Every distinct combination of the searched parameters' values, in product order.

    A conditioned parameter whose condition does not hold at a point takes its first value, so
    points that differ only in parameters that have no effect collapse into one.
    """
    searched = [p for p in parameters if p.searched]
    fixed = {p.name: p.domain.value for p in parameters if isinstance(p.domain, Fixed)}
    value_lists = [_grid_values(p) for p in searched]

    size = math.prod(len(values) for values in value_lists)
    if size > MAX_GRID_POINTS:
        raise SpecError(
            f"search.strategy: grid would enumerate {size} combinations, more than "
            f"{MAX_GRID_POINTS}; narrow the ranges or use strategy random"
        )

    points: list[dict[str, Any]] = []
    seen: set[tuple[str, ...]] = set()
    for combination in itertools.product(*value_lists):
        point = dict(zip([p.name for p in searched], combination, strict=True))
        context = {**fixed, **point}
        for parameter, values in zip(searched, value_lists, strict=True):
            if parameter.condition is not None and not parameter.condition.holds(context):
                point[parameter.name] = values[0]

        # repr tells 1 from True and 1.0, which compare equal but are different settings.
        key = tuple(f"{name}={value!r}" for name, value in point.items())
        if key not in seen:
            seen.add(key)
            points.append(point)
    return points


def _grid_values(parameter: Parameter) -> tuple[Any, ...]:
    values = domain_values(parameter.domain)
    if values is None:
        kind = "log" if isinstance(parameter.domain, LogRange) else "float"
        shown = show_value({kind: [parameter.domain.low, parameter.domain.high]})
        raise SpecError(
            f"search.strategy: grid cannot enumerate {parameter.name}, a continuous range "
            f"{shown}; list values with {{choice: [...]}} or use strategy random"
        )
    return values

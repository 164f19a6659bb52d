"""Flat, named parameters: the form every strategy searches over.

A spec's searchable sections (`model`, `regularization`, `optimizer`) are nested mappings of
field -> Domain. Strategies see them flattened to dotted names (`model.depth`, `optimizer.lr`),
each with its domain and, for a few, a condition saying when the parameter matters at all.
`resolve` turns one flat sample back into the nested config a trainer builds from.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from search_spaces.domains import Domain, Fixed, domain_values, is_searched

SEARCHABLE_SECTIONS = ("model", "regularization", "optimizer")


@dataclass(frozen=True)
class Condition:
    """`parent` must take one of `values` for the conditioned parameter to have any effect."""

    parent: str
    values: tuple[Any, ...]

    def holds(self, config: Mapping[str, Any]) -> bool:
        return config.get(self.parent) in self.values


# Parameters that only some choices of another parameter use. Adam has no momentum term and
# only SGD implements Nesterov's variant; sampling them otherwise would waste a dimension.
CONDITIONS: dict[str, Condition] = {
    "optimizer.momentum": Condition("optimizer.name", ("sgd", "rmsprop")),
    "optimizer.nesterov": Condition("optimizer.name", ("sgd",)),
}


@dataclass(frozen=True)
class Parameter:
    """One named dimension of the search space."""

    name: str
    domain: Domain
    condition: Condition | None = None

    @property
    def searched(self) -> bool:
        return is_searched(self.domain)


def flatten(sections: Mapping[str, Mapping[str, Domain]]) -> list[Parameter]:
    """Every parameter of the searchable sections, fixed ones included, in spec order."""
    parameters = []
    for section in SEARCHABLE_SECTIONS:
        for field, domain in sections.get(section, {}).items():
            name = f"{section}.{field}"
            parameters.append(Parameter(name, domain, CONDITIONS.get(name)))
    return parameters


def searched(parameters: Iterable[Parameter]) -> list[Parameter]:
    """Only the parameters a strategy has to choose."""
    return [p for p in parameters if p.searched]


def check_conditions(parameters: Iterable[Parameter]) -> None:
    """Refuse a searched parameter that no value of its parent can switch on."""
    by_name = {p.name: p for p in parameters}
    for parameter in by_name.values():
        condition = parameter.condition
        if condition is None or not parameter.searched or condition.parent not in by_name:
            continue

        parent_values = domain_values(by_name[condition.parent].domain) or ()
        if not any(value in condition.values for value in parent_values):
            raise ValueError(
                f"{parameter.name}: is searched but {condition.parent} is never one of "
                f"{', '.join(map(str, condition.values))}, so it has no effect; "
                f"remove {parameter.name} or add one of those to {condition.parent}"
            )


def resolve(parameters: Iterable[Parameter], sample: Mapping[str, Any]) -> dict[str, dict]:
    """Nested config for one candidate: fixed values filled in, inactive parameters set to None.

    `sample` maps searched parameter names to values; a name missing from it is an error in
    the strategy, not in the user's spec.
    """
    flat: dict[str, Any] = {}
    parameters = list(parameters)
    for parameter in parameters:
        if isinstance(parameter.domain, Fixed):
            flat[parameter.name] = parameter.domain.value
        elif parameter.name in sample:
            flat[parameter.name] = sample[parameter.name]
        else:
            raise KeyError(f"the strategy did not sample {parameter.name}")

    for parameter in parameters:
        if parameter.condition is not None and not parameter.condition.holds(flat):
            flat[parameter.name] = None

    nested: dict[str, dict] = {section: {} for section in SEARCHABLE_SECTIONS}
    for name, value in flat.items():
        section, field = name.split(".", 1)
        nested[section][field] = value
    return nested


def flat_values(nested: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Inverse of the nesting in `resolve`: {'model.depth': 3, ...}."""
    return {
        f"{section}.{field}": value
        for section, fields in nested.items()
        for field, value in fields.items()
    }


def value_kind(domain: Domain) -> type:
    """The Python type every value of the domain has (bool, int, float or str)."""
    values = domain_values(domain)
    if values is None:
        return float
    kinds = {type(v) for v in values if v is not None}
    if kinds == {bool}:
        return bool
    if kinds == {int}:
        return int
    if kinds and kinds <= {int, float}:
        return float
    # Strings, or a mix of kinds: kept as text so one column type holds every value.
    return str

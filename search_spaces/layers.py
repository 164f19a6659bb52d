"""Building blocks shared by the model families, and the checks on their settings.

Every module here works with `torch.jit.script`: forwards are typed, containers are
`nn.ModuleList` / `nn.Sequential`, and nothing is built from lambdas or `**kwargs`.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from search_spaces.errors import SpecError

_ACTIVATION_TYPES: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "selu": nn.SELU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
}

ACTIVATIONS: tuple[str, ...] = tuple(_ACTIVATION_TYPES)
CONNECTIVITIES: tuple[str, ...] = ("plain", "residual", "dense")
POOLINGS: tuple[str, ...] = ("max", "avg")


def make_activation(name: str) -> nn.Module:
    """A fresh activation module for one of `ACTIVATIONS`."""
    check_choice("model.activation", name, ACTIVATIONS)
    return _ACTIVATION_TYPES[name]()


class Residual(nn.Module):
    """`shortcut(x) + block(x)`: a block whose output is added to its (projected) input.

    Args:
        block: the transform; its output must have the shape of `shortcut(x)`.
        shortcut: the skip path, `nn.Identity()` when the block keeps the shape, or a
            projection (a 1x1 convolution, a linear map) when it changes the width.
    """

    def __init__(self, block: nn.Module, shortcut: nn.Module) -> None:
        super().__init__()
        self.block = block
        self.shortcut = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.block(x)


class DenseConcat(nn.Module):
    """DenseNet-style connectivity: each layer sees every earlier output, concatenated.

    Layer `i` receives `cat([x, y_0, ..., y_{i-1}], dim=1)` and the module returns
    `cat([x, y_0, ..., y_{n-1}], dim=1)`. Dim 1 is the feature axis of both `(B, F)` and
    `(B, C, H, W)` tensors, so the same module serves the MLP and the CNN; the caller sizes
    each layer's input as `in_width + i * growth`.
    """

    def __init__(self, layers: Sequence[nn.Module]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features: list[torch.Tensor] = [x]
        for layer in self.layers:
            features.append(layer(torch.cat(features, dim=1)))
        return torch.cat(features, dim=1)


def check_choice(field: str, value: Any, options: Sequence[str]) -> str:
    """Return `value` if it is one of `options`, else raise a one-line SpecError."""
    if not isinstance(value, str) or value not in options:
        raise SpecError(
            f"{field}: {value!r} is not a valid option; choose one of {', '.join(options)}"
        )
    return value


def check_int(field: str, value: Any, *, minimum: int = 1) -> int:
    """Return `value` as an int if it is an integer >= `minimum`, else raise a SpecError.

    Integers from numpy (as some searchers hand them out) are accepted; bools and floats,
    even integral ones, are not, since they usually mean a field got the wrong domain.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise SpecError(
            f"{field}: expected an integer >= {minimum}, got {value!r} "
            f"({type(value).__name__}); give a whole number"
        )
    if value < minimum:
        raise SpecError(f"{field}: {value} must be >= {minimum}")
    return int(value)


def check_bool(field: str, value: Any) -> bool:
    """Return `value` as a bool if it is one (numpy bools included), else raise a SpecError."""
    # numpy's bool is not a subclass of Python's, but searchers may hand one out
    numpy_bool = type(value).__module__ == "numpy" and type(value).__name__ in ("bool", "bool_")
    if not (isinstance(value, bool) or numpy_bool):
        raise SpecError(f"{field}: expected true or false, got {value!r}")
    return bool(value)


def check_dropout(value: Any) -> float:
    """Return the dropout probability as a float if it lies in [0, 1), else raise a SpecError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value < 1:
        raise SpecError(
            f"regularization.dropout: {value!r} must be a probability in [0, 1); "
            "use 0 for no dropout"
        )
    return float(value)

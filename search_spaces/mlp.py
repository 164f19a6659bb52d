"""The "mlp" family: fully connected networks over flattened inputs.

A hidden layer is Linear -> (BatchNorm1d) -> activation -> Dropout. The `connectivity`
decides how `depth` of them are wired:

- plain: one after the other; the first takes the flattened input.
- residual: the input is projected once to `width` by a Linear, then each hidden layer
  computes `x + f(x)`.
- dense: the input is projected once to `width`; hidden layer `i` sees the concatenation of
  the projection and all earlier hidden outputs (`width * (i + 1)` features), and the head
  sees all of them (`width * (depth + 1)` features).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from search_spaces.layers import (
    ACTIVATIONS,
    CONNECTIVITIES,
    DenseConcat,
    Residual,
    check_bool,
    check_choice,
    check_dropout,
    check_int,
    make_activation,
)


class MLP(nn.Module):
    """Flatten, an optional input projection, the hidden layers, and a linear head.

    Maps `(B, *input_shape)` to `(B, n_outputs)`: logits for classification, one value per
    output for regression.
    """

    def __init__(self, *, stem: nn.Module, body: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.stem = stem
        self.body = body
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)  # (B, F)
        x = self.stem(x)
        x = self.body(x)
        return self.head(x)  # (B, n_outputs)


def hidden_layer(
    in_features: int, out_features: int, *, activation: str, batch_norm: bool, dropout: float
) -> nn.Sequential:
    """Linear -> (BatchNorm1d) -> activation -> Dropout, mapping `(B, in)` to `(B, out)`."""
    # A bias right before batch norm is cancelled by its mean subtraction.
    layers: list[nn.Module] = [nn.Linear(in_features, out_features, bias=not batch_norm)]
    if batch_norm:
        layers.append(nn.BatchNorm1d(out_features))
    layers.append(make_activation(activation))
    layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


def build_mlp(
    *,
    input_shape: tuple[int, ...],
    n_outputs: int,
    dropout: float,
    depth: int,
    width: int,
    activation: str,
    connectivity: str,
    batch_norm: bool = False,
) -> MLP:
    """Build one MLP of the search space.

    Args:
        input_shape: shape of one example without the batch axis; it is flattened.
        n_outputs: classes for classification, 1 (or targets) for regression.
        dropout: probability after every hidden activation.
        depth: number of hidden layers, >= 1.
        width: units of every hidden layer.
        activation: one of `ACTIVATIONS`.
        connectivity: one of `CONNECTIVITIES`.
        batch_norm: whether each hidden Linear is followed by BatchNorm1d.

    Raises:
        SpecError: when a setting is out of range or not a known option.
    """
    depth = check_int("model.depth", depth)
    width = check_int("model.width", width)
    check_choice("model.activation", activation, ACTIVATIONS)
    check_choice("model.connectivity", connectivity, CONNECTIVITIES)
    batch_norm = check_bool("model.batch_norm", batch_norm)
    dropout = check_dropout(dropout)
    n_outputs = check_int("n_outputs", n_outputs)
    in_features = math.prod(input_shape)

    def layer(n_in: int) -> nn.Sequential:
        return hidden_layer(
            n_in, width, activation=activation, batch_norm=batch_norm, dropout=dropout
        )

    if connectivity == "plain":
        stem: nn.Module = nn.Identity()
        body: nn.Module = nn.Sequential(
            *[layer(in_features if i == 0 else width) for i in range(depth)]
        )
        head_features = width
    elif connectivity == "residual":
        stem = nn.Linear(in_features, width)
        body = nn.Sequential(*[Residual(layer(width), nn.Identity()) for _ in range(depth)])
        head_features = width
    else:
        stem = nn.Linear(in_features, width)
        body = DenseConcat([layer(width * (i + 1)) for i in range(depth)])
        head_features = width * (depth + 1)

    return MLP(stem=stem, body=body, head=nn.Linear(head_features, n_outputs))

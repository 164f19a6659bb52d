"""The "cnn" family: convolutional networks over images of shape (C, H, W).

The network is `depth` stages followed by a small head. Stage `s` works at
`channels * 2**s` channels and holds `convs_per_stage` conv layers, each
Conv2d(k, same padding) -> (BatchNorm2d) -> activation, wired by `connectivity`:

- plain: one after the other.
- residual: each conv output is added to its input, passed through a 1x1 projection when the
  channel count changes (the first conv of a stage).
- dense: each conv sees the concatenation of the stage input and all earlier conv outputs of
  the stage; a 1x1 conv layer then maps the concatenation back to the stage width.

Each stage ends in 2x2 pooling (max or avg), skipped once the feature map is smaller than
2x2, so a deep network still builds on a small image. The head is
flatten -> Dropout -> Linear(width) -> activation -> Dropout -> Linear(n_outputs).

LeNet-like (depth 2, kernel 5, avg, plain), VGG-like (depth 3, 2 convs per stage, max, plain),
ResNet-like (residual) and DenseNet-like (dense) networks are all points of this space.
"""

from __future__ import annotations

import torch
from torch import nn

from search_spaces.errors import SpecError
from search_spaces.layers import (
    ACTIVATIONS,
    CONNECTIVITIES,
    POOLINGS,
    DenseConcat,
    Residual,
    check_bool,
    check_choice,
    check_dropout,
    check_int,
    make_activation,
)


class CNN(nn.Module):
    """Convolutional stages, then a two-layer fully connected head.

    Maps `(B, C, H, W)` to `(B, n_outputs)`.
    """

    def __init__(self, *, features: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.features = features
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)  # (B, C', H', W')
        x = x.flatten(1)  # (B, C' * H' * W')
        return self.head(x)  # (B, n_outputs)


def conv_layer(
    in_channels: int,
    out_channels: int,
    *,
    kernel_size: int,
    activation: str,
    batch_norm: bool,
) -> nn.Sequential:
    """Conv2d (same padding) -> (BatchNorm2d) -> activation; `(B, in, H, W)` to `(B, out, H, W)`."""
    # A bias right before batch norm is cancelled by its mean subtraction.
    layers: list[nn.Module] = [
        nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size,
            padding=kernel_size // 2,
            bias=not batch_norm,
        )
    ]
    if batch_norm:
        layers.append(nn.BatchNorm2d(out_channels))
    layers.append(make_activation(activation))
    return nn.Sequential(*layers)


def projection(in_channels: int, out_channels: int, *, batch_norm: bool) -> nn.Module:
    """The residual skip: identity, or a 1x1 conv (and BatchNorm2d) when channels differ."""
    if in_channels == out_channels:
        return nn.Identity()

    if not batch_norm:
        return nn.Conv2d(in_channels, out_channels, 1)
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels)
    )


def conv_stage(
    in_channels: int,
    out_channels: int,
    *,
    convs: int,
    connectivity: str,
    kernel_size: int,
    activation: str,
    batch_norm: bool,
) -> nn.Sequential:
    """`convs` conv layers wired by `connectivity`; `(B, in, H, W)` to `(B, out, H, W)`."""

    def conv(n_in: int, n_out: int, k: int = kernel_size) -> nn.Sequential:
        return conv_layer(n_in, n_out, kernel_size=k, activation=activation, batch_norm=batch_norm)

    if connectivity == "plain":
        return nn.Sequential(
            *[conv(in_channels if i == 0 else out_channels, out_channels) for i in range(convs)]
        )

    if connectivity == "residual":
        units = []
        for i in range(convs):
            n_in = in_channels if i == 0 else out_channels
            skip = projection(n_in, out_channels, batch_norm=batch_norm)
            units.append(Residual(conv(n_in, out_channels), skip))
        return nn.Sequential(*units)

    # dense: conv i sees in + i * out channels; the 1x1 transition sees in + convs * out.
    dense = DenseConcat([conv(in_channels + i * out_channels, out_channels) for i in range(convs)])
    transition = conv(in_channels + convs * out_channels, out_channels, 1)
    return nn.Sequential(dense, transition)


def build_cnn(
    *,
    input_shape: tuple[int, ...],
    n_outputs: int,
    dropout: float,
    depth: int,
    width: int,
    activation: str,
    connectivity: str,
    batch_norm: bool = False,
    channels: int = 16,
    kernel_size: int = 3,
    pooling: str = "max",
    convs_per_stage: int = 1,
) -> CNN:
    """Build one CNN of the search space.

    Args:
        input_shape: `(C, H, W)` of one image.
        n_outputs: classes for classification, 1 (or targets) for regression.
        dropout: probability before each Linear of the head.
        depth: number of stages, >= 1.
        width: units of the head's hidden Linear.
        activation: one of `ACTIVATIONS`, used after every conv and in the head.
        connectivity: one of `CONNECTIVITIES`, applied within each stage.
        batch_norm: whether each conv is followed by BatchNorm2d.
        channels: channels of the first stage, doubled at each later stage.
        kernel_size: odd conv kernel size; padding keeps H and W.
        pooling: one of `POOLINGS`, 2x2 at the end of each stage.
        convs_per_stage: conv layers per stage, >= 1.

    Raises:
        SpecError: when a setting is out of range, not a known option, or the input is not
            an image.
    """
    if len(input_shape) != 3:
        raise SpecError(
            f"model.family: cnn needs image inputs of shape (C, H, W), got {tuple(input_shape)}; "
            "use family mlp for tabular data"
        )
    depth = check_int("model.depth", depth)
    width = check_int("model.width", width)
    check_choice("model.activation", activation, ACTIVATIONS)
    check_choice("model.connectivity", connectivity, CONNECTIVITIES)
    batch_norm = check_bool("model.batch_norm", batch_norm)
    channels = check_int("model.channels", channels)
    kernel_size = check_int("model.kernel_size", kernel_size)
    if kernel_size % 2 == 0:
        raise SpecError(
            f"model.kernel_size: {kernel_size} must be odd so that padding keeps H and W; "
            f"use {kernel_size - 1} or {kernel_size + 1}"
        )
    check_choice("model.pooling", pooling, POOLINGS)
    convs_per_stage = check_int("model.convs_per_stage", convs_per_stage)
    dropout = check_dropout(dropout)
    n_outputs = check_int("n_outputs", n_outputs)

    # Track (C, H, W) through the stages to size the head without a dry run.
    n_channels, height, width_px = (int(n) for n in input_shape)
    stages: list[nn.Module] = []
    for s in range(depth):
        stage_channels = channels * 2**s
        stages.append(
            conv_stage(
                n_channels,
                stage_channels,
                convs=convs_per_stage,
                connectivity=connectivity,
                kernel_size=kernel_size,
                activation=activation,
                batch_norm=batch_norm,
            )
        )
        n_channels = stage_channels
        if min(height, width_px) >= 2:
            stages.append(nn.MaxPool2d(2) if pooling == "max" else nn.AvgPool2d(2))
            height, width_px = height // 2, width_px // 2

    head = nn.Sequential(
        nn.Dropout(dropout),
        nn.Linear(n_channels * height * width_px, width),
        make_activation(activation),
        nn.Dropout(dropout),
        nn.Linear(width, n_outputs),
    )
    return CNN(features=nn.Sequential(*stages), head=head)

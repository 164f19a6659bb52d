"""Tests of the model families and the builder: shapes, wiring, TorchScript, errors.

Every model is tiny (widths and channels of 2 to 8) so the full grid runs in seconds.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from search_spaces.builder import (
    ACTIVATIONS,
    CONNECTIVITIES,
    FAMILIES,
    POOLINGS,
    build_model,
    count_parameters,
)
from search_spaces.errors import SpecError

IMAGE_SHAPES = [(1, 28, 28), (1, 8, 8)]
SHAPES_BY_FAMILY = {"mlp": [(30,), *IMAGE_SHAPES], "cnn": IMAGE_SHAPES}
# The families wired by connectivity; rnn has its own tests in test_rnn.py.
WIRED = tuple(SHAPES_BY_FAMILY)
BATCH = 3


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def small_model(family: str, **overrides: Any) -> dict[str, Any]:
    """A resolved "model" section for a tiny network of `family`."""
    model: dict[str, Any] = {
        "family": family,
        "depth": 2,
        "width": 8,
        "activation": "relu",
        "connectivity": "plain",
    }
    if family == "cnn":
        model |= {"channels": 4, "convs_per_stage": 2}
    return model | overrides


def seeded_build(model: dict[str, Any], seed: int = 0, **kwargs: Any) -> nn.Module:
    """build_model under a fixed seed, leaving the global generator as it was."""
    kwargs = {"dropout": 0.0, "n_outputs": 3} | kwargs
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return build_model(model, **kwargs)


def fixed_input(shape: tuple[int, ...], seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(BATCH, *shape, generator=generator)


def grid() -> list[tuple[str, str, str, tuple[int, ...]]]:
    return [
        (family, connectivity, activation, shape)
        for family in WIRED
        for connectivity in CONNECTIVITIES
        for activation in ACTIVATIONS
        for shape in SHAPES_BY_FAMILY[family]
    ]


def test_public_options() -> None:
    assert ACTIVATIONS == ("relu", "leaky_relu", "elu", "gelu", "selu", "tanh", "sigmoid")
    assert CONNECTIVITIES == ("plain", "residual", "dense")
    assert POOLINGS == ("max", "avg")
    assert set(FAMILIES) == {"mlp", "cnn", "rnn"}


@pytest.mark.parametrize(("family", "connectivity", "activation", "shape"), grid())
def test_every_point_builds_runs_and_scripts(
    family: str, connectivity: str, activation: str, shape: tuple[int, ...]
) -> None:
    model_spec = small_model(family, connectivity=connectivity, activation=activation)
    model = seeded_build(model_spec, dropout=0.25, input_shape=shape, n_outputs=5).eval()
    x = fixed_input(shape)

    eager = model(x)
    assert eager.shape == (BATCH, 5)
    assert torch.isfinite(eager).all()

    scripted = torch.jit.script(model)
    torch.testing.assert_close(scripted(x), eager)


@pytest.mark.parametrize("family", WIRED)
@pytest.mark.parametrize("connectivity", CONNECTIVITIES)
@pytest.mark.parametrize("batch_norm", [False, True])
def test_batch_norm_on_and_off(family: str, connectivity: str, batch_norm: bool) -> None:
    model_spec = small_model(family, connectivity=connectivity, batch_norm=batch_norm)
    model = seeded_build(model_spec, input_shape=(1, 8, 8))
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d)]
    assert bool(norms) == batch_norm

    # Train mode (batch statistics) must run too, and eval mode must script.
    x = fixed_input((1, 8, 8))
    assert model.train()(x).shape == (BATCH, 3)
    model.eval()
    torch.testing.assert_close(torch.jit.script(model)(x), model(x))


@pytest.mark.parametrize("connectivity", CONNECTIVITIES)
@pytest.mark.parametrize("pooling", POOLINGS)
@pytest.mark.parametrize(("depth", "pools"), [(1, 1), (4, 3)])
def test_cnn_depth_on_8x8_skips_pooling_below_2x2(
    connectivity: str, pooling: str, depth: int, pools: int
) -> None:
    # 8x8 -> 4x4 -> 2x2 -> 1x1; a fourth stage has nothing left to pool.
    model_spec = small_model(
        "cnn", depth=depth, connectivity=connectivity, pooling=pooling, channels=2
    )
    model = seeded_build(model_spec, input_shape=(1, 8, 8)).eval()
    pool_type = nn.MaxPool2d if pooling == "max" else nn.AvgPool2d
    assert sum(isinstance(m, pool_type) for m in model.modules()) == pools

    side = 8 // 2**pools
    head_in = model.head[1].in_features
    assert head_in == 2 * 2 ** (depth - 1) * side * side

    x = fixed_input((1, 8, 8))
    assert model(x).shape == (BATCH, 3)
    torch.testing.assert_close(torch.jit.script(model)(x), model(x))


@pytest.mark.parametrize("family", WIRED)
def test_residual_differs_from_plain_under_the_same_seed(family: str) -> None:
    x = fixed_input((1, 8, 8))
    outputs = {
        connectivity: seeded_build(
            small_model(family, connectivity=connectivity), input_shape=(1, 8, 8)
        ).eval()(x)
        for connectivity in ("plain", "residual")
    }
    assert not torch.allclose(outputs["plain"], outputs["residual"])


def test_mlp_residual_adds_the_skip_by_hand() -> None:
    # Identity stem, identity hidden Linear, identity head: out = x + relu(x).
    model = seeded_build(
        small_model("mlp", depth=1, width=2, connectivity="residual"),
        input_shape=(2,),
        n_outputs=2,
    ).eval()
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert len(linears) == 3
    with torch.no_grad():
        for linear in linears:
            linear.weight.copy_(torch.eye(2))
            linear.bias.zero_()

    x = torch.tensor([[1.0, -2.0], [3.0, 0.5]])
    expected = torch.tensor([[2.0, -2.0], [6.0, 1.0]])
    torch.testing.assert_close(model(x), expected)


def test_cnn_residual_adds_the_skip_by_hand() -> None:
    # Input already has the stage's 2 channels, so the skip is the identity; with the conv
    # zeroed the block gives relu(0) = 0 and the stage passes x through to the pooling.
    model = seeded_build(
        small_model("cnn", depth=1, channels=2, convs_per_stage=1, connectivity="residual"),
        input_shape=(2, 4, 4),
    ).eval()
    stage = model.features[0]
    assert isinstance(stage[0].shortcut, nn.Identity)
    with torch.no_grad():
        stage[0].block[0].weight.zero_()
        stage[0].block[0].bias.zero_()

    x = fixed_input((2, 4, 4))
    torch.testing.assert_close(model.features(x), nn.functional.max_pool2d(x, 2))


@pytest.mark.parametrize("batch_norm", [False, True])
def test_cnn_residual_projects_the_skip_when_channels_change(batch_norm: bool) -> None:
    model = seeded_build(
        small_model("cnn", depth=2, channels=4, connectivity="residual", batch_norm=batch_norm),
        input_shape=(1, 8, 8),
    )
    first_stage, second_stage = model.features[0], model.features[2]
    projections = [first_stage[0].shortcut, second_stage[0].shortcut]
    convs = [p if isinstance(p, nn.Conv2d) else p[0] for p in projections]
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in convs] == [
        (1, 4, (1, 1)),
        (4, 8, (1, 1)),
    ]
    assert isinstance(first_stage[1].shortcut, nn.Identity)


def test_mlp_dense_input_widths_grow() -> None:
    model = seeded_build(
        small_model("mlp", depth=3, width=4, connectivity="dense"), input_shape=(5,)
    )
    assert model.stem.in_features == 5
    assert model.stem.out_features == 4
    assert [layer[0].in_features for layer in model.body.layers] == [4, 8, 12]
    assert model.head.in_features == 16


def test_cnn_dense_input_channels_grow() -> None:
    model = seeded_build(
        small_model("cnn", depth=2, channels=4, convs_per_stage=3, connectivity="dense"),
        input_shape=(1, 8, 8),
    )
    stages = [model.features[0], model.features[2]]
    in_channels = [[layer[0].in_channels for layer in stage[0].layers] for stage in stages]
    assert in_channels == [[1, 5, 9], [4, 12, 20]]

    transitions = [stage[1][0] for stage in stages]
    assert [(t.in_channels, t.out_channels, t.kernel_size) for t in transitions] == [
        (13, 4, (1, 1)),
        (28, 8, (1, 1)),
    ]


def test_mlp_plain_layers_and_dropout() -> None:
    model = seeded_build(small_model("mlp", depth=3, width=6), dropout=0.3, input_shape=(1, 4, 4))
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(16, 6), (6, 6), (6, 6), (6, 3)]
    assert [m.p for m in model.modules() if isinstance(m, nn.Dropout)] == [0.3] * 3


def test_count_parameters_tiny_mlp_by_hand() -> None:
    # 4*3 + 3 weights and biases in the hidden layer, 3*2 + 2 in the head.
    spec = small_model("mlp", depth=1, width=3)
    assert count_parameters(seeded_build(spec, input_shape=(4,), n_outputs=2)) == 23

    # With batch norm the hidden bias goes and BatchNorm1d adds a scale and shift per unit.
    model = seeded_build(spec | {"batch_norm": True}, input_shape=(4,), n_outputs=2)
    assert count_parameters(model) == 4 * 3 + 2 * 3 + 3 * 2 + 2


def test_count_parameters_tiny_cnn_by_hand() -> None:
    # conv 1->2, 3x3: 18 + 2; pooled to (2, 2, 2) = 8 features; Linear 8->3: 27; 3->2: 8.
    spec = small_model("cnn", depth=1, width=3, channels=2, convs_per_stage=1)
    assert count_parameters(seeded_build(spec, input_shape=(1, 4, 4), n_outputs=2)) == 55


def test_count_parameters_skips_frozen() -> None:
    model = seeded_build(small_model("mlp", depth=1, width=3), input_shape=(4,), n_outputs=2)
    model.head.requires_grad_(False)
    assert count_parameters(model) == 15


def test_cnn_defaults() -> None:
    spec = {"family": "cnn", "depth": 1, "width": 4, "activation": "relu"}
    model = seeded_build(spec | {"connectivity": "plain"}, input_shape=(1, 8, 8))
    conv = model.features[0][0][0]
    assert (conv.out_channels, conv.kernel_size, conv.padding) == (16, (3, 3), (1, 1))
    assert isinstance(model.features[1], nn.MaxPool2d)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert len(model.features[0]) == 1


def test_lenet_like_point() -> None:
    spec = small_model(
        "cnn", depth=2, channels=6, kernel_size=5, pooling="avg", convs_per_stage=1, width=12
    )
    model = seeded_build(spec, input_shape=(1, 28, 28), n_outputs=10).eval()
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in convs] == [
        (1, 6, (5, 5)),
        (6, 12, (5, 5)),
    ]
    assert model.head[1].in_features == 12 * 7 * 7
    assert model(fixed_input((1, 28, 28))).shape == (BATCH, 10)


def test_same_seed_same_weights_and_global_rng_untouched() -> None:
    spec = small_model("cnn", connectivity="dense")
    before = torch.random.get_rng_state()
    first = seeded_build(spec, seed=7, input_shape=(1, 8, 8))
    second = seeded_build(spec, seed=7, input_shape=(1, 8, 8))
    assert torch.equal(torch.random.get_rng_state(), before)
    for a, b in zip(first.state_dict().values(), second.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_numpy_values_from_a_searcher_are_accepted() -> None:
    spec = small_model("mlp", depth=np.int64(2), width=np.int32(4), batch_norm=np.bool_(True))
    model = seeded_build(spec, input_shape=(6,))
    assert model(fixed_input((6,))).shape == (BATCH, 3)


def test_keys_of_another_family_are_ignored() -> None:
    spec = small_model("mlp") | {"channels": 8, "pooling": "avg"}
    model = seeded_build(spec, input_shape=(6,))
    assert not any(isinstance(m, nn.Conv2d) for m in model.modules())


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"activation": "swish"}, r"^model\.activation: 'swish' .*relu, leaky_relu"),
        ({"family": "transformer"}, r"^model\.family: 'transformer' .*mlp, cnn, rnn"),
        ({"connectivity": "skip"}, r"^model\.connectivity: 'skip' .*plain, residual, dense"),
        ({"pooling": "min"}, r"^model\.pooling: 'min' .*max, avg"),
        ({"depth": 0}, r"^model\.depth: 0 must be >= 1"),
        ({"width": 2.5}, r"^model\.width: expected an integer"),
        ({"depth": True}, r"^model\.depth: expected an integer"),
        ({"kernel_size": 4}, r"^model\.kernel_size: 4 must be odd"),
        ({"channels": -1}, r"^model\.channels: -1 must be >= 1"),
        ({"convs_per_stage": 0}, r"^model\.convs_per_stage: 0 must be >= 1"),
        ({"batch_norm": "yes"}, r"^model\.batch_norm: expected true or false"),
        ({"kernal_size": 3}, r"^model\.kernal_size: not a key of any model family"),
    ],
)
def test_bad_model_settings_raise_spec_error(overrides: dict[str, Any], match: str) -> None:
    spec = small_model("cnn") | overrides
    with pytest.raises(SpecError, match=match) as info:
        build_model(spec, dropout=0.0, input_shape=(1, 8, 8), n_outputs=2)
    assert "\n" not in str(info.value)
    assert isinstance(info.value, ValueError)


def test_missing_required_key() -> None:
    spec = small_model("mlp")
    del spec["activation"]
    with pytest.raises(SpecError, match=r"^model\.activation: required for family mlp"):
        build_model(spec, dropout=0.0, input_shape=(4,), n_outputs=2)


@pytest.mark.parametrize("dropout", [-0.1, 1.0, "0.2"])
def test_bad_dropout(dropout: Any) -> None:
    with pytest.raises(SpecError, match=r"^regularization\.dropout: .* \[0, 1\)"):
        build_model(small_model("mlp"), dropout=dropout, input_shape=(4,), n_outputs=2)


@pytest.mark.parametrize("input_shape", [(), (0, 4), (4, -1)])
def test_bad_input_shape(input_shape: tuple[int, ...]) -> None:
    with pytest.raises(SpecError, match=r"^input_shape: "):
        build_model(small_model("mlp"), dropout=0.0, input_shape=input_shape, n_outputs=2)


@pytest.mark.parametrize("input_shape", [(30,), (28, 28)])
def test_cnn_rejects_non_image_input(input_shape: tuple[int, ...]) -> None:
    with pytest.raises(
        SpecError, match=r"^model\.family: cnn needs image inputs .*use family mlp"
    ):
        build_model(small_model("cnn"), dropout=0.0, input_shape=input_shape, n_outputs=2)

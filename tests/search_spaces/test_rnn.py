"""The rnn family: every variant builds and scripts, padding never changes an output, errors.

Every model is tiny (embeddings of 5, 4 hidden units, rows of at most 9 steps), so the whole
grid of cells x directions x summaries x depths runs in a few seconds.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import torch
from torch import nn

from search_spaces.builder import CELLS, FAMILIES, SUMMARIES, build_model, count_parameters
from search_spaces.errors import SpecError
from search_spaces.rnn import PAD_ID, RecurrentNet

VOCAB = 20
VARIANTS = list(itertools.product(CELLS, [False, True], SUMMARIES, [1, 2]))
VARIANT_IDS = [f"{c}-{'bi' if b else 'uni'}-{s}-depth{d}" for c, b, s, d in VARIANTS]


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def rnn_spec(**overrides: Any) -> dict[str, Any]:
    spec = {"family": "rnn", "depth": 1, "width": 4, "embedding_dim": 5}
    return spec | overrides


def seeded(spec: dict[str, Any], *, seed: int = 0, **kwargs: Any) -> nn.Module:
    kwargs = {"dropout": 0.3, "n_outputs": 3} | kwargs
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return build_model(spec, **kwargs).eval()


def token_rows() -> torch.Tensor:
    """Three sentences of 4, 1 and 6 tokens, padded with 0 at the end to 6 steps."""
    return torch.tensor(
        [
            [3, 4, 5, 6, PAD_ID, PAD_ID],
            [7, PAD_ID, PAD_ID, PAD_ID, PAD_ID, PAD_ID],
            [8, 9, 10, 11, 12, 13],
        ]
    )


def test_rnn_is_a_family_and_lists_its_options() -> None:
    assert FAMILIES["rnn"].__name__ == "build_rnn"
    assert CELLS == ("rnn", "lstm", "gru")
    assert SUMMARIES == ("last", "mean", "max")


@pytest.mark.parametrize(("cell", "bidirectional", "summary", "depth"), VARIANTS, ids=VARIANT_IDS)
def test_every_variant_builds_runs_and_scripts_on_token_ids(
    cell: str, bidirectional: bool, summary: str, depth: int
) -> None:
    spec = rnn_spec(cell=cell, bidirectional=bidirectional, summary=summary, depth=depth)
    model = seeded(spec, input_shape=(6,), vocab_size=VOCAB, n_outputs=2)
    x = token_rows()

    eager = model(x)
    assert eager.shape == (3, 2)
    assert torch.isfinite(eager).all()

    scripted = torch.jit.script(model)
    torch.testing.assert_close(scripted(x), eager)
    assert isinstance(model.recurrent, {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[cell])
    assert model.recurrent.num_layers == depth
    assert model.head[1].in_features == (8 if bidirectional else 4)


@pytest.mark.parametrize(("cell", "bidirectional", "summary", "depth"), VARIANTS, ids=VARIANT_IDS)
def test_every_variant_builds_runs_and_scripts_on_float_sequences(
    cell: str, bidirectional: bool, summary: str, depth: int
) -> None:
    spec = rnn_spec(cell=cell, bidirectional=bidirectional, summary=summary, depth=depth)
    model = seeded(spec, input_shape=(7, 3), n_outputs=1)
    x = torch.randn(4, 7, 3, generator=torch.Generator().manual_seed(0))

    eager = model(x)
    assert eager.shape == (4, 1)
    torch.testing.assert_close(torch.jit.script(model)(x), eager)
    assert isinstance(model.embedding, nn.Identity)
    assert model.recurrent.input_size == 3


@pytest.mark.parametrize(("cell", "bidirectional", "summary", "depth"), VARIANTS, ids=VARIANT_IDS)
def test_extra_padding_never_changes_the_output(
    cell: str, bidirectional: bool, summary: str, depth: int
) -> None:
    spec = rnn_spec(cell=cell, bidirectional=bidirectional, summary=summary, depth=depth)
    model = seeded(spec, input_shape=(6,), vocab_size=VOCAB)
    scripted = torch.jit.script(model)
    x = token_rows()
    padded = torch.cat([x, torch.full((3, 5), PAD_ID)], dim=1)  # 5 more pad steps

    for net in (model, scripted):
        torch.testing.assert_close(net(padded), net(x), rtol=0, atol=1e-6)
        # Each row alone, cut to its own length, gives what it gave in the batch.
        for row, length in enumerate([4, 1, 6]):
            alone = net(x[row : row + 1, :length])
            torch.testing.assert_close(alone, net(x)[row : row + 1], rtol=0, atol=1e-6)


@pytest.mark.parametrize("cell", CELLS)
def test_last_summary_is_the_final_hidden_state_of_the_real_steps(cell: str) -> None:
    model = seeded(rnn_spec(cell=cell, summary="last"), input_shape=(6,), vocab_size=VOCAB)
    x = token_rows()

    # Run the recurrent layer by hand over each row's real steps only.
    expected = []
    for row, length in enumerate([4, 1, 6]):
        steps = model.embedding(x[row : row + 1, :length])
        _, state = model.recurrent(steps)
        h_n = state[0] if cell == "lstm" else state  # (layers, 1, H)
        expected.append(model.head(h_n[-1]))
    torch.testing.assert_close(model(x), torch.cat(expected), rtol=0, atol=1e-6)


@pytest.mark.parametrize("summary", ["mean", "max"])
def test_mean_and_max_summaries_pool_over_the_real_steps_by_hand(summary: str) -> None:
    model = seeded(
        rnn_spec(cell="gru", summary=summary, bidirectional=True), input_shape=(6,), vocab_size=20
    )
    x = token_rows()
    row, length = 0, 4
    states, _ = model.recurrent(model.embedding(x[row : row + 1, :length]))  # (1, 4, 8)
    pooled = states.mean(dim=1) if summary == "mean" else states.amax(dim=1)
    torch.testing.assert_close(model(x)[row : row + 1], model.head(pooled), rtol=0, atol=1e-6)


def test_a_pad_id_inside_a_row_does_not_cut_it_short_and_an_empty_row_answers() -> None:
    model = seeded(rnn_spec(cell="lstm"), input_shape=(5,), vocab_size=VOCAB)
    inner_pad = torch.tensor([[3, PAD_ID, 5, PAD_ID, PAD_ID]])
    # Steps 0..2 are read (the pad at step 1 embeds to zeros), so token 5 matters.
    other = torch.tensor([[3, PAD_ID, 6, PAD_ID, PAD_ID]])
    assert not torch.allclose(model(inner_pad), model(other))

    empty = torch.full((1, 5), PAD_ID)
    assert torch.isfinite(model(empty)).all()


def test_dropouts_sit_on_the_steps_between_layers_and_before_the_head() -> None:
    spec = rnn_spec(depth=3, layer_dropout=0.25)
    model = seeded(spec, dropout=0.4, input_shape=(6,), vocab_size=VOCAB)
    assert model.recurrent.dropout == 0.25
    assert [m.p for m in model.modules() if isinstance(m, nn.Dropout)] == [0.4, 0.4]

    # One layer has nothing between layers; torch would warn about a non-zero dropout there.
    single = seeded(rnn_spec(depth=1, layer_dropout=0.25), input_shape=(6,), vocab_size=VOCAB)
    assert single.recurrent.dropout == 0.0


def test_count_parameters_of_a_tiny_gru_by_hand() -> None:
    # Embedding 20 x 5 = 100; GRU 3 gates x (4 x 5 input + 4 x 4 hidden + 2 x 4 biases) = 132;
    # head 4 x 3 + 3 = 15.
    model = seeded(rnn_spec(cell="gru"), input_shape=(6,), vocab_size=VOCAB)
    assert count_parameters(model) == 100 + 132 + 15


def test_same_seed_same_weights() -> None:
    first = seeded(rnn_spec(cell="lstm", depth=2), seed=4, input_shape=(6,), vocab_size=VOCAB)
    second = seeded(rnn_spec(cell="lstm", depth=2), seed=4, input_shape=(6,), vocab_size=VOCAB)
    for a, b in zip(first.state_dict().values(), second.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert isinstance(first, RecurrentNet)


@pytest.mark.parametrize(
    ("overrides", "kwargs", "match"),
    [
        ({"cell": "transformer"}, {}, r"^model\.cell: 'transformer' .*rnn, lstm, gru"),
        ({"summary": "first"}, {}, r"^model\.summary: 'first' .*last, mean, max"),
        ({"bidirectional": "yes"}, {}, r"^model\.bidirectional: expected true or false"),
        ({"embedding_dim": 0}, {}, r"^model\.embedding_dim: 0 must be >= 1"),
        ({"layer_dropout": 1.0}, {}, r"^model\.layer_dropout: 1\.0 must be a probability"),
        ({}, {"input_shape": (6, 2)}, r"^model\.family: rnn reads token ids as \(L,\) rows"),
        ({}, {"input_shape": (6,), "vocab_size": None}, r"needs token ids or sequences"),
        ({}, {"vocab_size": 1}, r"^vocab_size: 1 must be >= 2"),
    ],
)
def test_bad_settings_raise_one_line_spec_errors(
    overrides: dict[str, Any], kwargs: dict[str, Any], match: str
) -> None:
    kwargs = {"input_shape": (6,), "vocab_size": VOCAB} | kwargs
    with pytest.raises(SpecError, match=match) as info:
        build_model(rnn_spec(**overrides), dropout=0.0, n_outputs=2, **kwargs)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("family", ["mlp", "cnn"])
def test_families_without_an_embedding_refuse_token_ids(family: str) -> None:
    spec = {
        "family": family,
        "depth": 1,
        "width": 4,
        "activation": "relu",
        "connectivity": "plain",
    }
    with pytest.raises(SpecError, match=rf"^model\.family: {family} cannot read token ids"):
        build_model(spec, dropout=0.0, input_shape=(6,), n_outputs=2, vocab_size=VOCAB)

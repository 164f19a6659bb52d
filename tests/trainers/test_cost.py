"""Cost of a candidate: ptflops' MAC counts (ours for packed sequences) and CPU latency."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from search_spaces.builder import build_model
from trainers.cost import count_macs, example_input, measure_cost, measure_latency


def _mlp(width: int, depth: int = 1) -> nn.Module:
    model = {"family": "mlp", "depth": depth, "width": width, "activation": "relu"}
    model |= {"connectivity": "plain", "batch_norm": False}
    return build_model(model, dropout=0.0, input_shape=(64,), n_outputs=10)


def _lstm(*, tokens: bool) -> nn.Module:
    model = {"family": "rnn", "depth": 1, "width": 16, "cell": "lstm", "embedding_dim": 8}
    if tokens:
        return build_model(model, dropout=0.0, input_shape=(20,), n_outputs=2, vocab_size=50)
    model.pop("embedding_dim")
    return build_model(model, dropout=0.0, input_shape=(20, 8), n_outputs=2)


def test_linear_macs_are_weights_plus_biases() -> None:
    assert count_macs(nn.Linear(64, 10), torch.zeros(1, 64)) == 64 * 10 + 10


def test_recurrent_macs_count_every_real_step_once() -> None:
    # A series of 20 steps and a row of 20 real tokens (embedded to 8) run the same LSTM
    # over 20 steps; ptflops' LSTM formula per step with both biases:
    # 4H*F + 4H*H + 4H (gate sums) + 3H + 3H + 2 * 4H with F = 8, H = 16.
    per_step = 64 * 8 + 64 * 16 + 64 + 6 * 16 + 2 * 64
    series = count_macs(_lstm(tokens=False), torch.zeros(1, 20, 8))
    tokens = count_macs(_lstm(tokens=True), torch.randint(1, 50, (1, 20)))
    head = 32 + 2  # Linear(16, 2)
    assert series == pytest.approx(20 * per_step + head, abs=64)
    assert tokens == pytest.approx(series, abs=64)

    # Padding is skipped by the packed sequence, so half the real tokens cost half the steps.
    half = torch.randint(1, 50, (1, 20))
    half[:, 10:] = 0
    assert count_macs(_lstm(tokens=True), half) == pytest.approx(10 * per_step + head, abs=64)


def test_example_input_reads_as_the_family_expects() -> None:
    ids = example_input((20,), vocab_size=50)
    assert ids.dtype == torch.int64 and ids.shape == (1, 20) and bool((ids > 0).all())
    assert example_input((1, 8, 8)).shape == (1, 1, 8, 8)
    assert torch.equal(example_input((5,)), example_input((5,)))  # seeded


def test_latency_grows_with_the_work() -> None:
    sample = torch.randn(1, 64)
    small = measure_latency(_mlp(4), sample)
    # About 40 million MACs against 300: far beyond timing noise, even on a busy machine.
    large = measure_latency(_mlp(2048, depth=8), sample)
    assert 0 < small < large


def test_measure_cost_restores_threads_and_mode() -> None:
    model = _mlp(8).train()
    threads = torch.get_num_threads()
    cost = measure_cost(model, torch.randn(1, 64))
    assert cost.params_count == 64 * 8 + 8 + 8 * 10 + 10
    assert cost.macs >= cost.params_count
    assert torch.get_num_threads() == threads
    assert model.training  # count_macs puts the model back as it found it

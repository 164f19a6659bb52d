"""Pruning and int8 quantization of trained MLP, LSTM and CNN models, measured.

Each model is trained for real on a small dataset (digits; the co2 series for the LSTM), then
compressed; the assertions are the relations compression must keep: the asked sparsity, a
smaller file once int8, TorchScript that loads back, and outputs close to the original's.
"""

from __future__ import annotations

import functools
import io
from pathlib import Path

import numpy as np
import pytest
import torch

from trainers.compression import (
    fine_tune,
    outputs_of,
    prune_weights,
    pruned_layers,
    quantize_dynamic_int8,
    quantize_static_int8,
    sparsity,
    to_torchscript,
)
from trainers.cost import measure_latency
from trainers.datasets import load_dataset
from trainers.inputs import prepare
from trainers.loop import train_model
from trainers.metrics import compute_metrics

OPTIMIZER = {"name": "adam", "lr": 0.01, "batch_size": 64}


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def _trained(dataset_name: str, model: dict, *, epochs: int = 2):
    dataset = load_dataset(dataset_name, seed=0)
    inputs = prepare(dataset)
    config = {"model": model, "optimizer": OPTIMIZER, "regularization": {"dropout": 0.0}}
    trained = train_model(
        config,
        dataset.x_train,
        dataset.y_train,
        task=dataset.task,
        n_outputs=dataset.n_outputs,
        epochs=epochs,
        seed=0,
        inputs=inputs,
    )
    x_test = torch.as_tensor(np.asarray(inputs.encode(dataset.x_test))).float()
    return trained, dataset, x_test


@functools.cache
def _mlp():
    model = {"family": "mlp", "depth": 2, "width": 256, "activation": "relu"}
    return _trained("digits", model | {"connectivity": "plain", "batch_norm": False})


@functools.cache
def _lstm():
    return _trained("co2", {"family": "rnn", "depth": 1, "width": 64, "cell": "lstm"}, epochs=1)


def _saved(module) -> tuple[torch.jit.ScriptModule, int]:
    """Script, save and load back; the loaded module and the file's size in bytes."""
    buffer = io.BytesIO()
    torch.jit.save(to_torchscript(module), buffer)
    size = buffer.tell()
    buffer.seek(0)
    return torch.jit.load(buffer), size


def _accuracy(model, dataset, x_test) -> float:
    outputs = outputs_of(model, x_test, task=dataset.task)
    return compute_metrics(dataset.task, dataset.y_test, outputs, n_classes=dataset.n_classes)[
        "accuracy"
    ]


@pytest.mark.parametrize("rate", [0.3, 0.8])
@pytest.mark.parametrize("family", ["mlp", "lstm"])
def test_pruning_zeroes_the_asked_fraction_of_every_layer(family: str, rate: float) -> None:
    model, _, x_test = _mlp() if family == "mlp" else _lstm()
    assert sparsity(model) < 0.01

    pruned = prune_weights(model, rate)

    assert sparsity(pruned) == pytest.approx(rate, abs=0.005)
    for module, name in pruned_layers(pruned):
        weight = getattr(module, name)
        assert float((weight == 0).float().mean()) == pytest.approx(rate, abs=0.01)
    # The original is untouched, and the pruned model computes with its zeros.
    assert sparsity(model) < 0.01
    with torch.no_grad():
        assert not torch.allclose(pruned(x_test[:8]), model(x_test[:8]))


def test_fine_tuning_after_pruning_keeps_the_zeros_and_recovers_accuracy() -> None:
    model, dataset, x_test = _mlp()
    inputs = prepare(dataset)
    x_train = torch.as_tensor(inputs.encode(dataset.x_train)).float()
    tune = functools.partial(
        fine_tune,
        x=x_train,
        y=torch.as_tensor(dataset.y_train),
        task=dataset.task,
        optimizer={"name": "adam", "lr": 0.003},
        epochs=2,
        batch_size=64,
        seed=0,
    )

    blunt = prune_weights(model, 0.9)
    tuned = prune_weights(model, 0.9, finetune=tune)

    assert sparsity(tuned) == pytest.approx(0.9, abs=0.005)
    assert _accuracy(tuned, dataset, x_test) > _accuracy(blunt, dataset, x_test)


@pytest.mark.parametrize("family", ["mlp", "lstm"])
def test_dynamic_int8_is_smaller_loads_as_torchscript_and_answers_alike(family: str) -> None:
    model, dataset, x_test = _mlp() if family == "mlp" else _lstm()
    sample = x_test[:1]

    original, original_size = _saved(model)
    quantized, quantized_size = _saved(quantize_dynamic_int8(model))

    # int8 weights take a quarter of float32's bytes; code and metadata are shared overhead.
    assert quantized_size < 0.6 * original_size
    # int8 rounding moves outputs by a small fraction of their spread over the test split
    # (measured: 0.1 of logits spread 5.3; 0.01 ppm of forecasts spread 4.9).
    with torch.no_grad():
        expected = original(x_test)
        gap = (quantized(x_test) - expected).abs().max().item()
    assert gap < 0.05 * expected.std().item()
    if family == "mlp":
        assert _accuracy(quantized, dataset, x_test) >= _accuracy(original, dataset, x_test) - 0.03
    else:
        y = torch.as_tensor(dataset.y_test).float()
        errors = [(m(x_test).squeeze(1) - y).abs().mean().item() for m in (original, quantized)]
        assert errors[1] <= errors[0] * 1.05  # the forecast's MAE (ppm) barely moves
    assert measure_latency(quantized, sample) > 0


def test_static_int8_quantizes_a_cnn_and_the_trace_loads(tmp_path: Path) -> None:
    model = {"family": "cnn", "depth": 1, "channels": 16, "width": 64, "activation": "relu"}
    model |= {"connectivity": "residual", "batch_norm": True, "kernel_size": 3}
    cnn, dataset, x_test = _trained("digits", model | {"pooling": "max", "convs_per_stage": 1})
    x_train = torch.as_tensor(dataset.x_train).float()

    quantized = quantize_static_int8(cnn, x_train[:256])
    path = tmp_path / "cnn-int8.pt"
    torch.jit.save(to_torchscript(quantized), str(path))
    torch.jit.save(torch.jit.script(cnn), str(tmp_path / "cnn.pt"))
    loaded = torch.jit.load(str(path))

    assert path.stat().st_size < 0.6 * (tmp_path / "cnn.pt").stat().st_size
    # The convolutions now run as quantized ops.
    assert "quantized::conv2d" in str(loaded.model.inlined_graph)
    float_accuracy = _accuracy(cnn, dataset, x_test)
    assert float_accuracy > 0.8
    assert _accuracy(loaded, dataset, x_test) >= float_accuracy - 0.05

"""What a candidate costs to deploy: parameters, multiply-accumulates and CPU latency.

Multiply-accumulates (MACs) of one sample's forward pass are counted with ptflops' module-hook
backend; its recurrent-layer hook reads a plain tensor, so packed sequences (how the rnn family
skips padding) get a hook of our own that applies ptflops' per-step formula to every real step.
Latency is the median wall time of single-sample forward passes on one CPU thread, after a
warm-up; beside other busy processes it is an upper bound, as any wall time is.
"""

from __future__ import annotations

import contextlib
import io
import logging
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence

from search_spaces.builder import count_parameters

logger = logging.getLogger(__name__)

# Names under which costs are reported by trials and stored as trials columns.
COSTS = ("params_count", "macs", "latency_ms")

# FIXME: trials measure latency in their own worker while other trials train beside them, so
# a busy machine inflates it unevenly between trials; sub-0.1 ms models differ by noise. Should
# the driver measure every candidate itself, one at a time, before it is handed to a worker?
WARMUP = 5
REPEATS = 30
# Latency measurement stops after this many seconds of timed passes, however few it made.
TIME_BUDGET_S = 1.0


@dataclass(frozen=True)
class Cost:
    """One model's deployment cost for a single sample."""

    params_count: int
    macs: int
    latency_ms: float

    def as_dict(self) -> dict[str, int | float]:
        return {
            "params_count": self.params_count,
            "macs": self.macs,
            "latency_ms": self.latency_ms,
        }


def example_input(
    input_shape: tuple[int, ...], *, vocab_size: int | None = None, seed: int = 0
) -> torch.Tensor:
    """One sample `(1, *input_shape)` to measure on.

    Token ids fill every position with a real (non-pad) token, so a text model is measured at
    its longest; float inputs are standard normal from a generator of our own.
    """
    generator = torch.Generator().manual_seed(seed)
    if vocab_size is not None:
        return torch.randint(1, max(vocab_size, 2), (1, *input_shape), generator=generator)
    return torch.randn((1, *input_shape), generator=generator)


def measure_cost(
    model: nn.Module, sample: torch.Tensor, *, repeats: int = REPEATS, warmup: int = WARMUP
) -> Cost:
    """Parameters, MACs and median single-thread latency (ms) of `model` on `sample` `(1, ...)`."""
    return Cost(
        params_count=count_parameters(model),
        macs=count_macs(model, sample),
        latency_ms=measure_latency(model, sample, repeats=repeats, warmup=warmup),
    )


def count_macs(model: nn.Module, sample: torch.Tensor) -> int:
    """Multiply-accumulates of one forward pass on `sample`, counted by ptflops' hooks."""
    from ptflops import get_model_complexity_info

    was_training = model.training
    model.eval()
    # ptflops prints its per-layer table and any failure to a stream; keep both off stdout.
    report = io.StringIO()
    try:
        macs, _ = get_model_complexity_info(
            model,
            tuple(sample.shape[1:]),
            input_constructor=lambda _: sample,
            as_strings=False,
            print_per_layer_stat=False,
            backend="pytorch",
            custom_modules_hooks={nn.LSTM: _rnn_hook, nn.GRU: _rnn_hook, nn.RNN: _rnn_hook},
            ost=report,
        )
    finally:
        model.train(was_training)
    if macs is None:
        raise RuntimeError(f"ptflops could not count the MACs: {report.getvalue().strip()}")
    return int(macs)


def measure_latency(
    model: nn.Module, sample: torch.Tensor, *, repeats: int = REPEATS, warmup: int = WARMUP
) -> float:
    """Median wall time in ms of a forward pass on `sample`, on one thread, after a warm-up."""
    times: list[float] = []
    was_training = model.training
    with _one_thread(), torch.inference_mode():
        model.eval()
        for _ in range(warmup):
            model(sample)
        budget_ends = time.perf_counter() + TIME_BUDGET_S
        for _ in range(repeats):
            started = time.perf_counter()
            model(sample)
            times.append((time.perf_counter() - started) * 1000.0)
            if time.perf_counter() > budget_ends:
                break
    model.train(was_training)
    return statistics.median(times)


def _rnn_hook(module: nn.RNNBase, inputs: tuple, output: object) -> None:
    """ptflops' recurrent formula per real step, for plain `(B, T, F)` or packed inputs."""
    from ptflops.pytorch_ops import rnn_flops

    first = inputs[0]
    if isinstance(first, PackedSequence):
        steps = int(first.data.shape[0])  # every real step of every row
    else:
        steps = int(first.shape[0] * first.shape[1])  # (B, T) or (T, B): all steps count

    per_step = 0
    for layer in range(module.num_layers):
        w_ih = getattr(module, f"weight_ih_l{layer}")
        w_hh = getattr(module, f"weight_hh_l{layer}")
        per_step = rnn_flops(per_step, module, w_ih, w_hh, w_ih.shape[1])
        if module.bias:
            per_step += 2 * w_ih.shape[0]  # the input and hidden biases, as ptflops counts
    directions = 2 if module.bidirectional else 1
    module.__flops__ += int(per_step * steps * directions)


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)

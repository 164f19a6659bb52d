"""Smaller and faster versions of a trained model: magnitude pruning and int8 quantization.

- Pruning (`prune_weights`) zeroes the given fraction of smallest-magnitude weights in every
  Linear, convolution and recurrent layer, each layer on its own (torch.nn.utils.prune's L1
  unstructured pruning), then makes the zeros permanent. The file stays as large (dense
  float32 tensors) and on CPU the speed the same; the zeros pay off once quantized or stored
  sparse.
- Dynamic quantization (`quantize_dynamic_int8`) stores Linear, LSTM and GRU weights as int8
  and quantizes activations on the fly (torch.ao's eager `quantize_dynamic`).
- Static quantization (`quantize_static_int8`), for models with convolutions, quantizes
  weights and activations ahead of time with scales calibrated on training samples, through
  torch.ao's FX graph mode, which inserts the (de)quantize steps and handles residual adds
  without changes to our modules. The result cannot be scripted (FX writes annotations that
  TorchScript cannot read) so it is traced; the cnn family's forward has no data-dependent
  branches, so the trace is exact.

torch 2.13 marks torch.ao.quantization as deprecated in favour of torchao, which is not
installed here; its warnings are silenced where we call it.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import warnings
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import prune

from trainers.optim import make_optimizer

logger = logging.getLogger(__name__)

_PRUNED_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.RNNBase)
_DYNAMIC_LAYERS = {nn.Linear, nn.LSTM, nn.GRU}
_EVAL_BATCH = 512


def weight_names(module: nn.Module) -> list[str]:
    """The weight matrices of a prunable layer (`weight`, or `weight_ih_l0`, ... for an RNN)."""
    if isinstance(module, nn.RNNBase):
        return [name for name in module._flat_weights_names if name.startswith("weight_")]
    return ["weight"]


def pruned_layers(model: nn.Module) -> list[tuple[nn.Module, str]]:
    """(layer, weight name) of every weight that pruning touches, in module order."""
    return [
        (module, name)
        for module in model.modules()
        if isinstance(module, _PRUNED_LAYERS)
        for name in weight_names(module)
    ]


def prune_weights(
    model: nn.Module,
    rate: float,
    *,
    finetune: Callable[[nn.Module], None] | None = None,
) -> nn.Module:
    """A copy of `model` with `rate` of each layer's weights (smallest |w|) set to zero.

    Args:
        model: The trained model; left unchanged.
        rate: Fraction of weights to zero in each layer, in (0, 1).
        finetune: A callable taking the pruned model, run while the pruning masks still hold
            (so training keeps the zeros at zero), e.g. `functools.partial(fine_tune, ...)`.

    Returns:
        The pruned copy, in eval mode, with the masks folded into plain weights.
    """
    if not 0.0 < rate < 1.0:
        raise ValueError(f"compression.prune_rates: {rate} must be between 0 and 1")
    pruned = copy.deepcopy(model)
    targets = pruned_layers(pruned)
    for module, name in targets:
        prune.l1_unstructured(module, name=name, amount=rate)
    if finetune is not None:
        finetune(pruned)
    for module, name in targets:
        prune.remove(module, name)
    _refresh_rnn_weights(pruned)
    return pruned.eval()


def sparsity(model: nn.Module) -> float:
    """Fraction of zeros among the weights pruning touches (0 when it touches none)."""
    zeros = total = 0
    for module, name in pruned_layers(model):
        weight = getattr(module, name)
        zeros += int((weight == 0).sum())
        total += weight.numel()
    return zeros / total if total else 0.0


def has_convolutions(model: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv1d | nn.Conv2d) for m in model.modules())


def quantize_dynamic_int8(model: nn.Module) -> nn.Module:
    """A copy with int8 weights in its Linear, LSTM and GRU layers (activations stay float)."""
    from torch.ao.quantization import quantize_dynamic

    with _quiet_deprecation():
        return quantize_dynamic(copy.deepcopy(model).eval(), _DYNAMIC_LAYERS, dtype=torch.qint8)


def quantize_static_int8(model: nn.Module, calibration: torch.Tensor) -> nn.Module:
    """int8 weights and activations throughout, scales calibrated on `calibration` `(N, ...)`.

    A `Normalized` wrapper stays float (its standardisation branches on the input's dtype,
    which FX cannot trace) around its quantized inner model; the inner model is traced (see
    the module docstring), so the whole still scripts.
    """
    from trainers.preprocessing import Normalized

    if isinstance(model, Normalized):
        wrapper = copy.deepcopy(model).eval()
        with torch.no_grad():
            standardized = (calibration - model.x_mean) / model.x_std
        wrapper.model = quantize_static_int8(model.model, standardized)
        return wrapper

    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    example = calibration[:1]
    # The observers suit the engine that will run the model: this process's (x86 or fbgemm
    # on a PC, qnnpack on ARM).
    engine = torch.backends.quantized.engine
    with _quiet_deprecation(), torch.no_grad():
        prepared = prepare_fx(
            copy.deepcopy(model).eval(),
            get_default_qconfig_mapping(engine),
            example_inputs=(example,),
        )
        for start in range(0, len(calibration), _EVAL_BATCH):
            prepared(calibration[start : start + _EVAL_BATCH])
        quantized = convert_fx(prepared)
        return torch.jit.trace(quantized, example).eval()


def to_torchscript(model: nn.Module) -> torch.jit.ScriptModule:
    """Script `model` (what export does), or return it if it already is TorchScript."""
    if isinstance(model, torch.jit.ScriptModule):
        return model
    with _quiet_deprecation():
        return torch.jit.script(model.eval())


def fine_tune(
    model: nn.Module,
    *,
    x: torch.Tensor,
    y: torch.Tensor,
    task: str,
    optimizer: Mapping[str, Any],
    epochs: int,
    batch_size: int,
    seed: int,
) -> None:
    """Train `model` (a Normalized wrapper) in place for `epochs` on `(x, y)`.

    Uses the candidate's own optimizer settings; the loss is the training loop's (cross
    entropy, or MSE in standardised target units). Batch order comes from a generator of our
    own, seeded with `seed`.
    """
    order_generator = torch.Generator().manual_seed(seed)
    torch_optimizer = make_optimizer(model.parameters(), optimizer)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=order_generator)
        for start in range(0, len(x) - 1, batch_size):
            batch = order[start : start + batch_size]
            if len(batch) < 2:
                continue  # batch norm cannot train on one sample
            out = model.standardized(x[batch])
            if task == "classification":
                loss = F.cross_entropy(out, y[batch])
            else:
                target = model.standardize_targets(y[batch])
                loss = F.mse_loss(out.squeeze(-1), target)
            torch_optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch_optimizer.step()
    model.eval()


@torch.no_grad()
def outputs_of(model: Any, x: torch.Tensor, *, task: str) -> np.ndarray:
    """Outputs in batches for any callable model (scripted, quantized, traced)."""
    out = torch.cat(
        [model(x[start : start + _EVAL_BATCH]) for start in range(0, len(x), _EVAL_BATCH)]
    )
    if task == "regression" and out.ndim == 2 and out.shape[1] == 1:
        out = out[:, 0]
    return out.float().numpy()


def _refresh_rnn_weights(model: nn.Module) -> None:
    """Make recurrent layers read the weights that prune.remove re-registered."""
    for module in model.modules():
        if isinstance(module, nn.RNNBase):
            module._init_flat_weights()


@contextlib.contextmanager
def _quiet_deprecation() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\.ao\..*")
        yield

"""`archsearch compress RUN_DIR`: pruned and int8 variants of an exported model, measured.

The exported model is TorchScript; pruning and quantization work on the eager module, so it is
rebuilt from the config in model.json (with the input preparation refit on all training data,
as the export did) and given the exported weights, then checked to answer as the export does.
Each variant (pruned at each of `compression.prune_rates`, fine-tuned when
`compression.finetune_epochs` > 0; int8; pruned then int8) is saved as TorchScript, loaded
back with `torch.jit.load`, and measured like the original on the test split: its test
metrics, file size and single-sample, single-thread latency. The numbers go into model.json
under `compression`.
"""

from __future__ import annotations

import functools
import json
import logging
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import torch

from cluster.driver import load_search_data
from cluster.rundir import load_run_spec
from search_spaces.builder import build_model
from search_spaces.parameters import resolve
from trainers.atomic import write_atomically
from trainers.compression import (
    fine_tune,
    has_convolutions,
    outputs_of,
    prune_weights,
    quantize_dynamic_int8,
    quantize_static_int8,
    sparsity,
    to_torchscript,
)
from trainers.cost import measure_latency
from trainers.export import MODEL_FILE, ExportError, description_path, load_exported
from trainers.inputs import prepare
from trainers.metrics import compute_metrics

logger = logging.getLogger(__name__)

# Training samples that calibrate the activation scales of static quantization.
CALIBRATION_SAMPLES = 1024

# The rebuilt eager model must answer as the exported one does, to this tolerance.
_ATOL = 1e-4


def compress_run(
    run_dir: Path, *, model_path: Path | None = None, stream: TextIO | None = None
) -> dict[str, Any]:
    """Write and measure the compressed variants of `run_dir`'s exported model.

    Args:
        run_dir: A run directory with an exported model.
        model_path: The exported model to compress; default `run_dir/model.pt`.
        stream: Where to say what is measured; None says nothing.

    Returns:
        The `compression` entry written into the model's description: the settings and,
        for the original and each variant, its file, test metrics, size and latency.
    """
    spec = load_run_spec(run_dir)
    model_path = Path(model_path) if model_path else run_dir / MODEL_FILE
    scripted, description = load_exported(model_path)
    settings = spec.compression
    dataset, _ = load_search_data(spec)
    task = dataset.task

    inputs = prepare(dataset)
    eager = _rebuild(spec, description, inputs, dataset.n_outputs, scripted)
    x_test = _tensor(inputs.encode(dataset.x_test))
    x_train = _tensor(inputs.encode(dataset.x_train))
    _check_same(eager, scripted, x_test[:64])
    sample = x_test[:1]
    folder = model_path.parent / f"{model_path.stem}-compressed"

    def measure(name: str, path: Path, extra: dict[str, Any]) -> dict[str, Any]:
        loaded = torch.jit.load(str(path), map_location="cpu").eval()
        metrics = compute_metrics(
            task,
            dataset.y_test,
            outputs_of(loaded, x_test, task=task),
            n_classes=dataset.n_classes,
        )
        entry = {
            "variant": name,
            "file": str(path.relative_to(model_path.parent)),
            "size_bytes": path.stat().st_size,
            "latency_ms": measure_latency(loaded, sample),
            "test_metrics": metrics,
            **extra,
        }
        if stream is not None:
            shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items())
            stream.write(
                f"{name:<24} {entry['size_bytes'] / 1024:9.1f} KiB "
                f"{entry['latency_ms']:8.3f} ms  {shown}\n"
            )
            stream.flush()
        return entry

    def save(name: str, module: Any) -> Path:
        path = folder / f"{name}.pt"
        path.parent.mkdir(parents=True, exist_ok=True)
        script = to_torchscript(module)
        write_atomically(path, lambda file: torch.jit.save(script, file))
        return path

    entries = [measure("original", model_path, {"sparsity": sparsity(eager)})]

    quantize = _quantizer(eager, x_train, settings.quantize)
    if quantize is not None:
        name, make = quantize
        entries.append(measure(name, save(name, make(eager)), {"sparsity": sparsity(eager)}))

    tune = None
    if settings.finetune_epochs > 0:
        tune = functools.partial(
            fine_tune,
            x=x_train,
            y=torch.as_tensor(dataset.y_train),
            task=task,
            optimizer=_optimizer_section(description),
            epochs=settings.finetune_epochs,
            batch_size=int(description["config"]["optimizer.batch_size"]),
            seed=int(description.get("seed", 0)),
        )
    for rate in settings.prune_rates:
        pruned = prune_weights(eager, rate, finetune=tune)
        extra = {"prune_rate": rate, "sparsity": sparsity(pruned)}
        if tune is not None:
            extra["finetune_epochs"] = settings.finetune_epochs
        name = f"pruned-{rate:g}"
        entries.append(measure(name, save(name, pruned), extra))
        if quantize is not None:
            q_name = f"{name}-{quantize[0]}"
            entries.append(measure(q_name, save(q_name, quantize[1](pruned)), extra))

    compression = {"settings": settings.model_dump(), "variants": entries}
    _write_description(model_path, {**description, "compression": compression})
    return compression


def _optimizer_section(description: dict[str, Any]) -> dict[str, Any]:
    """The candidate's optimizer section, from the flat config saved in model.json."""
    return {
        key.removeprefix("optimizer."): value
        for key, value in description["config"].items()
        if key.startswith("optimizer.")
    }


def _quantizer(eager: torch.nn.Module, x_train: torch.Tensor, wanted: bool) -> Any:
    """(variant name, model -> int8 model) for this model, or None when not asked."""
    if not wanted:
        return None
    if has_convolutions(eager):
        generator = torch.Generator().manual_seed(0)
        rows = torch.randperm(len(x_train), generator=generator)[:CALIBRATION_SAMPLES]
        calibration = x_train[rows]
        return "int8-static", lambda model: quantize_static_int8(model, calibration)
    return "int8-dynamic", quantize_dynamic_int8


def _rebuild(
    spec: Any,
    description: dict[str, Any],
    inputs: Any,
    n_outputs: int,
    scripted: torch.jit.ScriptModule,
) -> torch.nn.Module:
    """The eager model the export scripted, with its weights."""
    parameters = spec.parameters()
    config = description["config"]
    candidate = resolve(parameters, {p.name: config.get(p.name) for p in parameters})
    inner = build_model(
        candidate["model"],
        dropout=candidate["regularization"]["dropout"],
        n_outputs=n_outputs,
        **inputs.model_arguments(),
    )
    eager = inputs.wrap(inner)
    try:
        eager.load_state_dict(scripted.state_dict())
    except RuntimeError as error:
        raise ExportError(
            f"compress: the exported model's weights do not fit the model its config builds "
            f"({str(error).splitlines()[0]}); export the model again with archsearch export"
        ) from error
    return eager.eval()


def _check_same(eager: torch.nn.Module, scripted: torch.jit.ScriptModule, x: torch.Tensor) -> None:
    with torch.no_grad():
        gap = (eager(x) - scripted(x)).abs().max().item()
    if not gap <= _ATOL:
        raise ExportError(
            f"compress: the rebuilt model differs from the exported one by {gap:.3g}; export "
            "the model again with archsearch export"
        )


def _tensor(x: np.ndarray) -> torch.Tensor:
    tensor = torch.as_tensor(np.asarray(x))
    return tensor.float() if tensor.is_floating_point() else tensor


def _write_description(model_path: Path, description: dict[str, Any]) -> None:
    text = json.dumps(description, indent=2, sort_keys=True)
    write_atomically(description_path(model_path), lambda file: file.write(text.encode()))

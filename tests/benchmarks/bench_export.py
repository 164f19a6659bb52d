"""Export: inference latency of the TorchScript file archsearch writes against eager mode.

Each model is built by `build_model`, exported by `export_model` (scripted, checked, written)
and loaded back by `load_exported`, as a user of the exported file would. Latency is the
median of `calls` forward passes under `torch.inference_mode`, after warm-up, on one thread.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.benchmarks.common import Section, markdown_table, ratio

MODELS = {
    "MLP (3 x 256) on 64 features": (
        {
            "family": "mlp",
            "depth": 3,
            "width": 256,
            "activation": "relu",
            "batch_norm": True,
            "connectivity": "plain",
        },
        (64,),
    ),
    "CNN (2 stages, 16/32 ch) on 1x28x28": (
        {
            "family": "cnn",
            "depth": 2,
            "convs_per_stage": 1,
            "channels": 16,
            "kernel_size": 3,
            "pooling": "max",
            "width": 64,
            "activation": "relu",
            "batch_norm": True,
            "connectivity": "plain",
        },
        (1, 28, 28),
    ),
    "LSTM (2 x 64) on 48 steps x 4": (
        {"family": "rnn", "cell": "lstm", "depth": 2, "width": 64},
        (48, 4),
    ),
}


@dataclass(frozen=True)
class Settings:
    calls: int = 200
    batches: tuple[int, ...] = (1, 64)


def _median_latency(model, x, *, calls: int) -> float:
    import torch

    with torch.inference_mode():
        for _ in range(max(5, calls // 10)):
            model(x)
        times = []
        for _ in range(calls):
            started = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def run(settings: Settings) -> Section:
    import torch

    from search_spaces.builder import build_model
    from trainers.export import export_model, load_exported

    started = time.perf_counter()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    rows, data = [], {}
    with tempfile.TemporaryDirectory() as scratch:
        for name, (section, shape) in MODELS.items():
            eager = build_model(section, dropout=0.0, input_shape=shape, n_outputs=10).eval()
            path = Path(scratch) / f"{len(data)}.pt"
            export_model(eager, path=path, example_input=torch.randn(4, *shape), metadata={})
            scripted, _ = load_exported(path)

            for batch in settings.batches:
                x = torch.randn(batch, *shape)
                t_eager = _median_latency(eager, x, calls=settings.calls)
                t_script = _median_latency(scripted, x, calls=settings.calls)
                rows.append(
                    [
                        name,
                        str(batch),
                        f"{t_eager * 1e3:.3f}",
                        f"{t_script * 1e3:.3f}",
                        ratio(t_script, t_eager),
                    ]
                )
                data[f"{name} / batch {batch}"] = t_script / t_eager

    body = "\n".join(
        [
            f"Median of {settings.calls} calls after warm-up, one thread, `torch.inference_mode`; "
            "below 1.00x the exported model is faster.",
            "",
            markdown_table(
                ["model", "batch", "eager (ms)", "TorchScript (ms)", "TorchScript / eager"], rows
            ),
        ]
    )
    return Section("Export", body, seconds=time.perf_counter() - started, data=data)

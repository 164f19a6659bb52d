"""Training throughput: archsearch's loop against a plain PyTorch loop, and k-fold lockstep.

`train_model` (the refit loop, the same `_Run.train_epoch` that cross-validation uses) trains
the model `build_model` makes; the plain loop trains the same architecture, built the same
way, with the same optimizer, batch size and epochs, on inputs standardised once beforehand.
Throughput is training samples per second, best of `repeats` runs.

Lockstep: `cross_validate` over k folds trains the k fold-models epoch by epoch, sharing one
copy of the data; against it, k separate `cross_validate` runs of one fold each.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from tests.benchmarks.common import Section, best_time, markdown_table, ratio

MLP = {
    "family": "mlp",
    "depth": 2,
    "width": 128,
    "activation": "relu",
    "batch_norm": False,
    "connectivity": "plain",
}
CNN = {
    "family": "cnn",
    "depth": 2,
    "convs_per_stage": 1,
    "channels": 16,
    "kernel_size": 3,
    "pooling": "max",
    "width": 64,
    "activation": "relu",
    "batch_norm": False,
    "connectivity": "plain",
}


@dataclass(frozen=True)
class Settings:
    epochs: int = 3
    repeats: int = 3
    fashion_subset: int = 2000
    folds: int = 3


def _config(model: dict[str, Any]) -> dict[str, Any]:
    return {
        "model": model,
        "regularization": {"dropout": 0.0, "l1": 0.0, "l2": 0.0},
        "optimizer": {"name": "adam", "lr": 1e-3, "batch_size": 64, "schedule": "none"},
    }


def _plain_loop(model_section: dict[str, Any], x: np.ndarray, y: np.ndarray, *, epochs: int):
    """What a PyTorch user writes by hand, for the same model and data."""
    import torch
    import torch.nn.functional as F

    from search_spaces.builder import build_model

    torch.manual_seed(0)
    model = build_model(
        model_section, dropout=0.0, input_shape=tuple(x.shape[1:]), n_outputs=int(y.max()) + 1
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    xt = torch.as_tensor((x - x.mean(axis=0)) / (x.std(axis=0) + 1e-8), dtype=torch.float32)
    yt = torch.as_tensor(y)
    generator = torch.Generator().manual_seed(0)

    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(xt), generator=generator)
        for start in range(0, len(xt), 64):
            batch = order[start : start + 64]
            loss = F.cross_entropy(model(xt[batch]), yt[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return model


def _datasets(settings: Settings) -> dict[str, Any]:
    from trainers.datasets import load_dataset, take_subset

    digits = load_dataset("digits", seed=0)
    fashion = take_subset(load_dataset("fashion_mnist", seed=0), settings.fashion_subset, seed=0)
    return {"MLP on digits": (MLP, digits), "CNN on Fashion-MNIST": (CNN, fashion)}


def run(settings: Settings) -> Section:
    import torch

    from trainers.folds import dataset_folds
    from trainers.loop import cross_validate, train_model

    started = time.perf_counter()
    # One thread, as a trial gets with cpus_per_trial: 1.
    torch.set_num_threads(1)
    rows, lock_rows, data = [], [], {}
    for name, (model, dataset) in _datasets(settings).items():
        x, y = dataset.x_train, dataset.y_train
        config = _config(model)
        samples = len(x) * settings.epochs

        def ours(config=config, x=x, y=y, dataset=dataset):
            train_model(
                config,
                x,
                y,
                task="classification",
                n_outputs=dataset.n_outputs,
                epochs=settings.epochs,
                seed=0,
            )

        def plain(model=model, x=x, y=y):
            _plain_loop(model, x, y, epochs=settings.epochs)

        t_ours = best_time(ours, repeats=settings.repeats)
        t_plain = best_time(plain, repeats=settings.repeats)
        rows.append(
            [
                name,
                str(len(x)),
                f"{samples / t_plain:,.0f}",
                f"{samples / t_ours:,.0f}",
                ratio(samples / t_ours, samples / t_plain),
            ]
        )

        folds = dataset_folds(dataset, n_folds=settings.folds, stratified=True, seed=0)

        def cv(folds, config=config, dataset=dataset):
            cross_validate(
                config,
                dataset,
                folds=folds,
                epochs=settings.epochs,
                patience=None,
                objective="accuracy",
                mode="max",
                seed=0,
            )

        t_lock = best_time(lambda folds=folds: cv(folds), repeats=settings.repeats)
        t_apart = best_time(
            lambda folds=folds: [cv([fold]) for fold in folds], repeats=settings.repeats
        )
        lock_rows.append(
            [name, str(settings.folds), f"{t_apart:.2f}", f"{t_lock:.2f}", ratio(t_lock, t_apart)]
        )
        data[name] = {
            "throughput_ratio": t_plain / t_ours,
            "lockstep_ratio": t_lock / t_apart,
        }

    body = "\n".join(
        [
            f"{settings.epochs} epochs, batch 64, Adam, one thread; best of {settings.repeats}.",
            "",
            markdown_table(
                [
                    "model and data",
                    "rows",
                    "plain PyTorch (samples/s)",
                    "archsearch (samples/s)",
                    "archsearch / plain",
                ],
                rows,
            ),
            "",
            "k-fold cross-validation in lockstep (one `cross_validate` over k folds) against "
            "k separate one-fold runs; below 1.00x lockstep is cheaper.",
            "",
            markdown_table(
                [
                    "model and data",
                    "k",
                    "k separate runs (s)",
                    "lockstep (s)",
                    "lockstep / separate",
                ],
                lock_rows,
            ),
        ]
    )
    return Section("Training throughput", body, seconds=time.perf_counter() - started, data=data)

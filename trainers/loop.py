"""The training loop: k-fold cross-validation of one config, and the refit of a winner.

The k fold-models train epoch by epoch in lockstep, so after every epoch the caller sees the
fold mean, the fold spread and every fold's value of every metric; schedulers and early
stopping then act on cross-validated curves rather than on one lucky split.

Randomness is owned here: weight initialisation, batch order and dropout masks are each drawn
from a seed derived from ``(seed, fold, epoch)``, under ``torch.random.fork_rng`` where torch
insists on its global generator, so a run is reproducible and leaves global state untouched.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from search_spaces.builder import build_model
from search_spaces.errors import ArchsearchError, SpecError
from trainers.inputs import Prepared, default_kind, fit_inputs, prepare
from trainers.metrics import compute_metrics, metric_names
from trainers.optim import make_lr_schedule, make_optimizer, weight_penalty
from trainers.preprocessing import Normalized

if TYPE_CHECKING:
    from trainers.datasets import Dataset

logger = logging.getLogger(__name__)

MODES: tuple[str, ...] = ("max", "min")

# Evaluation needs no gradients, so it can take bigger batches than training.
_EVAL_BATCH = 1024

# Tags that keep the seed streams of different random draws apart.
_INIT, _SHUFFLE, _DROPOUT = 0, 1, 2
_REFIT = -1

# Version of the file save_cv_state writes; load_cv_state refuses any other.
_STATE_FORMAT = 1

# {fold: this process's values of its own folds} -> every fold's values, in fold order.
Gather = Callable[[dict[int, dict[str, float]]], list[dict[str, float]]]


class TrialDiverged(ArchsearchError, FloatingPointError):
    """The training loss became NaN or infinite; the config cannot be scored."""


@dataclass
class EpochReport:
    """What cross-validation knows after one epoch of every fold-model.

    Attributes:
        epoch: 1-based epoch number.
        folds: Per fold, every metric of the task on its validation part, plus
            ``"train_loss"``: the mean training objective over the epoch's batches (data loss
            plus weight penalty; for regression the MSE in standardised target units).
        mean: Fold mean of each key of ``folds``.
        std: Fold standard deviation (population, ddof=0) of each key of ``folds``.
        seconds: Wall time of this epoch, all folds together.
        best_epoch: The epoch with the best fold-mean objective so far (this one included).
        final: No epoch follows this one: the last planned epoch, or early stopping ends here.
    """

    epoch: int
    folds: list[dict[str, float]]
    mean: dict[str, float]
    std: dict[str, float]
    seconds: float
    best_epoch: int = 0
    final: bool = False


@dataclass
class CVResult:
    """The outcome of :func:`cross_validate`.

    Attributes:
        epochs_run: How many epochs were trained before the end or early stopping.
        best_epoch: The epoch with the best fold-mean objective (the first, on ties).
        best: The report of ``best_epoch``.
        stopped_by_patience: Whether early stopping ended the run before ``epochs``.
        history: Every epoch's report, in order.
    """

    epochs_run: int
    best_epoch: int
    best: EpochReport
    stopped_by_patience: bool
    history: list[EpochReport] = field(default_factory=list)


@dataclass
class CVState:
    """Everything :func:`cross_validate` needs to go on after ``epoch`` as if never stopped.

    Randomness needs no state: every epoch draws from seeds derived from ``(seed, fold,
    epoch)``, so continuing from here gives the same numbers as an uninterrupted run.

    Attributes:
        epoch: Epochs completed.
        models: Per fold, the wrapped model's ``state_dict``.
        optimizers: Per fold, the optimizer's ``state_dict``.
        schedules: Per fold, the learning-rate schedule's ``state_dict``; None without one.
        history: Every epoch's report so far, in order.
        since_best: Epochs since the best one, for early stopping.
    """

    epoch: int
    models: list[dict[str, Any]]
    optimizers: list[dict[str, Any]]
    schedules: list[dict[str, Any] | None]
    history: list[EpochReport]
    since_best: int


def save_cv_state(state: CVState, path: str | Path) -> None:
    """Write ``state`` with ``torch.save``, as tensors and plain containers only."""
    torch.save(
        {
            "format": _STATE_FORMAT,
            "epoch": state.epoch,
            "models": state.models,
            "optimizers": state.optimizers,
            "schedules": state.schedules,
            "history": [dataclasses.asdict(report) for report in state.history],
            "since_best": state.since_best,
        },
        path,
    )


def load_cv_state(path: str | Path) -> CVState:
    """Read what :func:`save_cv_state` wrote; ``weights_only`` refuses pickled code.

    Raises:
        ArchsearchError: The file is not a state of this format.
    """
    raw = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(raw, dict) or raw.get("format") != _STATE_FORMAT:
        raise ArchsearchError(
            f"checkpoint: {path} is not a cross-validation state of format {_STATE_FORMAT}; "
            "delete it so the trial starts over"
        )
    return CVState(
        epoch=int(raw["epoch"]),
        models=list(raw["models"]),
        optimizers=list(raw["optimizers"]),
        schedules=list(raw["schedules"]),
        history=[EpochReport(**report) for report in raw["history"]],
        since_best=int(raw["since_best"]),
    )


@dataclass(frozen=True)
class _Settings:
    """The parts of a resolved config that the loop itself reads."""

    model: Mapping[str, Any]
    optimizer: Mapping[str, Any]
    dropout: float
    l1: float
    l2: float
    batch_size: int
    schedule: str

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> _Settings:
        for section in ("model", "optimizer"):
            if not isinstance(config.get(section), Mapping):
                raise SpecError(f"{section}: missing from the trial config; give that section")
        regularization = config.get("regularization") or {}
        optimizer = config["optimizer"]

        batch_size = optimizer.get("batch_size")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer):
            raise SpecError(
                f"optimizer.batch_size: got {batch_size!r}, but it must be an integer >= 1"
            )
        if batch_size < 1:
            raise SpecError(f"optimizer.batch_size: got {batch_size}, but it must be >= 1")

        return cls(
            model=config["model"],
            optimizer=optimizer,
            dropout=float(regularization.get("dropout") or 0.0),
            l1=float(regularization.get("l1") or 0.0),
            l2=float(regularization.get("l2") or 0.0),
            batch_size=int(batch_size),
            schedule=str(optimizer.get("schedule") or "none"),
        )


class _Run:
    """One model in training: the wrapped model, its optimizer and schedule, and its rows.

    Rows are indices into tensors shared by all folds, so the training data is held once on
    the device however many folds index it (text: once per fold, in that fold's token ids).
    The model is built for, and wrapped with, the input preparation fitted on its rows.
    """

    def __init__(
        self,
        settings: _Settings,
        *,
        inputs: Prepared,
        rows: np.ndarray,
        task: str,
        n_outputs: int,
        epochs: int,
        seed: int,
        stream: int,
        device: torch.device,
    ) -> None:
        self.settings = settings
        self.task = task
        self.seed = seed
        self.stream = stream
        self.device = device

        # Weights drawn under their own seed, outside the caller's global generator.
        with _seeded(_derive_seed(seed, _INIT, stream), device=torch.device("cpu")):
            inner = build_model(
                settings.model,
                dropout=settings.dropout,
                n_outputs=n_outputs,
                **inputs.model_arguments(),
            )
        self.model: Normalized = inputs.wrap(inner).to(device)

        self.optimizer = make_optimizer(self.model.parameters(), settings.optimizer)
        self.schedule = make_lr_schedule(self.optimizer, schedule=settings.schedule, epochs=epochs)
        self.rows = torch.as_tensor(rows, dtype=torch.long, device=device)

    def train_epoch(self, x: torch.Tensor, y: torch.Tensor, *, epoch: int) -> float:
        """Train one epoch on this run's rows of ``x``/``y``; return the mean batch loss."""
        self.model.train()
        n = len(self.rows)
        shuffle = torch.Generator().manual_seed(
            _derive_seed(self.seed, _SHUFFLE, self.stream, epoch)
        )
        order = self.rows[torch.randperm(n, generator=shuffle).to(self.device)]

        # Batch norm cannot train on a batch of one; skipping that lone leftover sample costs
        # one sample per epoch, a different one each epoch.
        stops = [s for s in range(0, n, self.settings.batch_size) if n - s > 1 or s == 0]

        total, count = torch.zeros((), device=self.device), 0
        with _seeded(_derive_seed(self.seed, _DROPOUT, self.stream, epoch), device=self.device):
            for start in stops:
                batch = order[start : start + self.settings.batch_size]
                loss = self._loss(x[batch], y[batch])
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
                total = total + loss.detach() * len(batch)
                count += len(batch)

        if self.schedule is not None:
            self.schedule.step()
        # One device sync per epoch: a NaN in any batch survives the sum.
        return float(total) / count

    def _loss(self, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        out = self.model.standardized(xb)  # (B, n_outputs)
        if self.task == "classification":
            loss = F.cross_entropy(out, yb)
        else:
            # The wrapper answers in original units; the loss lives in standardised units so
            # the learning rate means the same whatever the target's scale.
            loss = F.mse_loss(_squeeze_single(out), self.model.standardize_targets(yb))

        if self.settings.l1 or self.settings.l2:
            loss = loss + weight_penalty(self.model, l1=self.settings.l1, l2=self.settings.l2)
        return loss

    def predict(self, x: torch.Tensor, rows: torch.Tensor) -> np.ndarray:
        """Outputs in original units for ``x[rows]``: logits ``(N, K)`` or predictions ``(N,)``."""
        return predict(self.model, x[rows], task=self.task)


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor | np.ndarray, *, task: str) -> np.ndarray:
    """Eval-mode outputs in batches: logits ``(N, K)``, or predictions ``(N,)`` for regression."""
    model.eval()
    device = next(model.parameters()).device
    x = _as_inputs(x, device=device)
    out = torch.cat(
        [model(x[start : start + _EVAL_BATCH]) for start in range(0, len(x), _EVAL_BATCH)]
    )
    if task == "regression":
        out = _squeeze_single(out)
    return out.float().cpu().numpy()


def cross_validate(
    config: Mapping[str, Any],
    dataset: Dataset,
    *,
    folds: list[tuple[np.ndarray, np.ndarray]],
    epochs: int,
    patience: int | None,
    objective: str,
    mode: str,
    seed: int,
    on_epoch: Callable[[EpochReport], None] | None = None,
    device: str | torch.device = "cpu",
    on_checkpoint: Callable[[CVState], None] | None = None,
    resume: CVState | None = None,
    own_folds: Sequence[int] | None = None,
    gather: Gather | None = None,
) -> CVResult:
    """Score one config by k-fold cross-validation, training the fold-models in lockstep.

    Args:
        config: The resolved trial config: ``model``, ``regularization`` (``dropout``, ``l1``,
            ``l2``) and ``optimizer`` (``name``, ``lr``, ``momentum``, ``nesterov``,
            ``batch_size``, ``schedule``).
        dataset: The data; only its training part is used.
        folds: ``(train_indices, validation_indices)`` pairs into ``dataset.x_train``.
        epochs: Most epochs to train, >= 1.
        patience: Stop once the fold-mean objective has not improved for this many epochs;
            ``None`` never stops early.
        objective: A metric of the task (see ``trainers.metrics.metric_names``) or
            ``"train_loss"``.
        mode: ``"max"`` or ``"min"``: which direction of ``objective`` is better.
        seed: Seeds weights, batch order and dropout; the same seed gives the same numbers.
        on_epoch: Called with every epoch's report as soon as it exists.
        device: Where to train, e.g. ``"cpu"`` or ``"cuda:0"``.
        on_checkpoint: Called after every epoch but the last, just before ``on_epoch``, with
            the state to go on from. Its tensors are the live ones: save them during the call.
        resume: A state from ``on_checkpoint`` of a run with the same arguments; training
            goes on after its epoch, and the result covers the whole run.
        own_folds: Indices into ``folds`` that this process trains; None trains them all.
            Each fold draws from the same seeds wherever it trains, so splitting the folds
            over processes changes no number.
        gather: With ``own_folds``: called every epoch by every process with ``{fold: values}``
            of its own folds; returns every fold's values in fold order (an all-gather).

    Returns:
        The best epoch's report and how the run ended.

    Raises:
        SpecError: A setting is out of range or unknown.
        TrialDiverged: A fold's training loss became NaN or infinite.
    """
    _check_run_settings(
        epochs=epochs,
        patience=patience,
        objective=objective,
        mode=mode,
        task=dataset.task,
        folds=folds,
    )
    settings = _Settings.from_config(config)
    device = torch.device(device)
    own = list(range(len(folds))) if own_folds is None else list(own_folds)
    if (gather is None) != (own_folds is None):
        raise ValueError("cross_validate: give own_folds and gather together, or neither")

    # Each fold fits its input preparation on its own training rows. The whole training part
    # goes on the device once for all folds, or, where the rows are encoded (text), once per
    # fold in that fold's token ids.
    y = torch.as_tensor(dataset.y_train, device=device)
    runs: list[_Run] = []
    xs: list[torch.Tensor] = []
    shared: torch.Tensor | None = None
    for fold in own:
        train = folds[fold][0]
        inputs = prepare(dataset, np.asarray(train))
        if inputs.encodes:
            xs.append(_as_inputs(inputs.encode(dataset.x_train), device=device))
        else:
            shared = shared if shared is not None else _as_inputs(dataset.x_train, device=device)
            xs.append(shared)
        runs.append(
            _Run(
                settings,
                inputs=inputs,
                rows=np.asarray(train),
                task=dataset.task,
                n_outputs=dataset.n_outputs,
                epochs=epochs,
                seed=seed,
                stream=fold,
                device=device,
            )
        )
    validation = [
        torch.as_tensor(np.asarray(folds[fold][1]), dtype=torch.long, device=device)
        for fold in own
    ]

    history: list[EpochReport] = []
    best: EpochReport | None = None
    since_best = 0
    if resume is not None:
        history, best, since_best = _restore(runs, resume, epochs=epochs)
    for epoch in range(len(history) + 1, epochs + 1):
        report = _cv_epoch(
            runs,
            validation,
            xs,
            y,
            dataset=dataset,
            epoch=epoch,
            own=own,
            gather=gather,
            settings=settings,
        )
        history.append(report)
        logger.debug("epoch %d: %s = %.6g", epoch, objective, report.mean[objective])

        if best is None or _improves(report.mean[objective], best.mean[objective], mode=mode):
            best, since_best = report, 0
        else:
            since_best += 1
        stop = patience is not None and since_best >= patience and epoch < epochs

        # Decided before the report goes out, so a listener knows whether more will follow.
        report.best_epoch, report.final = best.epoch, stop or epoch == epochs
        if on_checkpoint is not None and not report.final:
            on_checkpoint(
                CVState(
                    epoch=epoch,
                    models=[run.model.state_dict() for run in runs],
                    optimizers=[run.optimizer.state_dict() for run in runs],
                    schedules=[
                        None if r.schedule is None else r.schedule.state_dict() for r in runs
                    ],
                    history=history,
                    since_best=since_best,
                )
            )
        if on_epoch is not None:
            on_epoch(report)
        if stop:
            logger.debug("early stop after epoch %d: no improvement for %d", epoch, patience)
            return CVResult(epoch, best.epoch, best, stopped_by_patience=True, history=history)

    assert best is not None  # epochs >= 1 was checked
    return CVResult(epochs, best.epoch, best, stopped_by_patience=False, history=history)


def train_model(
    config: Mapping[str, Any],
    x: np.ndarray,
    y: np.ndarray,
    *,
    task: str,
    n_outputs: int,
    epochs: int,
    seed: int,
    device: str | torch.device = "cpu",
    inputs: Prepared | None = None,
) -> Normalized:
    """Train one model on all of ``(x, y)`` for exactly ``epochs`` epochs (the refit).

    Args:
        config: The resolved trial config, as for :func:`cross_validate`.
        x: Rows ``(N, F)`` or ``(N, C, H, W)`` float32, texts ``(N,)``, or windows
            ``(N, T, F)``.
        y: Targets ``(N,)``: int64 classes or float32 values.
        task: ``"classification"`` or ``"regression"``.
        n_outputs: Classes K, or 1 for regression.
        epochs: Epochs to train, >= 1.
        seed: Seeds weights, batch order and dropout.
        device: Where to train; the model is returned there.
        inputs: The input preparation, fitted on ``(x, y)`` (``trainers.inputs.prepare``);
            keep it to encode new rows (text) and describe the model's inputs. None fits one
            here by ``default_kind(x)``; name series explicitly, since windows look like images.

    Returns:
        The :class:`~trainers.preprocessing.Normalized` model in eval mode: it takes raw inputs
        (token ids for text) and answers logits, or predictions in the target's units.

    Raises:
        SpecError: A setting is out of range or unknown.
        TrialDiverged: The training loss became NaN or infinite.
    """
    if epochs < 1:
        raise SpecError(f"training.epochs: got {epochs}, but it must be >= 1; raise it")
    settings = _Settings.from_config(config)
    device = torch.device(device)
    if inputs is None:
        inputs = fit_inputs(x, y, kind=default_kind(x), task=task)

    run = _Run(
        settings,
        inputs=inputs,
        rows=np.arange(len(x)),
        task=task,
        n_outputs=n_outputs,
        epochs=epochs,
        seed=seed,
        stream=_REFIT,
        device=device,
    )
    x_t = _as_inputs(inputs.encode(x), device=device)
    y_t = torch.as_tensor(y, device=device)

    for epoch in range(1, epochs + 1):
        loss = run.train_epoch(x_t, y_t, epoch=epoch)
        if not math.isfinite(loss):
            raise TrialDiverged(
                f"refit: training loss became {loss} at epoch {epoch} "
                f"(optimizer.lr={settings.optimizer.get('lr')}); lower optimizer.lr or "
                "strengthen regularization"
            )
        logger.debug("refit epoch %d: train_loss = %.6g", epoch, loss)

    return run.model.eval()


def _cv_epoch(
    runs: list[_Run],
    validation: list[torch.Tensor],
    xs: list[torch.Tensor],
    y: torch.Tensor,
    *,
    dataset: Dataset,
    epoch: int,
    own: list[int],
    gather: Gather | None,
    settings: _Settings,
) -> EpochReport:
    """Train every fold-model one epoch, score each on its validation part, and summarise."""
    started = time.perf_counter()
    mine: dict[int, dict[str, float]] = {}
    for fold, run, rows, x in zip(own, runs, validation, xs, strict=True):
        loss = run.train_epoch(x, y, epoch=epoch)
        if not math.isfinite(loss):
            if gather is None:
                raise _diverged(settings, fold=fold, loss=loss, epoch=epoch)
            # The other processes wait for this fold's values: send the loss, raise after.
            mine[fold] = {"train_loss": loss}
            continue

        outputs = run.predict(x, rows)
        y_true = dataset.y_train[rows.cpu().numpy()]
        values = compute_metrics(dataset.task, y_true, outputs, n_classes=dataset.n_classes)
        mine[fold] = {**{k: float(v) for k, v in values.items()}, "train_loss": loss}

    fold_values = list(mine.values()) if gather is None else gather(mine)
    for fold, values in enumerate(fold_values):
        if not math.isfinite(values["train_loss"]):
            # Every process sees the same gathered values, so every one raises this.
            raise _diverged(settings, fold=fold, loss=values["train_loss"], epoch=epoch)

    keys = list(fold_values[0])
    table = np.array([[f[k] for k in keys] for f in fold_values], dtype=np.float64)  # (k, M)
    return EpochReport(
        epoch=epoch,
        folds=fold_values,
        mean=dict(zip(keys, table.mean(axis=0).tolist(), strict=True)),
        std=dict(zip(keys, table.std(axis=0).tolist(), strict=True)),
        seconds=time.perf_counter() - started,
    )


def _diverged(settings: _Settings, *, fold: int, loss: float, epoch: int) -> TrialDiverged:
    return TrialDiverged(
        f"fold {fold}: training loss became {loss} at epoch {epoch} "
        f"(optimizer.lr={settings.optimizer.get('lr')}); lower optimizer.lr or "
        "strengthen regularization"
    )


def _check_run_settings(
    *,
    epochs: int,
    patience: int | None,
    objective: str,
    mode: str,
    task: str,
    folds: list[tuple[np.ndarray, np.ndarray]],
) -> None:
    if epochs < 1:
        raise SpecError(f"training.epochs: got {epochs}, but it must be >= 1; raise it")
    if patience is not None and patience < 1:
        raise SpecError(
            f"training.patience: got {patience}, but it must be >= 1, or null to never stop early"
        )
    if mode not in MODES:
        raise SpecError(f"evaluation.mode: got {mode!r}, but it must be max or min")

    allowed = (*metric_names(task), "train_loss")
    if objective not in allowed:
        raise SpecError(
            f"evaluation.metric: got {objective!r}, but for {task} it must be one of "
            f"{', '.join(allowed)}"
        )
    if not folds or any(len(train) == 0 or len(valid) == 0 for train, valid in folds):
        raise SpecError(
            "evaluation.folds: got an empty fold list or a fold with no training or validation "
            "rows; build folds with trainers.folds.make_folds"
        )


def _restore(
    runs: list[_Run], state: CVState, *, epochs: int
) -> tuple[list[EpochReport], EpochReport, int]:
    """Load ``state`` into ``runs``; returns the history, its best report and since_best."""
    if len(state.models) != len(runs) or not 1 <= state.epoch < epochs:
        raise ArchsearchError(
            f"checkpoint: a state of {len(state.models)} folds after epoch {state.epoch} "
            f"cannot continue a run of {len(runs)} folds and {epochs} epochs; delete it so "
            "the trial starts over"
        )
    for run, model, optimizer, schedule in zip(
        runs, state.models, state.optimizers, state.schedules, strict=True
    ):
        run.model.load_state_dict(model)
        run.optimizer.load_state_dict(optimizer)
        if run.schedule is not None and schedule is not None:
            run.schedule.load_state_dict(schedule)

    history = list(state.history)
    best_epoch = history[-1].best_epoch
    best = next(report for report in history if report.epoch == best_epoch)
    return history, best, state.since_best


def _improves(value: float, best: float, *, mode: str) -> bool:
    """Whether ``value`` strictly beats ``best``; NaN never beats, and anything beats NaN."""
    if math.isnan(value):
        return False
    if math.isnan(best):
        return True
    return value > best if mode == "max" else value < best


def _as_inputs(x: torch.Tensor | np.ndarray, *, device: torch.device) -> torch.Tensor:
    """Model inputs on ``device``: real values as float32, token ids as int64."""
    x = torch.as_tensor(x, device=device)
    return x.float() if x.is_floating_point() else x.long()


def _squeeze_single(out: torch.Tensor) -> torch.Tensor:
    """``(N, 1)`` regression outputs as ``(N,)``, to line up with ``(N,)`` targets."""
    return out.squeeze(-1) if out.dim() == 2 and out.shape[-1] == 1 else out


def _derive_seed(seed: int, *keys: int) -> int:
    """A 64-bit seed for one random stream, independent of every other ``keys`` combination."""
    entropy = [seed % 2**64, *(k % 2**32 for k in keys)]
    return int(np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint64)[0])


@contextlib.contextmanager
def _seeded(seed: int, *, device: torch.device) -> Iterator[None]:
    """Run the body with torch's global generators seeded, restoring them afterwards.

    Module construction and dropout draw from torch's global generators and offer no
    ``generator=`` argument; forking keeps the caller's random state as it was.
    """
    cuda = (
        [device.index if device.index is not None else torch.cuda.current_device()]
        if (device.type == "cuda")
        else []
    )
    with torch.random.fork_rng(devices=cuda):
        torch.random.default_generator.manual_seed(seed)
        for index in cuda:
            with torch.cuda.device(index):
                torch.cuda.manual_seed(seed)
        yield

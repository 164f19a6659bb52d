"""The report's figures, drawn with matplotlib's object API on the Agg canvas.

Each function takes plain numbers (no store, no spec) and returns a `matplotlib.figure.Figure` of
a fixed size in inches; saved at `DPI` it becomes a PNG of a known pixel size (`pixel_size`).
Nothing here touches pyplot's global state, so drawing is safe in any process.

Colours say the same thing in every figure: the winner is drawn on top, trials a scheduler stopped
early are marked with an x, trials that stopped on their own patience with a triangle.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DPI = 100

# Width and height in inches; objective_vs_params grows by one row per three parameters.
SIZES: dict[str, tuple[float, float]] = {
    "best_so_far": (12.0, 4.5),
    "learning_curves": (10.0, 5.5),
    "parallel_coordinates": (12.0, 5.5),
    "objective_vs_params": (12.0, 3.4),  # per row of three parameters
    "fold_spread": (10.0, 5.0),
    "confusion_matrix": (8.0, 7.0),
    "per_class_metrics": (10.0, 5.0),
    "residuals": (12.0, 5.0),
    "importance": (8.0, 4.5),
}
PARAMS_PER_ROW = 3

WINNER = "#d62728"
OTHERS = "#9a9a9a"
HIGHLIGHTS = ("#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e")
_LABEL_BOX = {"facecolor": "white", "edgecolor": "none", "alpha": 0.85, "pad": 1.0}
FOLD_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf")


@dataclass(frozen=True)
class Axis:
    """One searched parameter as the figures draw it.

    Attributes:
        name: The parameter's name, e.g. `optimizer.lr`.
        kind: `choice`, `int`, `float` or `log`.
        low, high: The range's bounds (ranges only).
        choices: The listed values (choices only), in the spec's order.
    """

    name: str
    kind: str
    low: float = 0.0
    high: float = 1.0
    choices: tuple[Any, ...] = ()

    def position(self, value: Any) -> float:
        """`value` on a 0..1 scale of this axis; NaN for a missing value (an unused parameter)."""
        if value is None:
            return math.nan
        if self.kind == "choice":
            index = self.choices.index(value) if value in self.choices else math.nan
            return 0.5 if len(self.choices) == 1 else index / (len(self.choices) - 1)
        if self.kind == "log":
            low, high, value = math.log10(self.low), math.log10(self.high), math.log10(value)
        else:
            low, high = self.low, self.high
        return 0.5 if high == low else (float(value) - low) / (high - low)

    def ticks(self) -> list[tuple[float, str]]:
        """(position, label) pairs to write beside the axis."""
        if self.kind == "choice":
            return [(self.position(c), _short(c)) for c in self.choices]
        return [(0.0, _short(self.low)), (1.0, _short(self.high))]


@dataclass(frozen=True)
class Curve:
    """One trial's learning curve: the fold mean and std of the objective after each epoch.

    Attributes:
        trial_id: The trial.
        epochs: Epoch numbers, `(E,)`.
        mean: Fold mean of the objective per epoch, `(E,)`.
        std: Fold std (ddof 0) per epoch, `(E,)`.
        ended: `scheduler` (stopped early by the scheduler), `patience` (stopped itself) or
            `full` (ran every epoch).
    """

    trial_id: str
    epochs: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    ended: str


def pixel_size(name: str, *, n_params: int = 1) -> tuple[int, int]:
    """(width, height) in pixels of the PNG of figure `name`."""
    width, height = SIZES[name]
    if name == "objective_vs_params":
        height *= max(1, math.ceil(n_params / PARAMS_PER_ROW))
    return round(width * DPI), round(height * DPI)


def new_figure(name: str, *, n_params: int = 1) -> Figure:
    from matplotlib.figure import Figure

    width, height = pixel_size(name, n_params=n_params)
    return Figure(figsize=(width / DPI, height / DPI), dpi=DPI, layout="constrained")


# -- the search ---------------------------------------------------------------------------------


def best_so_far(
    *,
    values: np.ndarray,
    stds: np.ndarray,
    minutes: np.ndarray,
    stopped: np.ndarray,
    objective: str,
    mode: str,
) -> Figure:
    """Two panels: the best fold-mean objective so far against trials finished and wall time.

    Args:
        values: Each trial's fold-mean objective, `(T,)`, in the order trials finished; NaN
            for trials without one (failed).
        stds: Its fold std, `(T,)`.
        minutes: When each trial finished, minutes after the search started, `(T,)`.
        stopped: True where a scheduler stopped the trial early, `(T,)`.
    """
    figure = new_figure("best_so_far")
    by_trial, by_time = figure.subplots(1, 2, sharey=True)
    best, best_std = _running_best(values, stds, mode=mode)
    finite = np.isfinite(values)
    scale, unit = _time_unit(float(minutes.max()) if len(minutes) else 0.0)

    for axes, x, label in (
        (by_trial, np.arange(1, len(values) + 1), "trials finished"),
        (by_time, minutes * scale, f"{unit} since the search started"),
    ):
        axes.scatter(
            x[finite & ~stopped],
            values[finite & ~stopped],
            s=22,
            color="#1f77b4",
            zorder=3,
            label="trial (ran to the end)",
        )
        axes.scatter(
            x[finite & stopped],
            values[finite & stopped],
            s=26,
            marker="x",
            color=OTHERS,
            zorder=3,
            label="trial (stopped early)",
        )
        axes.step(x, best, where="post", color=WINNER, linewidth=2, label="best so far")
        axes.fill_between(
            x,
            best - best_std,
            best + best_std,
            step="post",
            color=WINNER,
            alpha=0.15,
            linewidth=0,
            label="best's fold std",
        )
        axes.set_xlabel(label)
        axes.grid(alpha=0.3)
    # From the start, so the time before the first trial ended (Ray, data, warm-up) shows.
    by_time.set_xlim(0.0, max(float(minutes.max() * scale), 1e-9) * 1.03 if len(minutes) else 1.0)
    by_trial.set_ylabel(f"{objective} (fold mean)")
    by_trial.legend(loc="best", fontsize=8)
    figure.suptitle(f"Best {objective} so far ({_direction(mode)} is better)")
    return figure


def learning_curves(
    curves: Sequence[Curve], *, highlight: Sequence[str], objective: str, mode: str
) -> Figure:
    """Every trial's fold-mean curve; the `highlight` trials (best first) in colour with their
    fold std as a band, the rest grey. Where a trial ended early its last point is marked."""
    figure = new_figure("learning_curves")
    axes = figure.subplots()
    colour = {tid: HIGHLIGHTS[i % len(HIGHLIGHTS)] for i, tid in enumerate(highlight)}

    # Grey first, so the highlighted trials are drawn over them.
    ordered = sorted(curves, key=lambda c: c.trial_id in colour)
    for curve in ordered:
        shade = colour.get(curve.trial_id, OTHERS)
        chosen = curve.trial_id in colour
        label = f"#{highlight.index(curve.trial_id) + 1} {curve.trial_id}" if chosen else None
        axes.plot(
            curve.epochs,
            curve.mean,
            color=shade,
            linewidth=2 if chosen else 0.8,
            alpha=1.0 if chosen else 0.6,
            label=label,
            zorder=3 if chosen else 2,
        )
        if chosen:
            axes.fill_between(
                curve.epochs,
                curve.mean - curve.std,
                curve.mean + curve.std,
                color=shade,
                alpha=0.15,
                linewidth=0,
            )
        if curve.ended != "full" and len(curve.epochs):
            marker = "x" if curve.ended == "scheduler" else "v"
            axes.scatter(
                curve.epochs[-1:], curve.mean[-1:], marker=marker, s=40, color=shade, zorder=4
            )

    axes.scatter([], [], marker="x", color="black", label="stopped by the scheduler")
    axes.scatter([], [], marker="v", color="black", label="stopped by patience")
    handles, labels = axes.get_legend_handles_labels()
    # Ranked trials first, best at the top, then the markers' meaning.
    order = sorted(range(len(labels)), key=lambda i: _legend_rank(labels[i]))
    axes.set_xlabel("epoch")
    axes.set_ylabel(f"{objective} (fold mean, band: fold std)")
    axes.xaxis.get_major_locator().set_params(integer=True)
    axes.grid(alpha=0.3)
    figure.legend(
        [handles[i] for i in order],
        [labels[i] for i in order],
        loc="outside right upper",
        fontsize=8,
    )
    axes.set_title(f"Learning curves of {len(curves)} trials ({_direction(mode)} is better)")
    return figure


def parallel_coordinates(
    axes_spec: Sequence[Axis],
    rows: Sequence[Mapping[str, Any]],
    values: np.ndarray,
    *,
    objective: str,
    mode: str,
    winner: int | None,
) -> Figure:
    """One line per trial through its parameter values and its objective, coloured by the
    objective (brighter is better); `winner` (an index into `rows`) is drawn thick on top."""
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    figure = new_figure("parallel_coordinates")
    axes = figure.subplots()
    finite = np.isfinite(values)
    low, high = (
        (float(values[finite].min()), float(values[finite].max())) if finite.any() else (0, 1)
    )
    norm = Normalize(low, high if high > low else low + 1e-12)
    cmap = colormaps["viridis" if mode == "max" else "viridis_r"]
    objective_axis = len(axes_spec)

    order = sorted(np.flatnonzero(finite), key=lambda i: (i == winner, _goodness(values[i], mode)))
    for i in order:
        ys = [a.position(rows[i].get(a.name)) for a in axes_spec]
        ys.append(float(norm(values[i])) if high > low else 0.5)
        is_winner = i == winner
        axes.plot(
            range(objective_axis + 1),
            ys,
            color="black" if is_winner else cmap(norm(values[i])),
            linewidth=3 if is_winner else 1.2,
            alpha=1.0 if is_winner else 0.8,
            zorder=3 if is_winner else 2,
        )

    for x, axis in enumerate(axes_spec):
        axes.axvline(x, color="#444444", linewidth=0.8, zorder=1)
        for y, text in axis.ticks():
            axes.text(x + 0.03, y, text, fontsize=7, va="center", zorder=5, bbox=_LABEL_BOX)
    axes.axvline(objective_axis, color="#444444", linewidth=0.8, zorder=1)
    for y, number in ((0.0, low), (1.0, high)):
        axes.text(
            objective_axis + 0.03,
            y,
            f"{number:.4g}",
            fontsize=7,
            va="center",
            zorder=5,
            bbox=_LABEL_BOX,
        )

    axes.set_xticks(range(objective_axis + 1))
    axes.set_xticklabels([a.name for a in axes_spec] + [objective], rotation=20, ha="right")
    axes.set_yticks([])
    axes.set_ylim(-0.05, 1.05)
    axes.set_xlim(-0.2, objective_axis + 0.4)
    for side in ("top", "right", "left"):
        axes.spines[side].set_visible(False)
    figure.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=axes, label=objective, pad=0.01)
    winner_note = "; the winner in black" if winner is not None else ""
    axes.set_title(
        f"Parameters of {int(finite.sum())} trials, coloured by {objective}{winner_note}"
    )
    return figure


def objective_vs_params(
    axes_spec: Sequence[Axis],
    rows: Sequence[Mapping[str, Any]],
    values: np.ndarray,
    stds: np.ndarray,
    stopped: np.ndarray,
    *,
    objective: str,
    mode: str,
    winner: int | None,
    seed: int = 0,
) -> Figure:
    """One panel per parameter: each trial's fold-mean objective (with its fold std) against
    the parameter's value; choices are spread a little sideways so equal values stay visible,
    with the mean per choice as a bar."""
    from matplotlib.ticker import MaxNLocator, NullFormatter

    figure = new_figure("objective_vs_params", n_params=len(axes_spec))
    n_rows = max(1, math.ceil(len(axes_spec) / PARAMS_PER_ROW))
    grid = np.atleast_1d(figure.subplots(n_rows, PARAMS_PER_ROW, sharey=True, squeeze=False))
    panels = grid.ravel()
    jitter = np.random.default_rng(seed)
    finite = np.isfinite(values)

    for panel, axis in zip(panels, axes_spec, strict=False):
        raw = [row.get(axis.name) for row in rows]
        used = np.array([v is not None for v in raw]) & finite
        if axis.kind == "choice":
            x = np.array([axis.choices.index(v) if v in axis.choices else np.nan for v in raw])
            x_drawn = x + jitter.uniform(-0.15, 0.15, size=len(x))
            for index in range(len(axis.choices)):
                here = used & ~stopped & (x == index)
                if here.any():
                    panel.hlines(values[here].mean(), index - 0.3, index + 0.3, color="black")
            panel.set_xticks(range(len(axis.choices)))
            panel.set_xticklabels([_short(c) for c in axis.choices], fontsize=8)
        else:
            x = np.array([np.nan if v is None else float(v) for v in raw])
            x_drawn = x
            # The whole searched range, so the panel shows where in it the trials fell.
            if axis.kind == "log":
                panel.set_xscale("log")
                panel.xaxis.set_minor_formatter(NullFormatter())
                panel.set_xlim(axis.low / 1.25, axis.high * 1.25)
            else:
                margin = 0.05 * (axis.high - axis.low)
                panel.set_xlim(axis.low - margin, axis.high + margin)
            if axis.kind == "int":
                panel.xaxis.set_major_locator(MaxNLocator(integer=True))

        for mask, marker, colour in (
            (used & ~stopped, "o", "#1f77b4"),
            (used & stopped, "x", OTHERS),
        ):
            panel.errorbar(
                x_drawn[mask],
                values[mask],
                yerr=stds[mask],
                fmt=marker,
                color=colour,
                markersize=4,
                elinewidth=0.8,
                alpha=0.8,
            )
        if winner is not None and used[winner]:
            panel.scatter(
                x_drawn[winner], values[winner], marker="*", s=160, color=WINNER, zorder=4
            )
        panel.set_xlabel(axis.name)
        panel.grid(alpha=0.3)

    for panel in panels[len(axes_spec) :]:
        panel.set_visible(False)
    for row in grid:
        row[0].set_ylabel(objective)
    figure.suptitle(
        f"{objective} against each parameter (star: winner, x: stopped early; "
        f"{_direction(mode)} is better)"
    )
    return figure


def fold_spread(
    labels: Sequence[str],
    folds: np.ndarray,
    *,
    objective: str,
    mode: str,
) -> Figure:
    """The top trials' per-fold values of the objective metric (one colour per fold, the same
    folds for every trial), with their mean and std; best trial at the top.

    Args:
        labels: One label per trial, best first.
        folds: `(T, K)` per-fold values at each trial's best epoch.
    """
    figure = new_figure("fold_spread")
    axes = figure.subplots()
    positions = np.arange(len(labels))[::-1]  # the best trial at the top

    for y, row in zip(positions, folds, strict=True):
        if np.isnan(row).all():
            continue  # a trial whose fold values were not recorded
        mean, std = float(np.nanmean(row)), float(np.nanstd(row))
        axes.hlines(y, mean - std, mean + std, color="black", linewidth=1.5)
        axes.vlines(mean, y - 0.25, y + 0.25, color="black", linewidth=2)
    for fold in range(folds.shape[1]):
        axes.scatter(
            folds[:, fold],
            positions,
            s=30,
            zorder=3,
            color=FOLD_COLOURS[fold % len(FOLD_COLOURS)],
            label=f"fold {fold}",
        )

    axes.set_yticks(positions)
    axes.set_yticklabels(labels, fontsize=8)
    axes.set_xlabel(f"{objective} on each validation fold (bar: mean, line: +- std)")
    axes.grid(axis="x", alpha=0.3)
    figure.legend(loc="outside lower center", fontsize=8, ncol=min(folds.shape[1], 7))
    axes.set_title(
        f"Fold-to-fold spread of the top {len(labels)} trials ({_direction(mode)} is better)"
    )
    return figure


# -- the exported model on the test split -------------------------------------------------------


def confusion_matrix(matrix: np.ndarray, class_names: Sequence[str], *, accuracy: float) -> Figure:
    """Rows: true class, columns: predicted; colour is the share of the row, text the count.

    Args:
        matrix: `(K, K)` counts.
    """
    figure = new_figure("confusion_matrix")
    axes = figure.subplots()
    totals = matrix.sum(axis=1, keepdims=True)
    shares = np.divide(matrix, totals, out=np.zeros(matrix.shape, dtype=float), where=totals > 0)
    image = axes.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)

    k = len(class_names)
    if k <= 20:
        for (i, j), count in np.ndenumerate(matrix):
            colour = "white" if shares[i, j] > 0.5 else "black"
            axes.text(j, i, str(int(count)), ha="center", va="center", fontsize=7, color=colour)
    axes.set_xticks(range(k))
    axes.set_yticks(range(k))
    axes.set_xticklabels(class_names, rotation=45, ha="right", fontsize=8)
    axes.set_yticklabels(class_names, fontsize=8)
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    figure.colorbar(image, ax=axes, label="share of the true class", shrink=0.8)
    axes.set_title(f"Confusion matrix on the test split (accuracy {accuracy:.4f})")
    return figure


def per_class_metrics(
    class_names: Sequence[str],
    precision: np.ndarray,
    recall: np.ndarray,
    f1: np.ndarray,
    support: np.ndarray,
) -> Figure:
    """Precision, recall and F1 of each class on the test split, with their macro averages."""
    figure = new_figure("per_class_metrics")
    axes = figure.subplots()
    x = np.arange(len(class_names))
    width = 0.27
    for offset, (name, values, colour) in zip(
        (-width, 0.0, width),
        (
            ("precision", precision, "#1f77b4"),
            ("recall", recall, "#ff7f0e"),
            ("F1", f1, "#2ca02c"),
        ),
        strict=True,
    ):
        axes.bar(
            x + offset, values, width, color=colour, label=f"{name} (macro {values.mean():.3f})"
        )

    axes.set_xticks(x)
    axes.set_xticklabels(
        [f"{n}\n({int(s)})" for n, s in zip(class_names, support, strict=True)], fontsize=7
    )
    axes.set_ylim(0.0, 1.05)
    axes.set_ylabel("score on the test split")
    axes.grid(axis="y", alpha=0.3)
    figure.legend(loc="outside lower center", fontsize=8, ncol=3)
    axes.set_title("Per-class precision, recall and F1 (test samples per class in brackets)")
    return figure


def residuals(y_true: np.ndarray, y_pred: np.ndarray, *, units: str = "target units") -> Figure:
    """Regression on the test split: predicted against true, and residual against predicted."""
    figure = new_figure("residuals")
    versus, spread = figure.subplots(1, 2)
    residual = y_pred - y_true
    low, high = float(min(y_true.min(), y_pred.min())), float(max(y_true.max(), y_pred.max()))

    versus.scatter(y_true, y_pred, s=12, alpha=0.6)
    versus.plot([low, high], [low, high], color=WINNER, linewidth=1, label="perfect")
    versus.set_xlabel(f"true ({units})")
    versus.set_ylabel(f"predicted ({units})")
    versus.legend(loc="upper left", fontsize=8)
    versus.grid(alpha=0.3)

    spread.scatter(y_pred, residual, s=12, alpha=0.6)
    spread.axhline(0.0, color=WINNER, linewidth=1)
    spread.set_xlabel(f"predicted ({units})")
    spread.set_ylabel("residual (predicted - true)")
    spread.grid(alpha=0.3)
    rmse = float(np.sqrt(np.mean(residual**2)))
    figure.suptitle(f"Residuals on the test split ({len(y_true)} samples, RMSE {rmse:.4g})")
    return figure


# -- why ----------------------------------------------------------------------------------------


def importance(scores: Mapping[str, float], *, method: str, trials: int) -> Figure:
    """Each parameter's share of the objective's variance, largest at the top."""
    figure = new_figure("importance")
    axes = figure.subplots()
    names = list(scores)[::-1]
    values = [scores[n] for n in names]
    axes.barh(names, values, color="#1f77b4")
    for y, value in enumerate(values):
        axes.text(value, y, f" {value:.2f}", va="center", fontsize=8)
    axes.set_xlim(0.0, max(values + [0.0]) * 1.15 or 1.0)
    axes.set_xlabel("share of the objective's variance explained")
    axes.grid(axis="x", alpha=0.3)
    axes.set_title(f"Which parameters mattered ({method}, {trials} trials)")
    return figure


# -- helpers ------------------------------------------------------------------------------------


def _running_best(
    values: np.ndarray, stds: np.ndarray, *, mode: str
) -> tuple[np.ndarray, np.ndarray]:
    """Best value so far after each trial, and the fold std of the trial that holds it."""
    best = np.full(len(values), np.nan)
    best_std = np.full(len(values), np.nan)
    current, current_std = math.nan, math.nan
    for i, (value, std) in enumerate(zip(values, stds, strict=True)):
        if math.isfinite(value) and (
            not math.isfinite(current) or _goodness(value, mode) > _goodness(current, mode)
        ):
            current, current_std = float(value), float(std)
        best[i], best_std[i] = current, current_std
    return best, best_std


def _legend_rank(label: str) -> tuple[int, int]:
    """`#3 abc` sorts by 3; other labels (marker meanings) after every trial."""
    if label.startswith("#"):
        return (0, int(label[1:].split()[0]))
    return (1, 0)


def _time_unit(minutes: float) -> tuple[float, str]:
    """(factor from minutes, unit name) that keeps a time axis of `minutes` readable."""
    if minutes < 2:
        return 60.0, "seconds"
    if minutes > 180:
        return 1 / 60, "hours"
    return 1.0, "minutes"


def _goodness(value: float, mode: str) -> float:
    return value if mode == "max" else -value


def _direction(mode: str) -> str:
    return "higher" if mode == "max" else "lower"


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)

"""`archsearch report`: one self-contained HTML page and its figures as PNG, from a run directory.

The page answers three questions in order: which architecture won (the winner's config and its
fold mean +- std), by how much (against the runner-up on the very same folds, and against the
typical trial), and why (which parameters explained most of the objective's variance, and the
winner's values of them). Then come the figures, each with a line saying what it shows, the top
trials, and the exported model's scores on the test split.

Everything is read from the run directory: the store (trials, folds, epochs), the spec as run,
and the exported `model.pt`, which is scored again here on the test split for the confusion
matrix (or the residuals, for regression). A run without an exported model gets a report
without those figures and a note saying how to add them. The HTML embeds its images as base64
and loads nothing from anywhere else (its Content-Security-Policy forbids it).
"""

from __future__ import annotations

import base64
import html
import logging
import math
import statistics
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cluster import figures
from cluster.results import ranked_trials, show_cell, status_counts
from cluster.rundir import SPEC_FILE, load_run_spec
from search_spaces.domains import Choice, IntRange, LogRange
from search_spaces.errors import StoreError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from cluster.spec import Spec

logger = logging.getLogger(__name__)

REPORT_FOLDER = "report"
HTML_FILE = "report.html"
TOP_TRIALS = 10  # trials in the fold-spread figure and the table
HIGHLIGHTED = 5  # trials drawn in colour among the learning curves
MIN_TRIALS_FOR_IMPORTANCE = 4
ROUGH_BELOW = 30  # fewer trials than this make the importance estimate a rough one
IMPORTANCE_METHOD = "fANOVA via optuna"


@dataclass(frozen=True)
class FigureFile:
    """One figure as written: its name, the line that says what it shows, its PNG and size."""

    name: str
    title: str
    path: Path
    width: int
    height: int


@dataclass
class Report:
    """What `write_report` wrote."""

    html: Path
    figures: list[FigureFile] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class TestScores:
    """The exported model's outputs on the test split."""

    y_true: np.ndarray  # (N,)
    outputs: np.ndarray  # (N, K) logits, or (N,) predictions for regression
    class_names: tuple[str, ...] | None
    description: dict[str, Any]


@dataclass
class _Run:
    """A run's numbers, gathered once for every figure and section."""

    run_dir: Path
    spec: Spec
    trials: list[dict[str, Any]]  # in the order they finished
    ranked: list[dict[str, Any]]  # best objective first
    folds: dict[str, list[dict[str, Any]]]  # trial_id -> its fold rows
    epochs: dict[str, list[dict[str, Any]]]  # trial_id -> its epoch rows
    finished_minutes: np.ndarray  # (T,) in the order of `trials`

    @property
    def metric(self) -> str:
        return self.spec.evaluation.metric

    @property
    def objective(self) -> str:
        return self.spec.objective

    @property
    def winner(self) -> dict[str, Any] | None:
        best = self.ranked[0] if self.ranked else None
        return best if best is not None and _finite(best.get(self.objective)) else None

    def column(self, name: str) -> np.ndarray:
        return np.array([_float(row.get(name)) for row in self.trials])


def write_report(run_dir: Path, *, output: Path | None = None, seed: int = 0) -> Report:
    """Write `report.html` and one PNG per figure into `output` (default `RUN_DIR/report`).

    Args:
        run_dir: A run directory that `archsearch run` wrote.
        output: The folder to write; created if missing, files in it replaced.
        seed: Seeds the importance estimate and the sideways spread of equal values.

    Raises:
        StoreError: The run directory holds no results store, or no trial yet.
    """
    run = _load_run(Path(run_dir))
    output = Path(output) if output is not None else run.run_dir / REPORT_FOLDER
    output.mkdir(parents=True, exist_ok=True)
    report = Report(html=output / HTML_FILE)

    drawn: list[tuple[str, str, Figure]] = [
        ("best_so_far", _BEST_SO_FAR, _best_so_far(run)),
        ("learning_curves", _LEARNING_CURVES, _learning_curves(run)),
        ("parallel_coordinates", _PARALLEL, _parallel_coordinates(run)),
        ("objective_vs_params", _VERSUS_PARAMS, _objective_vs_params(run, seed=seed)),
        ("fold_spread", _FOLD_SPREAD, _fold_spread(run)),
    ]

    importances = parameter_importance(run, seed=seed, notes=report.notes)
    if importances:
        figure = figures.importance(
            importances, method=IMPORTANCE_METHOD, trials=_finite_count(run)
        )
        drawn.append(("importance", _IMPORTANCE, figure))

    scores = score_exported_model(run.run_dir, run.spec, notes=report.notes)
    if scores is not None:
        drawn += _test_figures(scores)

    for name, title, figure in drawn:
        path = output / f"{name}.png"
        figure.savefig(path, dpi=figures.DPI, format="png")
        width, height = figure.canvas.get_width_height()
        report.figures.append(FigureFile(name, title, path, width, height))

    page = _html_page(run, report, scores=scores, importances=importances)
    temporary = report.html.with_name(f".{HTML_FILE}.tmp")
    temporary.write_text(page, encoding="utf-8")
    temporary.replace(report.html)
    logger.info("wrote %s with %d figures", report.html, len(report.figures))
    return report


# -- gathering ----------------------------------------------------------------------------------


def _load_run(run_dir: Path) -> _Run:
    from cluster.store import read_table

    spec = load_run_spec(run_dir)
    trials = read_table(run_dir, "trials").to_pylist()
    if not trials:
        raise StoreError(
            f"report: {run_dir} holds no finished trial yet; run the search (or let it finish "
            "a trial) and try again"
        )

    # FIXME: the store keeps no finish time, so the part file's modification time stands in;
    # a copy of the run directory that does not keep modification times shows them all at
    # the moment of the copy. A finished-at column in the trials table would end this.
    started = (run_dir / SPEC_FILE).stat().st_mtime
    finished = {
        row["trial_id"]: (run_dir / "trials" / f"part-{row['trial_id']}.parquet").stat().st_mtime
        for row in trials
    }
    trials.sort(key=lambda row: (finished[row["trial_id"]], row.get("trial_number") or 0))
    minutes = np.array([max(finished[r["trial_id"]] - started, 0.0) / 60 for r in trials])

    return _Run(
        run_dir=run_dir,
        spec=spec,
        trials=trials,
        ranked=ranked_trials(run_dir, spec),
        folds=_by_trial(read_table(run_dir, "folds").to_pylist()),
        epochs=_by_trial(read_table(run_dir, "epochs").to_pylist()),
        finished_minutes=minutes,
    )


def _by_trial(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        grouped.setdefault(row["trial_id"], []).append(row)
    return grouped


def _axes(spec: Spec) -> list[figures.Axis]:
    axes = []
    for parameter in spec.parameters():
        domain = parameter.domain
        if not parameter.searched:
            continue
        if isinstance(domain, Choice):
            axes.append(figures.Axis(parameter.name, "choice", choices=tuple(domain.values)))
        else:
            kind = (
                "int"
                if isinstance(domain, IntRange)
                else "log"
                if isinstance(domain, LogRange)
                else "float"
            )
            axes.append(figures.Axis(parameter.name, kind, low=domain.low, high=domain.high))
    return axes


def _params(row: Mapping[str, Any]) -> dict[str, Any]:
    return {k.removeprefix("param."): v for k, v in row.items() if k.startswith("param.")}


# -- the figures of the search ------------------------------------------------------------------

_BEST_SO_FAR = (
    "Best fold-mean objective so far against trials finished and against wall time; dots are "
    "trials (x: stopped early), the band is the best trial's fold std."
)
_LEARNING_CURVES = (
    "Fold-mean objective per epoch for every trial; the top trials in colour with their fold "
    "std as a band; x marks a trial the scheduler stopped, a triangle one its patience stopped."
)
_PARALLEL = (
    "Parallel coordinates: one line per trial through its parameter values (ranges scaled to "
    "the searched bounds) to its objective, coloured by the objective; the winner in black."
)
_VERSUS_PARAMS = (
    "The objective against each searched parameter, with each trial's fold std as an error bar "
    "and, for choices, the mean per value of the trials that ran to the end as a bar; the star "
    "is the winner."
)
_FOLD_SPREAD = (
    "Per-fold values of the objective for the top trials at their best epoch; every trial uses "
    "the same folds, so a fold that is hard for all of them shows as one colour lagging."
)
_CONFUSION = (
    "Confusion matrix of the exported model on the untouched test split: rows are true "
    "classes, colour is the share of each row, numbers are counts."
)
_PER_CLASS = "Precision, recall and F1 of each class on the test split, with macro averages."
_RESIDUALS = (
    "The exported model on the test split: predicted against true values, and the residuals "
    "against the predictions."
)
_IMPORTANCE = (
    "Which parameters mattered: each searched parameter's share of the objective's variance "
    "across trials (fANOVA via optuna)."
)


def _best_so_far(run: _Run) -> Figure:
    return figures.best_so_far(
        values=run.column(run.objective),
        stds=run.column(f"{run.metric}_std"),
        minutes=run.finished_minutes,
        stopped=np.array([row["status"] == "pruned" for row in run.trials]),
        objective=run.objective,
        mode=run.spec.mode,
    )


def _learning_curves(run: _Run) -> Figure:
    max_epochs = run.spec.training.epochs
    curves = []
    for row in run.trials:
        if not _finite(row.get(run.objective)):
            continue  # failed trials have no curve worth drawing
        epochs = sorted({r["epoch"] for r in run.epochs.get(row["trial_id"], [])})
        per_epoch = [
            [r[run.metric] for r in run.epochs[row["trial_id"]] if r["epoch"] == e] for e in epochs
        ]
        if row["status"] == "pruned":
            ended = "scheduler"
        elif len(epochs) < max_epochs:
            ended = "patience"
        else:
            ended = "full"
        curves.append(
            figures.Curve(
                trial_id=row["trial_id"],
                epochs=np.array(epochs),
                mean=np.array([np.mean(v) for v in per_epoch]),
                std=np.array([np.std(v) for v in per_epoch]),  # ddof 0, as the trials report
                ended=ended,
            )
        )
    highlight = [row["trial_id"] for row in _top(run, HIGHLIGHTED)]
    return figures.learning_curves(
        curves, highlight=highlight, objective=run.metric, mode=run.spec.mode
    )


def _parallel_coordinates(run: _Run) -> Figure:
    return figures.parallel_coordinates(
        _axes(run.spec),
        [_params(row) for row in run.trials],
        run.column(run.objective),
        objective=run.objective,
        mode=run.spec.mode,
        winner=_winner_index(run),
    )


def _objective_vs_params(run: _Run, *, seed: int) -> Figure:
    return figures.objective_vs_params(
        _axes(run.spec),
        [_params(row) for row in run.trials],
        run.column(run.objective),
        run.column(f"{run.metric}_std"),
        np.array([row["status"] == "pruned" for row in run.trials]),
        objective=run.objective,
        mode=run.spec.mode,
        winner=_winner_index(run),
        seed=seed,
    )


def _fold_spread(run: _Run) -> Figure:
    top = _top(run, TOP_TRIALS)
    n_folds = run.spec.evaluation.folds
    values = np.full((len(top), n_folds), np.nan)
    for i, row in enumerate(top):
        for fold_row in run.folds.get(row["trial_id"], []):
            values[i, fold_row["fold"]] = _float(fold_row.get(run.metric))
    labels = [f"#{i + 1} {row['trial_id']}" for i, row in enumerate(top)]
    return figures.fold_spread(labels, values, objective=run.metric, mode=run.spec.mode)


def _top(run: _Run, k: int) -> list[dict[str, Any]]:
    return [row for row in run.ranked if _finite(row.get(run.objective))][:k]


def _winner_index(run: _Run) -> int | None:
    winner = run.winner
    if winner is None:
        return None
    return next(i for i, row in enumerate(run.trials) if row["trial_id"] == winner["trial_id"])


def _finite_count(run: _Run) -> int:
    return sum(_finite(row.get(run.objective)) for row in run.trials)


# -- the exported model on the test split -------------------------------------------------------


def score_exported_model(run_dir: Path, spec: Spec, *, notes: list[str]) -> TestScores | None:
    """The exported model's outputs on the test split; None (with a note) when there is none."""
    from trainers.export import ExportError, load_exported

    model_path = run_dir / "model.pt"
    if not model_path.is_file():
        notes.append(
            f"No exported model in {run_dir} (model.pt), so the test-split figures are left "
            f"out; run 'archsearch export {run_dir}' and build the report again."
        )
        return None
    try:
        model, description = load_exported(model_path)
    except ExportError as error:
        notes.append(f"The exported model could not be loaded ({error}); test figures left out.")
        return None

    import torch

    from cluster.driver import load_search_data
    from trainers.inputs import exported_inputs

    dataset, _ = load_search_data(spec)
    # Text becomes token ids with the vocabulary stored beside the model.
    x_test = exported_inputs(description, dataset.x_test)
    batches = []
    with torch.no_grad():
        for start in range(0, len(dataset.y_test), 1024):
            batch = torch.as_tensor(np.asarray(x_test[start : start + 1024]))
            batches.append(model(batch).numpy())
    outputs = np.concatenate(batches) if batches else np.empty((0,))
    names = description.get("class_names") or dataset.class_names
    return TestScores(
        y_true=np.asarray(dataset.y_test),
        outputs=outputs,
        class_names=tuple(names) if names else None,
        description=description,
    )


def _test_figures(scores: TestScores) -> list[tuple[str, str, Figure]]:
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    if scores.class_names is None:
        predicted = scores.outputs.reshape(len(scores.y_true))
        return [("residuals", _RESIDUALS, figures.residuals(scores.y_true, predicted))]

    labels = list(range(len(scores.class_names)))
    predicted = scores.outputs.argmax(axis=1)
    matrix = confusion_matrix(scores.y_true, predicted, labels=labels)
    precision, recall, f1, support = precision_recall_fscore_support(
        scores.y_true, predicted, labels=labels, zero_division=0
    )
    accuracy = float((predicted == scores.y_true).mean())
    return [
        (
            "confusion_matrix",
            _CONFUSION,
            figures.confusion_matrix(matrix, scores.class_names, accuracy=accuracy),
        ),
        (
            "per_class_metrics",
            _PER_CLASS,
            figures.per_class_metrics(scores.class_names, precision, recall, f1, support),
        ),
    ]


# -- why: parameter importance ------------------------------------------------------------------


def parameter_importance(run: _Run, *, seed: int, notes: list[str]) -> dict[str, float] | None:
    """Each searched parameter's share of the objective's variance, by optuna's fANOVA.

    Trials with a finite objective count, early-stopped ones at their best epoch. A parameter
    some trials do not use (a conditional one, such as momentum under adam) is left out, as
    fANOVA needs every trial to have a value. None, with a note, when too few trials vary.
    """
    distributions = _distributions(run.spec)
    rows = [row for row in run.trials if _finite(row.get(run.objective))]
    used = [
        name
        for name in distributions
        if all(row.get(f"param.{name}") is not None for row in rows)
        and len({row.get(f"param.{name}") for row in rows}) > 1
    ]
    values = {row[run.objective] for row in rows}
    if len(rows) < MIN_TRIALS_FOR_IMPORTANCE or not used or len(values) < 2:
        notes.append(
            f"Parameter importance needs at least {MIN_TRIALS_FOR_IMPORTANCE} trials with a "
            f"finite objective and a parameter that varies; this run has {len(rows)} such "
            "trials, so the importance figure is left out."
        )
        return None

    import optuna
    from optuna.importance import FanovaImportanceEvaluator, get_param_importances

    trials = [
        optuna.trial.create_trial(
            params={
                name: _choice_value(row[f"param.{name}"], distributions[name]) for name in used
            },
            distributions={name: distributions[name] for name in used},
            value=float(row[run.objective]),
        )
        for row in rows
    ]
    with _optuna_quiet():
        study = optuna.create_study(direction="maximize" if run.spec.mode == "max" else "minimize")
        study.add_trials(trials)
        scores = get_param_importances(
            study, evaluator=FanovaImportanceEvaluator(seed=seed), normalize=True
        )
    return {name: float(score) for name, score in scores.items()}


def _distributions(spec: Spec) -> dict[str, Any]:
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    found: dict[str, Any] = {}
    for parameter in spec.parameters():
        domain = parameter.domain
        if not parameter.searched:
            continue
        if isinstance(domain, Choice):
            found[parameter.name] = CategoricalDistribution(list(domain.values))
        elif isinstance(domain, IntRange):
            found[parameter.name] = IntDistribution(domain.low, domain.high)
        else:
            found[parameter.name] = FloatDistribution(
                domain.low, domain.high, log=isinstance(domain, LogRange)
            )
    return found


def _choice_value(value: Any, distribution: Any) -> Any:
    """The stored value as the distribution knows it (mixed choices are stored as text)."""
    choices = getattr(distribution, "choices", None)
    if choices is None or value in choices:
        return value
    return next((c for c in choices if str(c) == str(value)), value)


@contextmanager
def _optuna_quiet() -> Iterator[None]:
    """Hide optuna's per-study INFO lines and experimental-feature warnings for this block."""
    optuna_logger = logging.getLogger("optuna")
    level = optuna_logger.level
    optuna_logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", module="optuna")
            yield
    finally:
        optuna_logger.setLevel(level)


# -- the page -----------------------------------------------------------------------------------

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1250px; color: #222;
       line-height: 1.45; padding: 0 1em; }
h1 { margin-bottom: 0.1em; } .sub { color: #666; margin-top: 0; }
section { margin: 1.5em 0; }
.box { background: #f6f8fa; border: 1px solid #ddd; border-radius: 6px; padding: 0.8em 1.2em; }
table { border-collapse: collapse; font-size: 0.85em; }
th, td { border-bottom: 1px solid #ddd; padding: 0.25em 0.6em; text-align: left; }
th { background: #f0f0f0; }
figure { margin: 2em 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #444; font-size: 0.92em; margin-top: 0.3em; }
.note { color: #8a5a00; }
"""


def _html_page(
    run: _Run,
    report: Report,
    *,
    scores: TestScores | None,
    importances: dict[str, float] | None,
) -> str:
    spec = run.spec
    sections = [
        _summary_section(run),
        _margin_section(run),
        _why_section(run, importances),
        _test_section(scores),
        _figures_section(report.figures),
        _trials_section(run),
    ]
    if report.notes:
        items = "".join(f"<li class='note'>{html.escape(n)}</li>" for n in report.notes)
        sections.append(f"<section id='notes'><h2>Notes</h2><ul>{items}</ul></section>")

    title = f"archsearch report: {spec.name}"
    written = time.strftime("%Y-%m-%d %H:%M")
    return (
        "<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
        # Nothing but inline styles and embedded images may load: the page is one file.
        "<meta http-equiv='Content-Security-Policy' "
        "content=\"default-src 'none'; img-src data:; style-src 'unsafe-inline'\">"
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>"
        f"<p class='sub'>{html.escape(str(run.run_dir))}, written {written}</p>"
        + "".join(sections)
        + "</body></html>\n"
    )


def _summary_section(run: _Run) -> str:
    spec = run.spec
    winner = run.winner
    search = (
        f"{spec.search.strategy} search with {spec.search.scheduler} scheduling, "
        f"{len(run.trials)} trials ({status_counts(run.trials)}), {spec.evaluation.folds}-fold "
        f"cross-validation, objective {run.objective} ({_better(spec.mode)}), "
        f"{figures_minutes(run)} of search."
    )
    if winner is None:
        return (
            f"<section id='summary'><h2>Which architecture won</h2><p>{html.escape(search)}</p>"
            "<p class='note'>No trial has a finite objective: nothing won. The trials' errors "
            "are in the table below.</p></section>"
        )

    config = "".join(
        f"<tr><th>{html.escape(name)}</th><td>{html.escape(show_cell(value))}</td></tr>"
        for name, value in _params(winner).items()
        if any(p.name == name and p.searched for p in spec.parameters())
    )
    headline = (
        f"Trial {winner['trial_id']} won with {run.metric} {winner[run.objective]:.4f} "
        f"+- {winner[f'{run.metric}_std']:.4f} (fold mean +- std over {spec.evaluation.folds} "
        f"folds, at epoch {winner.get('best_epoch')} of {winner.get('epochs_run')} run), "
        f"{show_cell(winner.get('params_count'))} parameters."
    )
    return (
        f"<section id='summary'><h2>Which architecture won</h2><p>{html.escape(search)}</p>"
        f"<div class='box'><p><b>{html.escape(headline)}</b></p>"
        f"<table id='winner-config'><tr><th>parameter</th><th>value</th></tr>{config}</table>"
        "</div></section>"
    )


def figures_minutes(run: _Run) -> str:
    total = float(run.finished_minutes.max()) if len(run.finished_minutes) else 0.0
    return f"{total:.1f} minutes" if total >= 1 else f"{total * 60:.0f} seconds"


def margin_facts(run: _Run) -> list[str]:
    """Sentences on how far the winner is ahead: of the runner-up (on the same folds) and of the
    median trial."""
    top = _top(run, 2)
    if not top:
        return []
    winner = top[0]
    metric, sign = run.metric, 1.0 if run.spec.mode == "max" else -1.0
    facts = []
    if len(top) == 2:
        runner = top[1]
        gap = sign * (winner[run.objective] - runner[run.objective])
        mine, theirs = _fold_values(run, winner), _fold_values(run, runner)
        paired = [sign * (a - b) for a, b in zip(mine, theirs, strict=True)]
        noise = winner[f"{metric}_std"]
        facts.append(
            f"Ahead of the runner-up {runner['trial_id']} ({runner[run.objective]:.4f} +- "
            f"{runner[f'{metric}_std']:.4f}) by {gap:.4f} in {metric}, "
            f"{gap / noise:.1f} times the winner's fold std."
            if noise > 0
            else f"Ahead of the runner-up {runner['trial_id']} by {gap:.4f} in {metric}."
        )
        if paired and all(math.isfinite(d) for d in paired):
            wins = sum(d > 0 for d in paired)
            facts.append(
                f"On the same {len(paired)} folds the winner is better on {wins} of them; the "
                f"fold-by-fold gap is {statistics.fmean(paired):.4f} +- "
                f"{statistics.pstdev(paired):.4f}."
            )
        if noise > 0 and gap < noise:
            facts.append(
                "The gap is smaller than the winner's fold std: the top two are not clearly "
                "separated, and either is a sound choice."
            )
    finite = [row[run.objective] for row in run.trials if _finite(row.get(run.objective))]
    if len(finite) >= 3:
        median = statistics.median(finite)
        facts.append(
            f"The median trial scored {median:.4f}; the winner is "
            f"{sign * (winner[run.objective] - median):.4f} better."
        )
    return facts


def _margin_section(run: _Run) -> str:
    facts = margin_facts(run)
    if not facts:
        return ""
    items = "".join(f"<li>{html.escape(f)}</li>" for f in facts)
    return f"<section id='margin'><h2>By how much</h2><ul>{items}</ul></section>"


def _why_section(run: _Run, importances: dict[str, float] | None) -> str:
    winner = run.winner
    if not importances or winner is None:
        return ""
    items = "".join(
        f"<li><b>{html.escape(name)}</b>: {share:.0%} of the variance; the winner has "
        f"{html.escape(show_cell(winner.get(f'param.{name}')))}</li>"
        for name, share in list(importances.items())[:3]
    )
    trials = _finite_count(run)
    rough = f"; a rough estimate from only {trials} trials" if trials < ROUGH_BELOW else ""
    return (
        "<section id='why'><h2>Why</h2><p>The parameters that explained most of the "
        f"objective's variance across trials ({IMPORTANCE_METHOD}{rough}):</p><ul>{items}</ul>"
        "</section>"
    )


def _test_section(scores: TestScores | None) -> str:
    if scores is None:
        return ""
    description = scores.description
    metrics = description.get("test_metrics", {})
    cells = "".join(
        f"<tr><th>{html.escape(name)}</th><td>{show_cell(value)}</td></tr>"
        for name, value in metrics.items()
    )
    refit = (
        f"Refit on {description.get('refit_samples')} samples for "
        f"{description.get('refit_epochs')} epochs, then tested once on "
        f"{description.get('test_samples')} samples."
    )
    return (
        f"<section id='test'><h2>The exported model on the test split</h2>"
        f"<p>{html.escape(refit)}</p><table id='test-metrics'>{cells}</table></section>"
    )


def _figures_section(files: Sequence[FigureFile]) -> str:
    parts = ["<section id='figures'><h2>Figures</h2>"]
    for figure in files:
        data = base64.b64encode(figure.path.read_bytes()).decode("ascii")
        parts.append(
            f"<figure id='fig-{figure.name}'><img id='img-{figure.name}' "
            f"alt='{html.escape(figure.name)}' width='{figure.width}' height='{figure.height}' "
            f"src='data:image/png;base64,{data}'>"
            f"<figcaption>{html.escape(figure.title)}</figcaption></figure>"
        )
    parts.append("</section>")
    return "".join(parts)


def _trials_section(run: _Run) -> str:
    metric = run.metric
    searched = [p.name for p in run.spec.parameters() if p.searched]
    header = ["rank", "trial", "status", f"{metric} mean +- std", "best epoch", *searched]
    rows = []
    for rank, row in enumerate(run.ranked[:TOP_TRIALS], start=1):
        cells = [
            str(rank),
            row["trial_id"],
            row["status"] + (f": {row['error']}" if row.get("error") else ""),
            f"{_float(row.get(run.objective)):.4f} +- {_float(row.get(f'{metric}_std')):.4f}",
            show_cell(row.get("best_epoch")),
            *[show_cell(row.get(f"param.{name}")) for name in searched],
        ]
        rows.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    head = "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>"
    return (
        f"<section id='trials'><h2>Top {min(TOP_TRIALS, len(run.ranked))} trials</h2>"
        f"<table id='top-trials'>{head}{''.join(rows)}</table></section>"
    )


# -- small helpers ------------------------------------------------------------------------------


def _fold_values(run: _Run, row: Mapping[str, Any]) -> list[float]:
    folds = sorted(run.folds.get(row["trial_id"], []), key=lambda r: r["fold"])
    return [_float(f.get(run.metric)) for f in folds]


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _float(value: Any) -> float:
    return float(value) if isinstance(value, int | float) else math.nan


def _better(mode: str) -> str:
    return "higher is better" if mode == "max" else "lower is better"

"""`archsearch report`: the figures, the HTML page, and both opened as a person would.

Fast tests build a report from a hand-made store (five trials whose margins are worked out by
hand below). Slow tests run real small searches through the CLI, with export, and check the
report of each: every PNG has the size its figure declares, the confusion matrix agrees with
the exported model's recorded test accuracy, and headless Chromium opens the page without a
console message and finds every figure in it.
"""

from __future__ import annotations

import base64
import io
import json
import math
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from cluster import figures
from cluster.cli import main
from cluster.report import score_exported_model, write_report
from cluster.rundir import load_run_spec
from cluster.spec import parse_spec
from cluster.store import ResultsStore
from search_spaces.parameters import flat_values, resolve
from tests.factories import digits_search_spec, empty_classification_store
from trainers.metrics import metric_names

SEARCH_FIGURES = [
    "best_so_far",
    "learning_curves",
    "parallel_coordinates",
    "objective_vs_params",
    "fold_spread",
    "importance",
]
CLASSIFICATION_FIGURES = [*SEARCH_FIGURES, "confusion_matrix", "per_class_metrics"]

SPEC = {
    "name": "report-test",
    "data": {"dataset": "digits"},
    "model": {
        "family": "mlp",
        "depth": {"int": [1, 3]},
        "activation": {"choice": ["relu", "tanh"]},
    },
    "optimizer": {"name": {"choice": ["sgd", "adam"]}, "lr": {"log": [0.001, 0.1]}},
    "training": {"epochs": 3, "patience": 1},
    "evaluation": {"folds": 2, "metric": "accuracy"},
    "search": {"scheduler": "asha"},
}
# id, depth, activation, optimizer, lr, status, per-epoch (fold 0, fold 1) accuracies.
TRIALS = [
    ("w", 2, "relu", "adam", 0.01, "completed", [(0.80, 0.78), (0.88, 0.86), (0.92, 0.88)]),
    ("r", 3, "tanh", "adam", 0.003, "completed", [(0.82, 0.84), (0.86, 0.88), (0.85, 0.87)]),
    ("p", 1, "relu", "sgd", 0.05, "pruned", [(0.70, 0.74)]),
    ("q", 1, "tanh", "sgd", 0.002, "completed", [(0.80, 0.84), (0.79, 0.83)]),  # patience
    ("f", 2, "tanh", "sgd", 0.09, "failed", []),
]


def best_epoch(epochs: list[tuple[float, float]]) -> int:
    means = [sum(e) / 2 for e in epochs]
    return means.index(max(means)) + 1


@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("report") / "run"
    _, parameters, metrics, store = empty_classification_store(folder, SPEC)

    for number, (tid, depth, act, opt, lr, status, epochs) in enumerate(TRIALS):
        sample = {"model.depth": depth, "model.activation": act, "optimizer.name": opt}
        params = flat_values(resolve(parameters, {**sample, "optimizer.lr": lr}))
        others = {m: 0.5 for m in [*metrics, "train_loss"] if m != "accuracy"}
        epoch_rows = [
            {"fold": fold, "epoch": e, **others, "accuracy": values[fold]}
            for e, values in enumerate(epochs, start=1)
            for fold in range(2)
        ]
        best = best_epoch(epochs) if epochs else None
        folds = [dict(r, epoch=None) for r in epoch_rows if r["epoch"] == best]
        chosen = np.array(epochs[best - 1]) if epochs else np.array([math.nan, math.nan])
        row = {
            "trial_id": tid,
            "trial_number": number,
            "status": status,
            "strategy": "random",
            "scheduler": "asha",
            "seed": number,
            **{f"param.{name}": value for name, value in params.items()},
            **{f"{m}_{s}": 0.5 for m in [*metrics, "train_loss"] for s in ("mean", "std")},
            "accuracy_mean": float(chosen.mean()),
            "accuracy_std": float(chosen.std()),
            "best_epoch": best,
            "epochs_run": len(epochs),
            "params_count": 100 * depth,
            "seconds": 1.0,
            "error": "TrialDiverged: loss became nan" if status == "failed" else None,
        }
        for fold_row in folds:
            fold_row.pop("epoch")
        store.write_trial(trial=row, folds=folds, epochs=epoch_rows)
    return folder


class Images(HTMLParser):
    """Every <img> of a page: its attributes by id."""

    def __init__(self) -> None:
        super().__init__()
        self.found: dict[str, dict[str, str]] = {}

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            attributes = dict(attrs)
            self.found[attributes.get("id", "")] = attributes


def images_of(page: str) -> dict[str, dict[str, str]]:
    parser = Images()
    parser.feed(page)
    return parser.found


def decoded(src: str) -> Image.Image:
    prefix = "data:image/png;base64,"
    assert src.startswith(prefix)
    return Image.open(io.BytesIO(base64.b64decode(src[len(prefix) :])))


def check_report(report, names: list[str], *, n_params: int) -> str:
    """Every figure in `names` written as a PNG of its declared size and embedded in the page."""
    assert [f.name for f in report.figures] == names
    for figure in report.figures:
        with Image.open(figure.path) as image:
            assert image.format == "PNG"
            assert image.size == figures.pixel_size(figure.name, n_params=n_params)
            assert image.size == (figure.width, figure.height)
            # Not blank: a drawn figure has many distinct colours.
            assert len(image.convert("RGB").getcolors(maxcolors=1 << 16) or range(1 << 16)) > 50

    page = report.html.read_text(encoding="utf-8")
    embedded = images_of(page)
    for name in names:
        image = decoded(embedded[f"img-{name}"]["src"])
        assert image.size == figures.pixel_size(name, n_params=n_params)
    assert "http://" not in page and "https://" not in page  # one file, nothing fetched
    return page


# -- fast: figures and a report from a hand-made store -----------------------------------------


@pytest.mark.parametrize(
    ("name", "n_params", "size"),
    [
        ("best_so_far", 1, (1200, 450)),
        ("learning_curves", 1, (1000, 550)),
        ("confusion_matrix", 1, (800, 700)),
        ("objective_vs_params", 3, (1200, 340)),
        ("objective_vs_params", 4, (1200, 680)),
        ("objective_vs_params", 9, (1200, 1020)),
    ],
)
def test_pixel_sizes(name, n_params, size):
    assert figures.pixel_size(name, n_params=n_params) == size


@pytest.mark.parametrize(
    ("axis", "value", "position"),
    [
        (figures.Axis("a", "choice", choices=("relu", "gelu", "tanh")), "gelu", 0.5),
        (figures.Axis("a", "choice", choices=("relu",)), "relu", 0.5),
        (figures.Axis("d", "int", low=1, high=5), 2, 0.25),
        (figures.Axis("lr", "log", low=1e-4, high=1e-1), 1e-2, 2 / 3),
        (figures.Axis("m", "float", low=0.0, high=0.9), None, math.nan),
    ],
)
def test_axis_positions(axis, value, position):
    got = axis.position(value)
    assert (math.isnan(got) and math.isnan(position)) or got == pytest.approx(position)


def test_running_best_keeps_the_std_of_the_trial_that_holds_it():
    values = np.array([0.5, np.nan, 0.7, 0.6, 0.8])
    stds = np.array([0.1, np.nan, 0.2, 0.3, 0.05])
    best, best_std = figures._running_best(values, stds, mode="max")
    assert best.tolist() == [0.5, 0.5, 0.7, 0.7, 0.8]
    assert best_std.tolist() == [0.1, 0.1, 0.2, 0.2, 0.05]
    best, _ = figures._running_best(values, stds, mode="min")
    assert best.tolist() == [0.5, 0.5, 0.5, 0.5, 0.5]


def test_report_of_a_hand_made_store(synthetic_run, tmp_path):
    report = write_report(synthetic_run, output=tmp_path / "out")
    page = check_report(report, SEARCH_FIGURES, n_params=4)

    # No model.pt: the report says so instead of failing, and draws no test figures.
    assert any("No exported model" in note for note in report.notes)
    assert "archsearch export" in page

    # Winner w: folds (0.92, 0.88) at epoch 3 -> 0.9000 +- 0.0200.
    assert "Trial w won with accuracy 0.9000 +- 0.0200" in page
    # Runner-up r: its best epoch 2 (0.86, 0.88) -> 0.87; gap 0.03 = 1.5 x the winner's std.
    assert "Ahead of the runner-up r (0.8700 +- 0.0100) by 0.0300 in accuracy, 1.5 times" in page
    # Same folds: +0.06 and 0.00 -> better on 1 of 2, gap 0.0300 +- 0.0300.
    assert "better on 1 of them; the fold-by-fold gap is 0.0300 +- 0.0300" in page
    # Finite objectives 0.90, 0.87, 0.72, 0.82: median 0.845, winner 0.055 better.
    assert "The median trial scored 0.8450; the winner is 0.0550 better." in page
    assert "<h2>Why</h2>" in page and "rough estimate from only 4 trials" in page


def test_report_cli_lists_its_figures(synthetic_run, tmp_path, capsys):
    assert main(["report", str(synthetic_run), "-o", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"wrote {tmp_path / 'out' / 'report.html'} with 6 figures:"
    assert [line.split()[0] for line in out[1:7]] == [
        str(tmp_path / "out" / f"{name}.png") for name in SEARCH_FIGURES
    ]
    assert out[7].startswith("note: No exported model")


def test_importance_is_left_out_with_a_note_when_too_few_trials(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "spec.yaml").write_text(yaml.safe_dump(SPEC), encoding="utf-8")
    spec = parse_spec(SPEC)
    store = ResultsStore(
        folder, parameters=spec.parameters(), metrics=metric_names("classification")
    )
    sample = {"model.depth": 1, "model.activation": "relu", "optimizer.name": "adam"}
    params = flat_values(resolve(spec.parameters(), {**sample, "optimizer.lr": 0.01}))
    store.write_trial(
        trial={
            "trial_id": "only",
            "trial_number": 0,
            "status": "completed",
            "strategy": "random",
            "scheduler": "none",
            **{f"param.{k}": v for k, v in params.items()},
            "accuracy_mean": 0.5,
            "accuracy_std": 0.0,
            "best_epoch": 1,
            "epochs_run": 1,
        },
        folds=[],
        epochs=[],
    )
    report = write_report(folder)
    assert [f.name for f in report.figures] == SEARCH_FIGURES[:-1]
    assert any("importance needs at least 4 trials" in note for note in report.notes)
    assert report.html == folder / "report" / "report.html"


def test_report_of_an_empty_run_is_refused(tmp_path):
    from search_spaces.errors import StoreError

    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "spec.yaml").write_text(yaml.safe_dump(SPEC), encoding="utf-8")
    spec = parse_spec(SPEC)
    ResultsStore(folder, parameters=spec.parameters(), metrics=metric_names("classification"))
    with pytest.raises(StoreError, match="holds no finished trial yet"):
        write_report(folder)


# -- slow: reports of real searches, opened in Chromium ----------------------------------------


def run_search(tmp_path: Path, spec: dict) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    run_dir = tmp_path / "run"
    assert main(["run", str(path), "--output", str(run_dir), "--quiet"]) == 0
    return run_dir


@pytest.fixture(scope="module")
def digits_report(tmp_path_factory, local_ray):
    tmp_path = tmp_path_factory.mktemp("digits-report")
    spec = digits_search_spec(
        "digits-report",
        data={"subset": 500},
        search={"strategy": "random", "trials": 5, "scheduler": "asha"},
    )
    spec["seed"] = 1
    run_dir = run_search(tmp_path, spec)
    return run_dir, write_report(run_dir)


@pytest.mark.slow
def test_report_of_a_real_digits_search(digits_report):
    run_dir, report = digits_report
    page = check_report(report, CLASSIFICATION_FIGURES, n_params=4)
    assert report.notes == []

    # The page's test metrics are model.json's, and the outputs the confusion matrix counts
    # give the same accuracy again.
    description = json.loads((run_dir / "model.json").read_text())
    accuracy = description["test_metrics"]["accuracy"]
    assert f"<th>accuracy</th><td>{accuracy:.4g}</td>" in page
    assert f"Trial {description['trial_id']} won with accuracy" in page
    scores = score_exported_model(run_dir, load_run_spec(run_dir), notes=[])
    assert scores is not None and scores.outputs.shape == (len(scores.y_true), 10)
    assert np.mean(scores.outputs.argmax(axis=1) == scores.y_true) == pytest.approx(accuracy)


@pytest.mark.slow
def test_report_opens_in_headless_chromium(digits_report, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed (Debian package chromium; .ci/run installs it)")
    _, report = digits_report
    command = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--enable-logging=stderr",
        "--v=0",
        "--window-size=1300,1600",
    ]
    url = report.html.resolve().as_uri()

    dom = subprocess.run(
        [*command, "--dump-dom", url], capture_output=True, text=True, timeout=120, check=True
    )
    # Page errors (a script error, a blocked load) appear as console messages.
    assert ":CONSOLE" not in dom.stderr, dom.stderr
    embedded = images_of(dom.stdout)
    for name in CLASSIFICATION_FIGURES:
        image = decoded(embedded[f"img-{name}"]["src"])
        assert image.size == figures.pixel_size(name, n_params=4)

    shot = tmp_path / "page.png"
    subprocess.run([*command, f"--screenshot={shot}", url], capture_output=True, timeout=120)
    with Image.open(shot) as image:
        assert image.size == (1300, 1600)
        # Text and figures drawn, not a blank page.
        assert len(image.convert("RGB").getcolors(maxcolors=1 << 20)) > 100


@pytest.mark.slow
def test_report_of_a_real_regression_search_shows_residuals(tmp_path, local_ray):
    spec = {
        "name": "diabetes-report",
        "data": {"dataset": "diabetes"},
        "model": {"family": "mlp", "depth": 1, "width": {"choice": [8, 16]}},
        "optimizer": {"name": "adam", "lr": {"log": [3e-3, 3e-2]}, "batch_size": 32},
        "training": {"epochs": 2},
        "evaluation": {"folds": 2, "metric": "mae"},
        "search": {"strategy": "random", "trials": 4},
    }
    run_dir = run_search(tmp_path, spec)
    report = write_report(run_dir)
    check_report(report, [*SEARCH_FIGURES, "residuals"], n_params=2)

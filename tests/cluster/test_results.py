"""`archsearch results`: --where filters, --sort, --top and the table, CSV and JSON outputs.

A hand-made store of five trials (written with ResultsStore, no search) makes every expected
selection and order checkable by hand:

    trial  depth  activation  optimizer  lr      accuracy  status     seconds
    t0     1      relu        sgd        0.01    0.80      completed  10
    t1     2      tanh        adam       0.003   0.90      completed  30
    t2     3      relu        adam       0.05    0.85      pruned      5
    t3     4      tanh        sgd        0.001   nan       failed      1
    t4     4      relu        adam       0.02    0.88      completed  20

Ranked by accuracy (max): t1, t4, t2, t0, then t3 without a finite objective.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import pytest

from cluster.cli import main
from cluster.query import QueryError, parse_where, select_trials
from cluster.store import read_table
from search_spaces.parameters import flat_values, resolve
from tests.factories import empty_classification_store

SPEC = {
    "name": "query-test",
    "data": {"dataset": "digits"},
    "model": {
        "family": "mlp",
        "depth": {"int": [1, 4]},
        "activation": {"choice": ["relu", "tanh"]},
    },
    "optimizer": {"name": {"choice": ["sgd", "adam"]}, "lr": {"log": [0.001, 0.1]}},
    "evaluation": {"folds": 2, "metric": "accuracy"},
}
TRIALS = [
    ("t0", 1, "relu", "sgd", 0.01, 0.80, 0.02, "completed", 10.0),
    ("t1", 2, "tanh", "adam", 0.003, 0.90, 0.01, "completed", 30.0),
    ("t2", 3, "relu", "adam", 0.05, 0.85, 0.03, "pruned", 5.0),
    ("t3", 4, "tanh", "sgd", 0.001, math.nan, math.nan, "failed", 1.0),
    ("t4", 4, "relu", "adam", 0.02, 0.88, 0.02, "completed", 20.0),
]
RANKED = ["t1", "t4", "t2", "t0", "t3"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("query") / "run"
    _, parameters, metrics, store = empty_classification_store(folder, SPEC)

    for number, (tid, depth, act, opt, lr, acc, std, status, seconds) in enumerate(TRIALS):
        sample = {
            "model.depth": depth,
            "model.activation": act,
            "optimizer.name": opt,
            "optimizer.lr": lr,
        }
        params = flat_values(resolve(parameters, sample))
        row = {
            "trial_id": tid,
            "trial_number": number,
            "status": status,
            "strategy": "random",
            "scheduler": "asha",
            "seed": 100 + number,
            **{f"param.{name}": value for name, value in params.items()},
            **{f"{m}_{s}": 0.5 for m in [*metrics, "train_loss"] for s in ("mean", "std")},
            "accuracy_mean": acc,
            "accuracy_std": std,
            "best_epoch": 1,
            "epochs_run": 1,
            "params_count": 1000 + depth,
            "seconds": seconds,
            "error": "TrialDiverged: loss became nan" if status == "failed" else None,
        }
        store.write_trial(trial=row, folds=[], epochs=[])
    return folder


def ids(rows) -> list[str]:
    return [row["trial_id"] for row in rows]


def where(run_dir: Path, text: str) -> list[str]:
    rows, _, _ = select_trials(run_dir, where=text)
    return ids(rows)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("param.model.depth >= 3", ["t4", "t2", "t3"]),  # in ranking order, NaN objective last
        ("model.depth >= 3", ["t4", "t2", "t3"]),  # the param. prefix may be left out
        ("depth >= 3", None),  # but the section may not: an error, tested below
        ("model.depth >= 3 and status == completed", ["t4"]),
        ("model.depth>=3 AND status==completed", ["t4"]),  # spacing and keyword case are free
        ("model.depth = 2", ["t1"]),
        ("model.depth != 4", ["t1", "t2", "t0"]),
        # and binds tighter than or: failed, or (depth 1 and tanh), which no trial is.
        ("status == failed or model.depth == 1 and model.activation == tanh", ["t3"]),
        ("(status == failed or model.depth == 1) and model.activation == relu", ["t0"]),
        ("not status == completed", ["t2", "t3"]),
        ("optimizer.lr < 1e-2", ["t1", "t3"]),
        ("optimizer.lr <= 0.01", ["t1", "t0", "t3"]),
        ("accuracy_mean > 0.85", ["t1", "t4"]),  # NaN compares false
        ("accuracy_mean <= 0.85", ["t2", "t0"]),
        ("model.activation == 'tanh'", ["t1", "t3"]),
        ('model.activation == "tanh"', ["t1", "t3"]),
        # momentum is null for adam: a comparison with null is not true.
        ("optimizer.momentum == 0.9", ["t0", "t3"]),
        ("model.batch_norm == false", RANKED),
        ("seconds > 5 and seconds < 25", ["t4", "t0"]),
    ],
)
def test_where_selects_the_hand_worked_trials(run_dir, text, expected):
    if expected is None:
        with pytest.raises(QueryError, match="no column 'depth'.*did you mean 'model.depth'"):
            where(run_dir, text)
    else:
        assert where(run_dir, text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "param.model.dept > 2",
            r"^--where: no column 'param\.model\.dept' in the trials table \(did you mean "
            r"'param\.model\.depth'\?\); 'archsearch results RUN_DIR --format csv' shows",
        ),
        ("model.depth > abc", r"^--where: param\.model\.depth holds int64 values, so compare "),
        ("model.depth > 'x'", r"compare it with a number, not 'x' \(character 15\)$"),
        ("model.batch_norm == 1", r"model\.batch_norm holds bool values, .* true or false"),
        ("model.depth >=", r"ends early; expected a value after model\.depth >=$"),
        ("model.depth 3", r"expected a comparison \(== != >= <= > <\) after model\.depth"),
        ("model.depth >= 3 status == completed", r"unexpected 'status' at character 18; join"),
        ("(model.depth >= 3", r"ends early; expected '\)'$"),
        ("model.depth >= 3; rm -rf /", r"cannot read '; rm -rf /' at character 17"),
        ("__import__('os').system('true')", r"cannot read .* at character 17"),
        ("", r"^--where: empty filter"),
        (">= 3", r"expected a column name at character 1, got '>='"),
    ],
)
def test_bad_where_is_one_line_naming_the_problem(run_dir, text, message):
    with pytest.raises(QueryError, match=message) as error:
        where(run_dir, text)
    assert "\n" not in str(error.value)


def test_where_is_parsed_not_evaluated():
    import pyarrow as pa

    # A value that is Python code is only ever text, compared with a text column.
    expression = parse_where("status == __import__", pa.schema([("status", pa.string())]))
    assert str(expression) == '(status == "__import__")'


@pytest.mark.parametrize(
    ("sort", "descending", "expected"),
    [
        ("seconds", False, ["t3", "t2", "t0", "t4", "t1"]),
        ("seconds", True, ["t1", "t4", "t0", "t2", "t3"]),
        ("accuracy_mean", False, ["t0", "t2", "t4", "t1", "t3"]),  # NaN last either way
        ("accuracy_mean", True, ["t1", "t4", "t2", "t0", "t3"]),
        # Ties keep the ranking order: pruned, failed, then the completed ones best first.
        ("status", True, ["t2", "t3", "t1", "t4", "t0"]),
        ("optimizer.momentum", False, ["t0", "t3", "t1", "t4", "t2"]),  # nulls last
    ],
)
def test_sort_orders_rows_with_missing_values_last(run_dir, sort, descending, expected):
    rows, _, _ = select_trials(run_dir, sort=sort, descending=descending)
    assert ids(rows) == expected


def test_top_cuts_after_filter_and_sort(run_dir):
    rows, ranked, _ = select_trials(run_dir, where="status == completed", sort="seconds", top=2)
    assert ids(rows) == ["t0", "t4"]
    assert ids(ranked) == RANKED


def test_bad_sort_and_top_are_refused(run_dir):
    with pytest.raises(QueryError, match=r"^--sort: no column 'second' .*did you mean 'seconds'"):
        select_trials(run_dir, sort="second")
    with pytest.raises(QueryError, match=r"^--top: -1 is negative"):
        select_trials(run_dir, top=-1)


def test_csv_output_has_every_column_and_parses_back(run_dir, capsys):
    assert main(["results", str(run_dir), "--where", "model.depth >= 3", "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))

    assert [row["trial_id"] for row in rows] == ["t4", "t2", "t3"]
    assert list(rows[0]) == read_table(run_dir, "trials").schema.names
    assert float(rows[0]["accuracy_mean"]) == 0.88
    assert rows[2]["accuracy_mean"] == "nan"
    assert rows[1]["param.optimizer.momentum"] == ""  # null for adam


def test_json_output_is_strict_json_with_nulls(run_dir, capsys):
    assert main(["results", str(run_dir), "--sort", "seconds", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)  # strict: NaN would not parse in other tools

    assert [row["trial_id"] for row in rows] == ["t3", "t2", "t0", "t4", "t1"]  # all, not 10
    assert rows[0]["accuracy_mean"] is None
    assert rows[0]["error"] == "TrialDiverged: loss became nan"
    assert rows[-1]["param.model.depth"] == 2
    assert rows[-1]["param.optimizer.momentum"] is None


def test_table_output_keeps_overall_rank_and_shows_the_sort_column(run_dir, capsys):
    args = ["results", str(run_dir), "--where", "model.depth >= 3", "--sort", "seconds"]
    assert main(args) == 0
    lines = capsys.readouterr().out.splitlines()

    assert lines[0] == f"{run_dir}: 3 of 5 trials shown (3 completed, 1 failed, 1 pruned in all)"
    assert lines[1].split()[-1] == "seconds"
    assert [line.split()[:2] for line in lines[2:]] == [["5", "t3"], ["3", "t2"], ["2", "t4"]]
    assert lines[2].split()[-1] == "1"  # t3's seconds


def test_default_table_is_the_ranking(run_dir, capsys):
    assert main(["results", str(run_dir), "--top", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()

    assert lines[0] == f"{run_dir}: 5 trials (3 completed, 1 failed, 1 pruned)"
    assert [line.split()[:4] for line in lines[2:]] == [
        ["1", "t1", "completed", "0.9000"],
        ["2", "t4", "completed", "0.8800"],
    ]


def test_cli_bad_where_exits_2_with_one_line(run_dir, capsys):
    assert main(["results", str(run_dir), "--where", "model.dept > 2"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("archsearch: --where: no column 'model.dept'") and err.count("\n") == 1


def test_readme_pandas_and_duckdb_queries(run_dir):
    """The queries the README shows, on the same store."""
    import duckdb
    import pandas as pd

    trials = pd.read_parquet(run_dir / "trials")
    deep = trials[(trials["param.model.depth"] >= 2) & (trials["status"] == "completed")]
    assert deep.sort_values("accuracy_mean", ascending=False)["trial_id"].tolist() == ["t1", "t4"]

    folds = pd.read_parquet(run_dir / "folds")
    assert list(folds.columns[:2]) == ["trial_id", "fold"]

    best = duckdb.sql(
        f"""
        SELECT "param.model.activation" AS activation, count(*) AS trials, max(accuracy_mean) AS best
        FROM read_parquet('{run_dir}/trials/*.parquet')
        WHERE status = 'completed'
        GROUP BY 1 ORDER BY best DESC
        """
    ).fetchall()
    assert best == [("tanh", 1, 0.9), ("relu", 2, 0.88)]


def test_export_to_a_file_that_is_not_a_model_is_refused_and_leaves_it(run_dir, tmp_path, capsys):
    spec_file = tmp_path / "base.yaml"
    spec_file.write_text("name: keep-me\n")

    assert main(["export", str(run_dir), "--pick", "1", "--output", str(spec_file)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"archsearch: --output: {spec_file} does not end in .pt;")
    assert spec_file.read_text() == "name: keep-me\n"
    assert not spec_file.with_suffix(".json").exists()

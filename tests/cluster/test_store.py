"""Tests for the Parquet results store: schemas, round trips, atomic writes and damage."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cluster.store import TABLES, ResultsStore, read_table
from search_spaces.domains import Choice, Fixed, FloatRange, IntRange, LogRange
from search_spaces.errors import StoreError
from search_spaces.parameters import CONDITIONS, Parameter

PARAMETERS = [
    Parameter("model.depth", IntRange(2, 6)),
    Parameter("model.activation", Choice(("relu", "gelu"))),
    Parameter("model.batch_norm", Choice((True, False))),
    Parameter("model.width", Choice((16, "auto"))),
    Parameter("optimizer.name", Choice(("sgd", "adam"))),
    Parameter("optimizer.lr", LogRange(1e-4, 1e-1)),
    Parameter("optimizer.momentum", FloatRange(0.0, 0.99), CONDITIONS["optimizer.momentum"]),
    Parameter("optimizer.batch_size", Fixed(64)),
]
METRICS = ["accuracy", "f1"]


def make_store(run_dir: Path, **overrides: Any) -> ResultsStore:
    options: dict[str, Any] = {"parameters": PARAMETERS, "metrics": METRICS, **overrides}
    return ResultsStore(run_dir, **options)


def trial_row(trial_id: str = "t1", **overrides: Any) -> dict[str, Any]:
    row = {
        "trial_id": trial_id,
        "trial_number": 0,
        "status": "completed",
        "strategy": "random",
        "scheduler": "asha",
        "seed": 1234,
        "node": "10.0.0.1",
        "param.model.depth": 3,
        "param.model.activation": "gelu",
        "param.model.batch_norm": True,
        "param.model.width": 16,
        "param.optimizer.name": "adam",
        "param.optimizer.lr": 0.003,
        "param.optimizer.momentum": None,
        "param.optimizer.batch_size": 64,
        "accuracy_mean": 0.875,
        "accuracy_std": 0.025,
        "f1_mean": math.nan,
        "f1_std": math.nan,
        "train_loss_mean": 0.31,
        "train_loss_std": 0.02,
        "best_epoch": 2,
        "epochs_run": 3,
        "params_count": 12_345,
        "seconds": 4.5,
        "error": None,
    }
    row.update(overrides)
    return row


def fold_rows(trial_id: str = "t1", n_folds: int = 2) -> list[dict[str, Any]]:
    return [
        {
            "trial_id": trial_id,
            "fold": fold,
            "train_loss": 0.3 + fold / 100,
            "accuracy": 0.85 + fold / 20,
            "f1": math.nan,
        }
        for fold in range(n_folds)
    ]


def epoch_rows(trial_id: str = "t1", n_folds: int = 2, n_epochs: int = 3) -> list[dict[str, Any]]:
    return [
        {
            "trial_id": trial_id,
            "fold": fold,
            "epoch": epoch,
            "train_loss": 1.0 / (epoch + 1),
            "accuracy": 0.5 + epoch / 10,
            "f1": 0.4,
        }
        for fold in range(n_folds)
        for epoch in range(n_epochs)
    ]


def write(
    store: ResultsStore, trial_id: str = "t1", *, n_epochs: int = 3, **overrides: Any
) -> None:
    store.write_trial(
        trial=trial_row(trial_id, **overrides),
        folds=fold_rows(trial_id),
        epochs=epoch_rows(trial_id, n_epochs=n_epochs),
    )


def visible_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


# -- schemas --------------------------------------------------------------------------------------


def test_trials_schema_has_every_column_with_its_exact_type(tmp_path: Path) -> None:
    schema = make_store(tmp_path).schemas["trials"]

    expected = [
        ("trial_id", pa.string(), False),
        ("trial_number", pa.int64(), True),
        ("status", pa.string(), False),
        ("strategy", pa.string(), False),
        ("scheduler", pa.string(), False),
        ("seed", pa.int64(), True),
        ("node", pa.string(), True),
        ("param.model.depth", pa.int64(), True),
        ("param.model.activation", pa.string(), True),
        ("param.model.batch_norm", pa.bool_(), True),
        ("param.model.width", pa.string(), True),
        ("param.optimizer.name", pa.string(), True),
        ("param.optimizer.lr", pa.float64(), True),
        ("param.optimizer.momentum", pa.float64(), True),
        ("param.optimizer.batch_size", pa.int64(), True),
        ("accuracy_mean", pa.float64(), True),
        ("accuracy_std", pa.float64(), True),
        ("f1_mean", pa.float64(), True),
        ("f1_std", pa.float64(), True),
        ("train_loss_mean", pa.float64(), True),
        ("train_loss_std", pa.float64(), True),
        ("best_epoch", pa.int64(), True),
        ("epochs_run", pa.int64(), True),
        ("params_count", pa.int64(), True),
        ("macs", pa.int64(), True),
        ("latency_ms", pa.float64(), True),
        ("seconds", pa.float64(), True),
        ("error", pa.string(), True),
    ]
    assert [(f.name, f.type, f.nullable) for f in schema] == expected


def test_folds_and_epochs_schemas(tmp_path: Path) -> None:
    schemas = make_store(tmp_path).schemas

    assert [(f.name, f.type) for f in schemas["folds"]] == [
        ("trial_id", pa.string()),
        ("fold", pa.int32()),
        ("train_loss", pa.float64()),
        ("accuracy", pa.float64()),
        ("f1", pa.float64()),
    ]
    assert [(f.name, f.type) for f in schemas["epochs"]] == [
        ("trial_id", pa.string()),
        ("fold", pa.int32()),
        ("epoch", pa.int32()),
        ("train_loss", pa.float64()),
        ("accuracy", pa.float64()),
        ("f1", pa.float64()),
    ]


def test_train_loss_listed_as_a_metric_is_not_duplicated(tmp_path: Path) -> None:
    store = make_store(tmp_path, metrics=["accuracy", "train_loss"])

    assert store.schemas["folds"].names == ["trial_id", "fold", "train_loss", "accuracy"]
    assert store.schemas["trials"].names.count("train_loss_mean") == 1


@pytest.mark.parametrize("metric", ["fold", "epoch", "trial_id"])
def test_metric_clashing_with_a_column_is_refused(tmp_path: Path, metric: str) -> None:
    with pytest.raises(StoreError, match=f"two '{metric}' columns"):
        make_store(tmp_path, metrics=[metric])


# -- round trip -----------------------------------------------------------------------------------


def test_round_trip_keeps_values_and_types(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    write(store)

    trials = store.read("trials")
    assert trials.schema.equals(store.schemas["trials"])
    (got,) = trials.to_pylist()
    expected = trial_row(**{"param.model.width": "16"})
    for key, value in expected.items():
        if isinstance(value, float) and math.isnan(value):
            assert math.isnan(got[key]), key
        else:
            assert got[key] == value and type(got[key]) is type(value), key

    folds = store.read("folds")
    assert folds.column("fold").to_pylist() == [0, 1]
    assert folds.column("accuracy").to_pylist() == [0.85, 0.9]

    epochs = store.read("epochs")
    assert epochs.num_rows == 6
    assert epochs.column("epoch").to_pylist() == [0, 1, 2, 0, 1, 2]
    assert epochs.column("train_loss").to_pylist()[:3] == [1.0, 0.5, 1.0 / 3]


def test_inactive_parameter_is_null_and_nan_stays_nan(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    write(store)
    trials = store.read("trials")

    momentum = trials.column("param.optimizer.momentum")
    assert momentum.null_count == 1

    f1 = trials.column("f1_mean")
    assert f1.null_count == 0
    assert math.isnan(f1[0].as_py())
    assert store.read("folds").column("f1").null_count == 0


def test_missing_keys_become_null(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    row = {k: v for k, v in trial_row().items() if k not in ("node", "seconds", "trial_number")}
    store.write_trial(trial=row, folds=[], epochs=[])

    (got,) = store.read("trials").to_pylist()
    assert got["node"] is None and got["seconds"] is None and got["trial_number"] is None


@pytest.mark.parametrize(("value", "stored"), [(16, "16"), ("auto", "auto"), (None, None)])
def test_mixed_kind_choice_is_stored_as_text(tmp_path: Path, value: Any, stored: Any) -> None:
    store = make_store(tmp_path)
    write(store, **{"param.model.width": value})

    assert store.read("trials").column("param.model.width").to_pylist() == [stored]


def test_numpy_scalars_are_accepted(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    write(
        store,
        seed=np.int64(7),
        accuracy_mean=np.float32(0.5),
        **{"param.model.batch_norm": np.True_},
    )

    (got,) = store.read("trials").to_pylist()
    assert (got["seed"], got["accuracy_mean"], got["param.model.batch_norm"]) == (7, 0.5, True)


def test_fold_rows_may_leave_out_the_trial_id(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    store.write_trial(trial=trial_row(), folds=[{"fold": 0, "accuracy": 0.7}], epochs=[])

    assert store.read("folds").column("trial_id").to_pylist() == ["t1"]


def test_trials_come_back_in_trial_number_order(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    for trial_id, number in [("b", 2), ("c", 0), ("a", 1)]:
        write(store, trial_id, trial_number=number)

    assert store.read("trials").column("trial_id").to_pylist() == ["c", "a", "b"]
    assert store.read("folds").column("trial_id").to_pylist() == ["c", "c", "a", "a", "b", "b"]
    assert store.completed_trial_ids() == {"a", "b", "c"}


@pytest.mark.parametrize("status", ["completed", "pruned", "failed", "diverged", "infeasible"])
def test_every_final_status_counts_as_done(tmp_path: Path, status: str) -> None:
    store = make_store(tmp_path)
    write(store, status=status)

    assert store.completed_trial_ids() == {"t1"}


def test_rewriting_a_trial_replaces_its_rows(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    write(store, n_epochs=3, accuracy_mean=0.5)
    write(store, n_epochs=2, accuracy_mean=0.75)

    trials = store.read("trials")
    assert trials.column("trial_id").to_pylist() == ["t1"]
    assert trials.column("accuracy_mean").to_pylist() == [0.75]
    assert store.read("epochs").num_rows == 2 * 2
    assert store.read("folds").num_rows == 2
    assert visible_files(tmp_path / "epochs") == ["part-t1.parquet"]


def test_empty_store_reads_empty_tables_with_the_schema(tmp_path: Path) -> None:
    store = make_store(tmp_path)

    for table in TABLES:
        result = store.read(table)
        assert result.num_rows == 0
        assert result.schema.equals(store.schemas[table])
    assert store.completed_trial_ids() == set()


def test_missing_table_folder_reads_empty(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    (tmp_path / "trials").rmdir()

    assert store.read("trials").num_rows == 0


def test_unknown_table_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no table 'trial'; use one of trials, folds, epochs"):
        make_store(tmp_path).read("trial")


# -- orphans and crashes --------------------------------------------------------------------------


def test_orphan_parts_without_a_trials_row_are_not_returned(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    write(store, "kept")
    write(store, "orphan")
    (tmp_path / "trials" / "part-orphan.parquet").unlink()

    assert store.read("folds").column("trial_id").unique().to_pylist() == ["kept"]
    assert store.read("epochs").column("trial_id").unique().to_pylist() == ["kept"]
    assert store.completed_trial_ids() == {"kept"}


def test_crash_before_the_commit_leaves_the_trial_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = make_store(tmp_path)
    real_replace = os.replace

    def replace_failing_for_trials(src: Any, dst: Any) -> None:
        if Path(dst).parent.name == "trials":
            raise OSError("simulated crash")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace_failing_for_trials)
    with pytest.raises(StoreError, match="cannot write .*part-t1.parquet"):
        write(store)
    monkeypatch.undo()

    assert visible_files(tmp_path / "epochs") == ["part-t1.parquet"]
    assert store.read("epochs").num_rows == 0
    assert store.completed_trial_ids() == set()

    # The rerun of the same trial overwrites the orphans and commits once.
    write(store, n_epochs=1)
    assert store.read("epochs").num_rows == 2


def test_failed_replace_keeps_the_previous_part_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = make_store(tmp_path)
    write(store, n_epochs=3)
    part = tmp_path / "epochs" / "part-t1.parquet"
    before = part.read_bytes()

    def failing_replace(src: Any, dst: Any) -> None:
        assert Path(src).stat().st_size > 0  # the temporary file was fully written
        raise OSError("simulated crash")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(StoreError, match="simulated crash"):
        write(store, n_epochs=1)
    monkeypatch.undo()

    assert part.read_bytes() == before
    assert pq.read_table(part).num_rows == 2 * 3
    for table in TABLES:
        assert [p.name for p in (tmp_path / table).iterdir() if p.name.startswith(".")] == []

    # The old commit record was withdrawn first, so no trial mixes old and new rows.
    assert store.completed_trial_ids() == set()


def test_dot_temp_files_are_ignored(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    write(store)
    for table in TABLES:
        (tmp_path / table / ".part-t2.parquet.abc.tmp").write_bytes(b"half a parquet fi")

    assert store.read("trials").num_rows == 1
    assert store.read("epochs").num_rows == 6
    assert pq.read_table(tmp_path / "trials").num_rows == 1


def test_write_leaves_no_temporary_files(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    write(store)

    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "epochs",
        "folds",
        "store.json",
        "trials",
    ]
    for table in TABLES:
        assert sorted(p.name for p in (tmp_path / table).iterdir()) == ["part-t1.parquet"]


# -- damage ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("table", TABLES)
def test_garbage_part_file_is_reported_by_name(tmp_path: Path, table: str) -> None:
    store = make_store(tmp_path)
    write(store)
    part = tmp_path / table / "part-t1.parquet"
    part.write_bytes(b"this is not parquet at all")

    message = f"{part} is damaged \\(Parquet magic bytes not found in footer\\); delete it"
    with pytest.raises(StoreError, match=message):
        store.read(table)


def test_truncated_part_file_is_damaged(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    write(store)
    part = tmp_path / "epochs" / "part-t1.parquet"
    part.write_bytes(part.read_bytes()[: part.stat().st_size // 2])

    with pytest.raises(StoreError, match=f"{part} is damaged"):
        store.read("epochs")
    assert store.read("trials").num_rows == 1


def test_part_file_with_another_schema_is_damaged(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    write(store)
    part = tmp_path / "folds" / "part-t1.parquet"
    pq.write_table(pa.table({"trial_id": ["t1"], "fold": pa.array([0], pa.int64())}), part)

    with pytest.raises(StoreError, match="columns differ from the store's: no column train_loss"):
        store.read("folds")


def test_part_file_holding_another_trial_is_damaged(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    write(store, "t1")
    os.replace(tmp_path / "trials" / "part-t1.parquet", tmp_path / "trials" / "part-t9.parquet")

    with pytest.raises(StoreError, match="holds rows of trial t1, not t9"):
        store.read("trials")


def test_committed_trial_missing_its_epochs_is_reported(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    write(store)
    (tmp_path / "epochs" / "part-t1.parquet").unlink()

    with pytest.raises(
        StoreError, match="records trial t1 but .*epochs/part-t1.parquet is missing"
    ):
        store.read("epochs")


# -- refused rows ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("table", "column", "value"),
    [
        ("trials", "seed", "abc"),
        ("trials", "trial_number", 1.5),
        ("trials", "accuracy_mean", True),
        ("trials", "accuracy_mean", "0.9"),
        ("trials", "param.model.depth", 3.0),
        ("trials", "param.model.batch_norm", 1),
        ("trials", "node", 5),
        ("folds", "fold", "0"),
        ("epochs", "epoch", 2.5),
    ],
)
def test_wrong_type_names_table_column_trial_and_value(
    tmp_path: Path, table: str, column: str, value: Any
) -> None:
    store = make_store(tmp_path)
    rows = {"trials": [trial_row()], "folds": fold_rows(), "epochs": epoch_rows()}
    rows[table][0][column] = value

    with pytest.raises(
        StoreError, match=rf"{table}\.{column} of trial t1 must be .*got {value!r}"
    ):
        store.write_trial(trial=rows["trials"][0], folds=rows["folds"], epochs=rows["epochs"])
    assert visible_files(tmp_path / table) == []


def test_out_of_range_value_is_refused(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    with pytest.raises(StoreError, match=r"epochs\.epoch of trial t1 cannot be stored as int32"):
        store.write_trial(trial=trial_row(), folds=[], epochs=[{"fold": 0, "epoch": 2**40}])


def test_unknown_key_is_refused_by_name(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    message = "trials has no column 'acuracy_mean' \\(did you mean 'accuracy_mean'\\?\\)"
    with pytest.raises(StoreError, match=message):
        store.write_trial(trial=trial_row(acuracy_mean=0.9), folds=[], epochs=[])


@pytest.mark.parametrize(("status", "message"), [("done", "'done'"), (None, "None")])
def test_unknown_status_is_refused(tmp_path: Path, status: Any, message: str) -> None:
    store = make_store(tmp_path)
    with pytest.raises(StoreError, match=f"trials.status of trial t1 is {message}; use one of"):
        write(store, status=status)


def test_missing_required_column_is_refused(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    with pytest.raises(StoreError, match=r"epochs\.epoch of trial t1 is missing"):
        store.write_trial(trial=trial_row(), folds=[], epochs=[{"fold": 0}])


@pytest.mark.parametrize("trial_id", ["", "../escape", "a/b", None, 7])
def test_unsafe_trial_id_is_refused(tmp_path: Path, trial_id: Any) -> None:
    store = make_store(tmp_path)
    with pytest.raises(StoreError, match="trials.trial_id is"):
        store.write_trial(trial=trial_row(trial_id), folds=[], epochs=[])


def test_rows_of_another_trial_are_refused(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    with pytest.raises(StoreError, match="a folds row of trial t1 has trial_id 't2'"):
        store.write_trial(trial=trial_row("t1"), folds=fold_rows("t2"), epochs=[])


# -- layout and plain readers ---------------------------------------------------------------------


def test_plain_pyarrow_reads_every_table(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    write(store, "t1", trial_number=0)
    write(store, "t2", trial_number=1, accuracy_mean=0.5)

    trials = pq.read_table(tmp_path / "trials")
    assert sorted(trials.column("trial_id").to_pylist()) == ["t1", "t2"]
    assert sorted(trials.column("accuracy_mean").to_pylist()) == [0.5, 0.875]
    assert trials.schema.field("param.model.depth").type == pa.int64()
    assert pq.read_table(tmp_path / "epochs").num_rows == 12


@pytest.mark.parametrize("table", TABLES)
def test_read_table_without_the_spec_matches_the_store(tmp_path: Path, table: str) -> None:
    store = make_store(tmp_path)
    write(store, "t1", trial_number=0)
    write(store, "t2", trial_number=1)

    plain, ours = read_table(tmp_path, table), store.read(table)
    assert plain.schema.equals(ours.schema)
    # repr, since NaN != NaN would fail a value comparison of identical tables.
    assert plain.num_rows > 0 and repr(plain.to_pydict()) == repr(ours.to_pydict())


def test_read_table_outside_a_store_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="store.json not found"):
        read_table(tmp_path, "trials")


def test_store_json_records_the_layout(tmp_path: Path) -> None:
    make_store(tmp_path)
    layout = json.loads((tmp_path / "store.json").read_text())

    assert layout["format"] == 2
    assert layout["metrics"] == ["accuracy", "f1"]
    assert layout["parameters"][:3] == [
        {"name": "model.depth", "kind": "int"},
        {"name": "model.activation", "kind": "str"},
        {"name": "model.batch_norm", "kind": "bool"},
    ]


def test_reopening_with_the_same_layout_keeps_the_data(tmp_path: Path) -> None:
    write(make_store(tmp_path))

    assert make_store(tmp_path).completed_trial_ids() == {"t1"}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"metrics": ["accuracy"]}, "metrics: stored accuracy, f1, now accuracy"),
        ({"parameters": PARAMETERS[:-1]}, "parameter optimizer.batch_size is gone"),
        (
            {"parameters": [*PARAMETERS, Parameter("model.dropout", FloatRange(0.0, 0.5))]},
            "parameter model.dropout is new",
        ),
        (
            {"parameters": [Parameter("model.depth", FloatRange(2.0, 6.0)), *PARAMETERS[1:]]},
            "parameter model.depth was int, now float",
        ),
        ({"parameters": PARAMETERS[::-1]}, "parameters in another order"),
    ],
)
def test_other_layout_in_the_same_run_dir_is_refused(
    tmp_path: Path, overrides: dict[str, Any], message: str
) -> None:
    make_store(tmp_path)

    with pytest.raises(
        StoreError, match=f"store.json was written for another layout \\({message}\\)"
    ):
        make_store(tmp_path, **overrides)


def test_damaged_store_json_is_reported(tmp_path: Path) -> None:
    (tmp_path / "store.json").write_text("{not json")

    with pytest.raises(StoreError, match="store.json is damaged"):
        make_store(tmp_path)


def test_store_of_an_older_format_is_refused_by_its_version(tmp_path: Path) -> None:
    make_store(tmp_path)
    layout_file = tmp_path / "store.json"
    layout = json.loads(layout_file.read_text())
    layout["format"] = 1
    layout_file.write_text(json.dumps(layout))

    with pytest.raises(
        StoreError, match="has format 1, this version of archsearch reads format 2"
    ):
        read_table(tmp_path, "trials")

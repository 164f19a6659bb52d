"""The results store: every number a search produces, as Parquet datasets in its run directory.

    <run_dir>/store.json                       layout: metric names, parameter names and kinds
    <run_dir>/trials/part-<trial_id>.parquet   one row: status, parameters, fold mean/std
    <run_dir>/folds/part-<trial_id>.parquet    one row per fold, values at the best epoch
    <run_dir>/epochs/part-<trial_id>.parquet   one row per fold and epoch

Schemas are built from the search's parameters and metrics, never inferred from rows, so a
column has the same type in every part file and any Arrow reader (pyarrow, pandas, polars,
DuckDB) reads a table folder as one dataset.

Each part file is written to a dot-file beside it (which dataset readers skip), synced, then
renamed over the old one, so a crash never leaves a torn file. A run directory given as an
s3:// or gs:// URI is written through pyarrow's filesystems instead (cluster.storage), where a
single PUT replaces an object whole. The trials part is written last
and is the commit record: folds and epochs rows of a trial without one are not returned.

This module imports pyarrow at the top; import it lazily from code that must start fast.
"""

from __future__ import annotations

import json
import logging
import numbers
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from cluster.storage import location, read_parquet, write_file
from search_spaces.domains import did_you_mean
from search_spaces.errors import StoreError
from search_spaces.parameters import Parameter, value_kind
from trainers.atomic import sync_folder

logger = logging.getLogger(__name__)

TABLES = ("trials", "folds", "epochs")
# infeasible: a cost exceeded a bound of search.constraints, so the trial never trained.
STATUSES = ("completed", "pruned", "failed", "diverged", "infeasible")
# 2: trials gained the macs and latency_ms columns and the "infeasible" status.
FORMAT_VERSION = 2
LAYOUT_FILE = "store.json"

# The training loss is recorded beside every metric, whatever the spec ranks by.
TRAIN_LOSS = "train_loss"

KIND_TYPES: dict[str, pa.DataType] = {
    "bool": pa.bool_(),
    "int": pa.int64(),
    "float": pa.float64(),
    "str": pa.string(),
}

# Part files are named after trial ids, so an id must be a safe file name on every system.
_TRIAL_ID = re.compile(r"[A-Za-z0-9_.=-]{1,200}")


@dataclass(frozen=True)
class _Layout:
    """What decides the columns of every table; saved as store.json."""

    metrics: tuple[str, ...]
    parameters: tuple[tuple[str, str], ...]  # (name, kind) with kind one of KIND_TYPES

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT_VERSION,
            "tables": list(TABLES),
            "metrics": list(self.metrics),
            "parameters": [{"name": name, "kind": kind} for name, kind in self.parameters],
        }

    @classmethod
    def from_json(cls, raw: Any, *, path: Path) -> _Layout:
        try:
            if raw["format"] != FORMAT_VERSION:
                raise StoreError(
                    f"results store: {path} has format {raw['format']}, this version of "
                    f"archsearch reads format {FORMAT_VERSION}; read it with the version "
                    "that wrote it"
                )
            metrics = tuple(str(m) for m in raw["metrics"])
            parameters = tuple((str(p["name"]), str(p["kind"])) for p in raw["parameters"])
        except (KeyError, TypeError) as exc:
            raise StoreError(
                f"results store: {path} is damaged (missing or malformed {exc}); restore it "
                "or use a new run directory"
            ) from exc

        for name, kind in parameters:
            if kind not in KIND_TYPES:
                raise StoreError(
                    f"results store: {path} is damaged (parameter {name} has unknown kind "
                    f"{kind!r}); restore it or use a new run directory"
                )
        return cls(metrics, parameters)

    def schemas(self) -> dict[str, pa.Schema]:
        values = [*self.metrics, TRAIN_LOSS]
        trials = [
            pa.field("trial_id", pa.string(), nullable=False),
            pa.field("trial_number", pa.int64()),
            pa.field("status", pa.string(), nullable=False),
            pa.field("strategy", pa.string(), nullable=False),
            pa.field("scheduler", pa.string(), nullable=False),
            pa.field("seed", pa.int64()),
            pa.field("node", pa.string()),
            *(pa.field(f"param.{name}", KIND_TYPES[kind]) for name, kind in self.parameters),
            *(pa.field(f"{m}_{stat}", pa.float64()) for m in values for stat in ("mean", "std")),
            pa.field("best_epoch", pa.int64()),
            pa.field("epochs_run", pa.int64()),
            pa.field("params_count", pa.int64()),
            # One sample's multiply-accumulates and median single-thread CPU latency.
            pa.field("macs", pa.int64()),
            pa.field("latency_ms", pa.float64()),
            pa.field("seconds", pa.float64()),
            pa.field("error", pa.string()),
        ]
        fold_key = [
            pa.field("trial_id", pa.string(), nullable=False),
            pa.field("fold", pa.int32(), nullable=False),
        ]
        value_fields = [pa.field(m, pa.float64()) for m in [TRAIN_LOSS, *self.metrics]]
        epochs = [*fold_key, pa.field("epoch", pa.int32(), nullable=False), *value_fields]

        schemas = {
            "trials": pa.schema(trials),
            "folds": pa.schema([*fold_key, *value_fields]),
            "epochs": pa.schema(epochs),
        }
        for table, schema in schemas.items():
            _check_unique(schema.names, table=table)
        return schemas


class ResultsStore:
    """Writes and reads the trials, folds and epochs tables of one run directory.

    Args:
        run_dir: The run directory; created if missing.
        parameters: Every parameter of the search, fixed ones included (`flatten(spec)`).
            Each becomes a nullable `param.<name>` column typed by `value_kind`.
        metrics: The metric names every trial reports; `train_loss` is always added.

    Raises:
        StoreError: `run_dir` already holds a store with another layout, or cannot be written.
    """

    def __init__(
        self, run_dir: str | Path, *, parameters: Sequence[Parameter], metrics: Sequence[str]
    ) -> None:
        self.run_dir = location(run_dir)  # a RemotePath for an s3:// or gs:// URI
        self.layout = _Layout(
            metrics=tuple(m for m in metrics if m != TRAIN_LOSS),
            parameters=tuple((p.name, value_kind(p.domain).__name__) for p in parameters),
        )
        self.schemas: dict[str, pa.Schema] = self.layout.schemas()

        try:
            for table in TABLES:
                (self.run_dir / table).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"results store: cannot create {self.run_dir} ({exc})") from exc
        self._save_layout()

    def write_trial(
        self,
        *,
        trial: Mapping[str, Any],
        folds: Sequence[Mapping[str, Any]],
        epochs: Sequence[Mapping[str, Any]],
    ) -> None:
        """Record one finished trial, replacing any earlier record of the same trial id.

        Rows map column names to values; a missing column is null. `trial_id` may be left out of
        fold and epoch rows. Every row is checked and converted before any file is touched.
        """
        trial_id = _trial_id_of(trial)
        tables = {
            "trials": self._to_table("trials", [trial], trial_id=trial_id),
            "folds": self._to_table("folds", folds, trial_id=trial_id),
            "epochs": self._to_table("epochs", epochs, trial_id=trial_id),
        }

        # Withdraw the old commit record first: a crash while rewriting then leaves the trial
        # absent (it reruns on resume) rather than old totals beside new epochs.
        _remove(self._part("trials", trial_id))

        for table in ("epochs", "folds", "trials"):
            _write_atomic(tables[table], self._part(table, trial_id))
        logger.debug("recorded trial %s (%s)", trial_id, trial.get("status"))

    def read(self, table: str) -> pa.Table:
        """All rows of `table` for the trials in the trials table, in trial_number order."""
        return _read(self.run_dir, self.schemas, table)

    def completed_trial_ids(self) -> set[str]:
        """Ids of every trial in the trials table, whatever its status.

        Every status (completed, pruned, failed, diverged) is final: these trials need no rerun.
        """
        return set(self.read("trials").column("trial_id").to_pylist())

    def remove_uncommitted(self) -> list[str]:
        """Delete folds and epochs parts of trials without a trials part; returns their ids.

        They are left by a crash inside `write_trial`. `read` skips them already; removing
        them keeps other Arrow readers of the table folders from seeing their rows.
        """
        committed = {path.name for path in (self.run_dir / "trials").glob("part-*.parquet")}
        removed: set[str] = set()
        for table in ("folds", "epochs"):
            for path in (self.run_dir / table).glob("part-*.parquet"):
                if path.name not in committed:
                    _remove(path)
                    removed.add(path.name[len("part-") : -len(".parquet")])
        return sorted(removed)

    def _part(self, table: str, trial_id: str) -> Path:
        return self.run_dir / table / f"part-{trial_id}.parquet"

    def _save_layout(self) -> None:
        path = self.run_dir / LAYOUT_FILE
        if not path.exists():
            text = json.dumps(self.layout.to_json(), indent=2) + "\n"
            _replace_atomic(path, lambda file: file.write(text.encode()))
            return

        stored = _load_layout(self.run_dir)
        difference = _describe_difference(stored, self.layout)
        if difference:
            raise StoreError(
                f"results store: {path} was written for another layout ({difference}); "
                "resume with the spec that started this run, or use a new run directory"
            )

    def _to_table(
        self, table: str, rows: Iterable[Mapping[str, Any]], *, trial_id: str
    ) -> pa.Table:
        schema = self.schemas[table]
        rows = [self._checked_row(table, row, trial_id=trial_id) for row in rows]

        arrays = []
        for field in schema:
            values = [row.get(field.name) for row in rows]
            try:
                arrays.append(pa.array(values, type=field.type))
            except (pa.ArrowException, OverflowError) as exc:
                # Values of the right kind that Arrow still refuses, e.g. out of int32 range.
                raise StoreError(
                    f"results store: {table}.{field.name} of trial {trial_id} cannot be stored "
                    f"as {field.type} ({_first_line(exc)})"
                ) from exc
        return pa.Table.from_arrays(arrays, schema=schema)

    def _checked_row(self, table: str, row: Mapping[str, Any], *, trial_id: str) -> dict[str, Any]:
        schema = self.schemas[table]
        unknown = [key for key in row if schema.get_field_index(key) < 0]
        if unknown:
            hint = did_you_mean(unknown[0], schema.names)
            raise StoreError(
                f"results store: {table} has no column {unknown[0]!r}{hint} (trial {trial_id}); "
                "write only columns of ResultsStore.schemas"
            )

        row = dict(row)
        row.setdefault("trial_id", trial_id)
        if row["trial_id"] != trial_id:
            raise StoreError(
                f"results store: a {table} row of trial {trial_id} has trial_id "
                f"{row['trial_id']!r}; write each trial's rows with its own trial"
            )
        if table == "trials" and row.get("status") not in STATUSES:
            raise StoreError(
                f"results store: trials.status of trial {trial_id} is {row.get('status')!r}; "
                f"use one of {', '.join(STATUSES)}"
            )

        for field in schema:
            value = row.get(field.name)
            if value is not None and field.type == pa.string() and field.name.startswith("param."):
                # Mixed-kind choices ([1, "auto"]) are stored as text in one column.
                value = row[field.name] = str(value)
            _check_value(value, field, table=table, trial_id=trial_id)
        return row


def read_table(run_dir: str | Path, table: str) -> pa.Table:
    """Read one table of a results store without the spec, using the layout in store.json."""
    run_dir = location(run_dir)
    schemas = _load_layout(run_dir).schemas()
    return _read(run_dir, schemas, table)


# -- reading ------------------------------------------------------------------------------------


def _read(run_dir: Path, schemas: Mapping[str, pa.Schema], table: str) -> pa.Table:
    if table not in TABLES:
        raise StoreError(f"results store: no table {table!r}; use one of {', '.join(TABLES)}")

    trials = _read_trials(run_dir, schemas["trials"])
    if table == "trials":
        return trials

    # Only committed trials count; a part without a trials row is left over from a crash.
    parts = []
    for trial_id in trials.column("trial_id").to_pylist():
        path = run_dir / table / f"part-{trial_id}.parquet"
        commit = run_dir / "trials" / f"part-{trial_id}.parquet"
        if not path.exists():
            raise StoreError(
                f"results store: {commit} records trial {trial_id} but {path} is missing; "
                f"delete {commit} to drop that trial, or rerun the search"
            )
        parts.append(_read_part(path, schemas[table], trial_id=trial_id, commit=commit))
    return pa.concat_tables(parts) if parts else schemas[table].empty_table()


def _read_trials(run_dir: Path, schema: pa.Schema) -> pa.Table:
    parts = []
    for path in sorted((run_dir / "trials").glob("part-*.parquet")):
        trial_id = path.name[len("part-") : -len(".parquet")]
        part = _read_part(path, schema, trial_id=trial_id, commit=None)
        if part.num_rows != 1:
            raise _damaged(path, f"{part.num_rows} rows, a trials part holds one", commit=None)
        parts.append(part)

    if not parts:
        return schema.empty_table()
    trials = pa.concat_tables(parts)
    order = pc.sort_indices(
        trials, sort_keys=[("trial_number", "ascending"), ("trial_id", "ascending")]
    )
    return trials.take(order)


def _read_part(path: Path, schema: pa.Schema, *, trial_id: str, commit: Path | None) -> pa.Table:
    try:
        part = read_parquet(path)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise _damaged(path, _parquet_reason(exc), commit=commit) from exc

    if not part.schema.equals(schema, check_metadata=False):
        reason = f"columns differ from the store's: {_schema_difference(part.schema, schema)}"
        raise _damaged(path, reason, commit=commit)

    ids = set(part.column("trial_id").to_pylist())
    if ids - {trial_id}:
        others = ", ".join(sorted(ids - {trial_id}))
        raise _damaged(path, f"holds rows of trial {others}, not {trial_id}", commit=commit)
    return part


def _damaged(path: Path, reason: str, *, commit: Path | None) -> StoreError:
    # Deleting a trial's commit record drops all its rows; its other parts go with it.
    drop = "it" if commit is None else f"it and {commit}"
    return StoreError(
        f"results store: {path} is damaged ({reason}); delete {drop} to drop that trial, "
        "or rerun the search"
    )


def _schema_difference(found: pa.Schema, expected: pa.Schema) -> str:
    missing = [name for name in expected.names if found.get_field_index(name) < 0]
    extra = [name for name in found.names if expected.get_field_index(name) < 0]
    if missing:
        return f"no column {missing[0]}"
    if extra:
        return f"unexpected column {extra[0]}"
    for field in expected:
        other = found.field(field.name)
        if not other.type.equals(field.type):
            return f"{field.name} is {other.type}, expected {field.type}"
        if other.nullable != field.nullable:
            return f"{field.name} nullability differs"
    return "columns in another order"


def _load_layout(run_dir: Path) -> _Layout:
    path = run_dir / LAYOUT_FILE
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise StoreError(
            f"results store: {path} not found, so {run_dir} is not a results store; "
            "pass the run directory a search wrote"
        ) from exc
    except (OSError, ValueError) as exc:
        raise StoreError(
            f"results store: {path} is damaged ({_first_line(exc)}); restore it or use a new "
            "run directory"
        ) from exc
    if not isinstance(raw, dict):
        raise StoreError(
            f"results store: {path} is damaged (not a JSON object); restore it or use a new "
            "run directory"
        )
    return _Layout.from_json(raw, path=path)


def _describe_difference(stored: _Layout, current: _Layout) -> str:
    """'' when the layouts agree, else the first difference in words."""
    if stored.metrics != current.metrics:
        return (
            f"metrics: stored {', '.join(stored.metrics) or 'none'}, "
            f"now {', '.join(current.metrics) or 'none'}"
        )

    old, new = dict(stored.parameters), dict(current.parameters)
    added = [name for name in new if name not in old]
    removed = [name for name in old if name not in new]
    if added:
        return f"parameter {added[0]} is new"
    if removed:
        return f"parameter {removed[0]} is gone"
    for name, kind in new.items():
        if old[name] != kind:
            return f"parameter {name} was {old[name]}, now {kind}"
    if stored.parameters != current.parameters:
        return "parameters in another order"
    return ""


# -- writing ------------------------------------------------------------------------------------


def _trial_id_of(trial: Mapping[str, Any]) -> str:
    trial_id = trial.get("trial_id")
    if not isinstance(trial_id, str) or not _TRIAL_ID.fullmatch(trial_id):
        raise StoreError(
            f"results store: trials.trial_id is {trial_id!r}; it names files, so use 1 to 200 "
            "letters, digits or _ . = -"
        )
    return trial_id


def _check_value(value: Any, field: pa.Field, *, table: str, trial_id: str) -> None:
    """Refuse what Arrow would silently coerce (1.5 -> 1 in int64, True -> 1.0 in float64)."""
    where = f"results store: {table}.{field.name} of trial {trial_id}"
    if value is None:
        if not field.nullable:
            raise StoreError(f"{where} is missing; every {table} row needs it")
        return

    is_bool = isinstance(value, (bool, np.bool_))
    kind = field.type
    if pa.types.is_integer(kind):
        accepted, wanted = isinstance(value, numbers.Integral) and not is_bool, "an integer"
    elif pa.types.is_floating(kind):
        accepted, wanted = isinstance(value, numbers.Real) and not is_bool, "a number"
    elif pa.types.is_boolean(kind):
        accepted, wanted = is_bool, "true or false"
    else:
        accepted, wanted = isinstance(value, str), "a string"

    if not accepted:
        raise StoreError(
            f"{where} must be {wanted} ({kind}), got {value!r} ({type(value).__name__})"
        )


def _write_atomic(table: pa.Table, path: Path) -> None:
    _replace_atomic(path, lambda file: pq.write_table(table, file))


def _replace_atomic(path: Path, write: Callable[[IO[bytes]], object]) -> None:
    """`write_file`, with its failures reported as a StoreError naming the file."""
    try:
        write_file(path, write)
    except (OSError, pa.ArrowException) as exc:
        raise StoreError(f"results store: cannot write {path} ({_first_line(exc)})") from exc


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        return
    except OSError as exc:
        raise StoreError(f"results store: cannot replace {path} ({_first_line(exc)})") from exc
    if isinstance(path, Path):  # an object store has no folder entries to sync
        sync_folder(path.parent)


def _check_unique(names: Sequence[str], *, table: str) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise StoreError(
                f"results store: {table} would have two {name!r} columns; rename the metric "
                "or parameter that clashes with it"
            )
        seen.add(name)


def _parquet_reason(exc: BaseException) -> str:
    """Arrow's complaint about an unreadable file, without the path it repeats."""
    lines = str(exc).strip().splitlines() or [type(exc).__name__]
    reason = re.sub(r"^Could not open Parquet input source '[^']*': ", "", lines[0])
    return _shorten(reason.split(". ")[0].rstrip("."))


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines() or [type(exc).__name__]
    return _shorten(lines[0])


def _shorten(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."

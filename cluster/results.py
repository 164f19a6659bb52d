"""Reading a run's results: the ranking of trials by their cross-validated objective.

With several objectives, the trials no completed trial dominates form the Pareto set; it is
computed from the trials table whenever it is read (`pareto_trials`), so it always reflects
every recorded trial.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cluster.rundir import load_run_spec
from search_spaces.errors import StoreError

if TYPE_CHECKING:
    from cluster.spec import Spec


def ranked_trials(run_dir: Path, spec: Spec) -> list[dict[str, Any]]:
    """Trials rows, best objective first; trials without a finite objective go last."""
    from cluster.store import read_table

    rows = read_table(run_dir, "trials").to_pylist()
    objective = spec.objective
    sign = -1.0 if spec.mode == "max" else 1.0

    def key(row: dict[str, Any]) -> tuple[bool, float, int]:
        value = row.get(objective)
        finite = value is not None and math.isfinite(value)
        return (not finite, sign * value if finite else 0.0, row.get("trial_number") or 0)

    return sorted(rows, key=key)


def best_trial(run_dir: Path, spec: Spec) -> dict[str, Any]:
    """The trial with the best finite fold-mean objective; StoreError when there is none."""
    ranked = ranked_trials(run_dir, spec)
    if not ranked or not _finite(ranked[0].get(spec.objective)):
        raise StoreError(
            f"results store: {run_dir} has no trial with a finite {spec.objective} "
            f"({len(ranked)} trials recorded); check the trials' errors with 'archsearch "
            "results' and rerun"
        )
    return ranked[0]


def pareto_trials(rows: Sequence[dict[str, Any]], spec: Spec) -> list[dict[str, Any]]:
    """The Pareto-optimal rows among `rows` by the spec's objectives, in the order given.

    Only completed trials count: a pruned trial's scores come from fewer epochs, and other
    statuses have none. With a single objective, the set is its best trial(s).
    """
    from nas.pareto import pareto_front

    objectives = spec.objectives
    completed = [row for row in rows if row["status"] == "completed"]
    values = [[row.get(o.key) for o in objectives] for row in completed]
    return [completed[i] for i in pareto_front(values, [o.mode for o in objectives])]


def trial_by_number(run_dir: Path, number: int) -> dict[str, Any]:
    """The trials row of trial `number`; StoreError naming the numbers there are if none."""
    from cluster.store import read_table

    rows = read_table(run_dir, "trials").to_pylist()
    for row in rows:
        if row["trial_number"] == number:
            return row
    numbers = sorted(r["trial_number"] for r in rows if r["trial_number"] is not None)
    shown = ", ".join(map(str, numbers[:20])) + (" ..." if len(numbers) > 20 else "")
    raise StoreError(f"--pick: {run_dir} has no trial number {number}; it has {shown or 'none'}")


def best_trials_table(run_dir: Path, *, top: int) -> str:
    """A plain-text table of the `top` best trials: objective mean +- std and searched params."""
    spec = load_run_spec(run_dir)
    ranked = ranked_trials(run_dir, spec)
    counts = status_counts(ranked)
    return trials_table(
        ranked[:top], spec, ranked=ranked, title=f"{run_dir}: {len(ranked)} trials ({counts})"
    )


def trials_table(
    rows: list[dict[str, Any]],
    spec: Spec,
    *,
    ranked: list[dict[str, Any]],
    title: str,
    extra: Sequence[str] = (),
) -> str:
    """`rows` as a plain-text table under `title`; `rank` is each row's place in `ranked`.

    The columns: rank, trial, status, the objective's fold mean +- std, epochs, parameter
    count, with several objectives the others' values and a `*` on the Pareto set, the
    searched parameters, then any `extra` columns of the trials table.
    """
    rank_of = {row["trial_id"]: rank for rank, row in enumerate(ranked, start=1)}
    searched = [f"param.{p.name}" for p in spec.parameters() if p.searched]
    metric = spec.evaluation.metric
    # Several objectives: each other one's value, and a mark on the Pareto set.
    others = [o.key for o in spec.objectives if o.key not in (spec.objective, "params_count")]
    extra = [name for name in extra if name not in (*searched, *others)]

    header = ["rank", "trial", "status", f"{metric} (mean +- std)", "epochs", "params"]
    pareto = (
        {row["trial_id"] for row in pareto_trials(ranked, spec)} if spec.multi_objective else None
    )
    header += others + ([] if pareto is None else ["pareto"])
    header += [name.removeprefix("param.") for name in [*searched, *extra]]
    lines = [header]
    for row in rows:
        score = f"{row[spec.objective]:.4f} +- {row[f'{metric}_std']:.4f}"
        line = [
            str(rank_of.get(row["trial_id"], "-")),
            row["trial_id"],
            row["status"],
            score,
            str(row["epochs_run"]),
            str(row.get("params_count") or "-"),
        ]
        line += [show_cell(row.get(name)) for name in others]
        if pareto is not None:
            line.append("*" if row["trial_id"] in pareto else "")
        line += [show_cell(row.get(name)) for name in [*searched, *extra]]
        lines.append(line)

    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = [
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    ]
    return "\n".join([title, *text])


def status_counts(rows: list[dict[str, Any]]) -> str:
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    return ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "none"


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def show_cell(value: Any) -> str:
    """One table cell: `-` for a missing value, floats to 4 significant digits."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)

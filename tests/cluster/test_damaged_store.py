"""`archsearch results` on a run whose files were damaged: one line naming the file, exit 2.

A run directory with a real spec and two recorded trials is damaged one way per case; the
command must print nothing on stdout (no partial table) and one line on stderr naming the file.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from cluster.cli import main
from cluster.spec import parse_spec
from cluster.store import ResultsStore
from trainers.metrics import metric_names

SPEC = {
    "name": "damaged",
    "data": {"dataset": "digits"},
    "model": {"family": "mlp", "depth": {"int": [1, 2]}},
    "evaluation": {"folds": 2, "metric": "accuracy"},
    "search": {"strategy": "random", "trials": 2},
}


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "spec.yaml").write_text(yaml.safe_dump(SPEC))
    spec = parse_spec(SPEC)
    store = ResultsStore(folder, parameters=spec.parameters(), metrics=metric_names(spec.task))
    for number, accuracy in ((0, 0.8), (1, 0.9)):
        trial_id = f"abcde_0000{number}"
        store.write_trial(
            trial={
                "trial_id": trial_id,
                "trial_number": number,
                "status": "completed",
                "strategy": "random",
                "scheduler": "none",
                "param.model.depth": number + 1,
                "accuracy_mean": accuracy,
                "accuracy_std": 0.01,
                "epochs_run": 1,
            },
            folds=[{"fold": f, "accuracy": accuracy} for f in (0, 1)],
            epochs=[{"fold": f, "epoch": 1, "accuracy": accuracy} for f in (0, 1)],
        )
    return folder


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:40])


DAMAGE = {
    "truncated-trials-part": ("trials/part-abcde_00001.parquet", _truncate),
    "garbage-trials-part": (
        "trials/part-abcde_00000.parquet",
        lambda p: p.write_bytes(b"not parquet at all"),
    ),
    "garbage-layout": ("store.json", lambda p: p.write_text("{ no json")),
    "layout-of-another-format": ("store.json", lambda p: p.write_text('{"format": 9}')),
}


@pytest.mark.parametrize("fmt", ["table", "csv"])
@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_results_on_a_damaged_store_names_the_file_and_stops(
    case: str, fmt: str, run_dir: Path, capsys
) -> None:
    assert main(["results", str(run_dir), "--format", fmt]) == 0
    assert "abcde_00001" in capsys.readouterr().out

    name, damage = DAMAGE[case]
    damage(run_dir / name)
    code = main(["results", str(run_dir), "--format", fmt])

    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("archsearch: results store: "), err
    assert str(run_dir / name) in err
    assert re.search(r"(damaged|format 9)", err)

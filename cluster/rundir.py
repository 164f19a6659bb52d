"""The run directory: where one search keeps its spec, results store, Ray state and model.

<run_dir>/spec.yaml          the spec as run (command-line overrides written in)
<run_dir>/store.json         the store's layout
<run_dir>/trials|folds|epochs/part-<trial>.parquet
<run_dir>/tune/              Ray Tune's own experiment state
<run_dir>/model.pt, model.json   the exported winner
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from search_spaces.errors import SpecError, StoreError
from trainers.atomic import write_atomically

if TYPE_CHECKING:
    from cluster.spec import Spec

SPEC_FILE = "spec.yaml"


def new_run_dir(spec: Spec, *, output: str | None) -> Path:
    """`--output` if given, else `<cluster.storage>/<name>-<timestamp>`; refuses a used folder."""
    if output is not None:
        run_dir = Path(output)
    else:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        run_dir = Path(spec.cluster.storage) / f"{spec.name}-{stamp}"
    if (run_dir / SPEC_FILE).exists():
        raise SpecError(
            f"--output: {run_dir} already holds a search; choose a new folder so its results "
            "are kept"
        )
    return run_dir


def write_spec_copy(run_dir: Path, spec_text: str) -> None:
    """Keep the spec beside its results, written atomically (a temp file, then a rename)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    write_atomically(run_dir / SPEC_FILE, lambda file: file.write(spec_text.encode("utf-8")))


def load_run_spec(run_dir: Path) -> Spec:
    """The validated spec a run directory was made with."""
    from cluster.spec import load_spec

    if not (run_dir / SPEC_FILE).is_file():
        raise StoreError(
            f"run directory: {run_dir} has no {SPEC_FILE}; pass the folder 'archsearch run' "
            "printed at its end"
        )
    return load_spec(run_dir / SPEC_FILE)

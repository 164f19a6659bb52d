"""The run directory: where one search keeps its spec, results store, Ray state and model.

<run_dir>/spec.yaml          the spec as run (command-line overrides written in)
<run_dir>/store.json         the store's layout
<run_dir>/trials|folds|epochs/part-<trial>.parquet
<run_dir>/tune/              Ray Tune's own experiment state and trial checkpoints
<run_dir>/strategy-state.json   a strategy's own state (Bayesian: Ax), for --resume
<run_dir>/driver.lock        locked while a driver runs the search
<run_dir>/model.pt, model.json   the exported winner
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from cluster.storage import RemotePath, location, write_file
from search_spaces.errors import SpecError, StoreError

if TYPE_CHECKING:
    from cluster.spec import Spec

SPEC_FILE = "spec.yaml"
LOCK_FILE = "driver.lock"
STRATEGY_STATE_FILE = "strategy-state.json"


def new_run_dir(spec: Spec, *, output: str | None) -> Path | RemotePath:
    """`--output` if given, else `<cluster.storage>/<name>-<timestamp>`; refuses a used folder.

    Either may be a path or a URI (see cluster.storage); a URI gives a RemotePath.
    """
    if output is not None:
        run_dir = location(output)
    else:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        run_dir = location(spec.cluster.storage) / f"{spec.name}-{stamp}"
    if (run_dir / SPEC_FILE).exists():
        raise SpecError(
            f"--output: {run_dir} already holds a search; choose a new folder so its results "
            "are kept"
        )
    return run_dir


def write_spec_copy(run_dir: Path | RemotePath, spec_text: str) -> None:
    """Keep the spec beside its results, written atomically (a temp file, then a rename)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    write_file(run_dir / SPEC_FILE, lambda file: file.write(spec_text.encode("utf-8")))


def load_run_spec(run_dir: Path) -> Spec:
    """The validated spec a run directory was made with."""
    from cluster.spec import load_spec

    if not (run_dir / SPEC_FILE).is_file():
        raise StoreError(
            f"run directory: {run_dir} has no {SPEC_FILE}; pass the folder 'archsearch run' "
            "printed at its end"
        )
    return load_spec(run_dir / SPEC_FILE)


def check_resumable(run_dir: Path) -> None:
    """Refuse a folder that holds no search to go on with."""
    if not (run_dir / SPEC_FILE).is_file():
        raise StoreError(
            f"--resume: {run_dir} has no {SPEC_FILE}, so it holds no search to resume; pass "
            "the run directory 'archsearch run' printed, or start a new run"
        )


def hold_run_dir(run_dir: Path | RemotePath) -> IO[str] | contextlib.AbstractContextManager[Any]:
    """Lock `run_dir` for this driver; the lock goes when the returned file is closed.

    The operating system drops the lock when the process dies, however it dies, so a search
    killed by SIGKILL can be resumed at once, while a second driver on a live search cannot
    start: two writers would each run the trials the other has not recorded yet.

    Raises:
        StoreError: another process holds the lock.
    """
    import fcntl

    if isinstance(run_dir, RemotePath):
        # FIXME: an object store has no file locks, so two drivers on one s3:// or gs:// run
        # directory are not kept apart; a lock object written with a precondition could.
        return contextlib.nullcontext()
    run_dir.mkdir(parents=True, exist_ok=True)
    file = (run_dir / LOCK_FILE).open("a+")
    try:
        fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        file.seek(0)
        holder = file.read().strip() or "another process"
        file.close()
        raise StoreError(
            f"--resume: {run_dir} is being searched by {holder} right now; wait for it to end "
            "or stop it, then resume"
        ) from None
    file.seek(0)
    file.truncate()
    file.write(f"pid {os.getpid()}\n")
    file.flush()
    return file

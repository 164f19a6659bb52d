"""The `archsearch` command: run, validate, results, export.

Errors a user can fix (`ArchsearchError`) end the command with their one-line message on stderr
and exit status 2; no traceback is shown for them. Heavy imports (Ray, torch, Ax) happen inside
the commands so `--help` and `validate` answer quickly.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from search_spaces.errors import ArchsearchError

EXIT_USAGE = 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.command(args)
    except ArchsearchError as error:
        print(f"archsearch: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(
            "archsearch: interrupted; finished trials are kept in the run directory",
            file=sys.stderr,
        )
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="archsearch",
        description="Neural architecture search and hyperparameter tuning for PyTorch on Ray.",
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run the search a spec describes, then export the best")
    run.add_argument("spec", help="the YAML search spec")
    run.add_argument("--trials", type=int, help="override search.trials")
    run.add_argument("--seed", type=int, help="override seed")
    run.add_argument("--output", help="run directory (default: <cluster.storage>/<name>-<time>)")
    run.add_argument("--address", help="Ray cluster to join, e.g. auto or ray://host:10001")
    run.add_argument("--no-export", action="store_true", help="skip the refit and export")
    run.add_argument("--quiet", action="store_true", help="print only the final summary")
    run.set_defaults(command=_run)

    validate = commands.add_parser("validate", help="check a spec without running anything")
    validate.add_argument("spec")
    validate.set_defaults(command=_validate)

    results = commands.add_parser("results", help="the best trials of a run, with mean +- std")
    results.add_argument("run_dir")
    results.add_argument("--top", type=int, default=10, help="how many trials to show")
    results.set_defaults(command=_results)

    export = commands.add_parser("export", help="refit the best config and write TorchScript")
    export.add_argument("run_dir")
    export.add_argument("-o", "--output", help="model file to write (default RUN_DIR/model.pt)")
    export.set_defaults(command=_export)
    return parser


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    if args.trials is not None:
        overrides["search.trials"] = args.trials
    if args.seed is not None:
        overrides["seed"] = args.seed
    if args.address is not None:
        overrides["cluster.address"] = args.address
    return overrides


def _validate(args: argparse.Namespace) -> int:
    from cluster.spec import load_spec

    spec = load_spec(args.spec)
    searched = [p.name for p in spec.parameters() if p.searched]
    print(
        f"{args.spec}: valid; {spec.search.strategy} search over {len(searched)} parameters "
        f"({', '.join(searched) or 'none'}), objective {spec.objective} ({spec.mode})"
    )
    return 0


def _run(args: argparse.Namespace) -> int:
    import yaml

    from cluster.rundir import new_run_dir
    from cluster.runtime import use_loopback_only
    from cluster.spec import apply_overrides, parse_spec, read_spec_file

    overrides = _overrides(args)
    raw = apply_overrides(read_spec_file(args.spec), overrides)
    spec = parse_spec(raw, source=args.spec)
    if spec.cluster.address is None:
        use_loopback_only()
    run_dir = new_run_dir(spec, output=args.output)
    # The copy kept in the run directory is the spec as run: overrides written in.
    spec_text = (
        yaml.safe_dump(raw, sort_keys=False)
        if overrides
        else Path(args.spec).read_text(encoding="utf-8")
    )
    _quiet_ray()

    from cluster.driver import run_search

    stream = None if args.quiet else sys.stdout
    summary = run_search(spec, run_dir=run_dir, spec_text=spec_text, stream=stream)
    print(
        f"search finished: {summary.trials} trials ({summary.stopped_early} stopped early) "
        f"in {summary.seconds:.0f}s; results in {run_dir}"
    )
    _print_results(run_dir, top=5)

    if not args.no_export:
        _export_run(run_dir, output=None)
    return 0


def _results(args: argparse.Namespace) -> int:
    _print_results(Path(args.run_dir), top=args.top)
    return 0


def _print_results(run_dir: Path, *, top: int) -> None:
    from cluster.results import best_trials_table

    print(best_trials_table(run_dir, top=top))


def _export(args: argparse.Namespace) -> int:
    _export_run(Path(args.run_dir), output=args.output)
    return 0


def _export_run(run_dir: Path, *, output: str | None) -> None:
    import torch

    from cluster.finalize import export_best

    # The refit runs after Ray has shut down, so it may use every core of this machine.
    torch.set_num_threads(os.cpu_count() or 1)
    model_path = Path(output) if output else run_dir / "model.pt"
    info = export_best(run_dir, model_path=model_path, stream=sys.stdout)
    test = ", ".join(f"{name} {value:.4f}" for name, value in info["test_metrics"].items())
    print(f"exported {model_path} ({info['parameters']} parameters); test split: {test}")


def _quiet_ray() -> None:
    """Keep Ray's own console output from burying ours."""
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    for name in ("ray", "ray.tune", "ray.train"):
        logging.getLogger(name).setLevel(logging.ERROR)

"""The `archsearch` command: run, validate, results, report, export, compress.

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

from search_spaces.errors import ArchsearchError, SpecError

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
    except BrokenPipeError:
        # The reader left early (`archsearch results ... | head`): as for other Unix tools,
        # not an error. stdout is pointed at /dev/null so that flushing it at exit is quiet.
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):  # a stdout without a file descriptor
            pass
        return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="archsearch",
        description="Neural architecture search and hyperparameter tuning for PyTorch on Ray.",
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run the search a spec describes, then export the best")
    run.add_argument(
        "spec", nargs="?", help="the YAML search spec (with --resume: optional, must match)"
    )
    run.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="go on with the search in RUN_DIR; the trials it finished are not run again",
    )
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

    results = commands.add_parser(
        "results", help="the trials of a run, best first: filter, sort, top-k, table/CSV/JSON"
    )
    results.add_argument("run_dir")
    results.add_argument(
        "--top", type=int, help="how many trials to show (default 10 as a table, all otherwise)"
    )
    results.add_argument(
        "--where",
        help='keep trials that match, e.g. "param.model.depth >= 2 and status == completed"',
    )
    results.add_argument("--sort", metavar="COLUMN", help="sort by this column, not the objective")
    results.add_argument("--desc", action="store_true", help="with --sort: largest first")
    results.add_argument("--format", choices=("table", "csv", "json"), default="table")
    results.set_defaults(command=_results)

    report = commands.add_parser(
        "report", help="write report.html and PNG figures: who won, by how much, and why"
    )
    report.add_argument("run_dir")
    report.add_argument("-o", "--output", help="folder to write (default RUN_DIR/report)")
    report.set_defaults(command=_report)

    export = commands.add_parser("export", help="refit the best config and write TorchScript")
    export.add_argument("run_dir")
    export.add_argument(
        "-o",
        "--output",
        help="model file to write (default RUN_DIR/model.pt; with --pick, "
        "RUN_DIR/models/trial-N/model.pt); with --pick pareto, the folder for them",
    )
    export.add_argument(
        "--pick",
        default="best",
        help="best (default), pareto (every Pareto-optimal trial), or a trial number",
    )
    export.set_defaults(command=_export)

    compress = commands.add_parser(
        "compress",
        help="prune and int8-quantize the exported model; measure accuracy, size and latency",
    )
    compress.add_argument("run_dir")
    compress.add_argument(
        "--model", help="the exported model to compress (default RUN_DIR/model.pt)"
    )
    compress.set_defaults(command=_compress)
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
        f"({', '.join(searched) or 'none'}), objective "
        + ", ".join(f"{o.key} ({o.mode})" for o in spec.objectives)
    )
    return 0


def _run(args: argparse.Namespace) -> int:
    import yaml

    from cluster.rundir import new_run_dir
    from cluster.runtime import use_loopback_only
    from cluster.spec import apply_overrides, parse_spec, read_spec_file
    from cluster.storage import is_uri

    overrides = _overrides(args)
    if args.resume is not None:
        spec, run_dir = _resumed_spec(args, overrides)
        spec_text = ""
    else:
        if args.spec is None:
            raise SpecError("spec: give the YAML spec to run, or --resume RUN_DIR")
        raw = apply_overrides(read_spec_file(args.spec), overrides)
        spec = parse_spec(raw, source=args.spec)
        run_dir = new_run_dir(spec, output=args.output)
        if is_uri(str(run_dir)) and not args.no_export:
            # FIXME: the refit and export write local files only.
            raise SpecError(
                f"--output: {run_dir} is on an object store, where this version cannot export "
                "the model yet; add --no-export"
            )
        # The copy kept in the run directory is the spec as run: overrides written in.
        spec_text = (
            yaml.safe_dump(raw, sort_keys=False)
            if overrides
            else Path(args.spec).read_text(encoding="utf-8")
        )
    if spec.cluster.address is None:
        use_loopback_only()
    _quiet_ray()

    from cluster.driver import run_search

    stream = None if args.quiet else sys.stdout
    summary = run_search(
        spec,
        run_dir=run_dir,
        spec_text=spec_text,
        stream=stream,
        resume=args.resume is not None,
    )
    resumed = f", {summary.resumed} done before the resume" if summary.resumed else ""
    print(
        f"search finished: {summary.trials} trials ({summary.stopped_early} stopped early"
        f"{resumed}) in {summary.seconds:.0f}s; results in {run_dir}"
    )
    _print_results(run_dir, top=5)

    if not args.no_export:
        _export_run(run_dir, output=None)
    return 0


def _resumed_spec(args: argparse.Namespace, overrides: dict[str, Any]) -> tuple[Any, Path]:
    """The spec of the run to resume, checked against the one given (if any), and its folder."""
    from cluster.resume import check_same_spec
    from cluster.rundir import SPEC_FILE, check_resumable
    from cluster.spec import apply_overrides, parse_spec, read_spec_file

    run_dir = Path(args.resume)
    if args.output is not None and Path(args.output) != run_dir:
        raise SpecError(
            f"--output: {args.output} differs from --resume {run_dir}; a resumed search "
            "writes into its own run directory, so leave --output out"
        )
    check_resumable(run_dir)
    started = parse_spec(read_spec_file(run_dir / SPEC_FILE), source=str(run_dir / SPEC_FILE))

    source = args.spec if args.spec is not None else run_dir / SPEC_FILE
    given = parse_spec(apply_overrides(read_spec_file(source), overrides), source=str(source))
    check_same_spec(started, given, run_dir=run_dir)
    # Where it runs may change (cluster.address); everything else is the run's own spec.
    return given, run_dir


def _results(args: argparse.Namespace) -> int:
    from cluster.storage import location

    run_dir = location(args.run_dir)  # also an s3:// or gs:// run directory
    if args.where is None and args.sort is None and args.format == "table":
        _print_results(run_dir, top=10 if args.top is None else args.top)
        return 0

    from cluster.query import format_trials, select_trials

    top = 10 if args.top is None and args.format == "table" else args.top
    rows, ranked, schema = select_trials(
        run_dir, where=args.where, sort=args.sort, descending=args.desc, top=top
    )
    extra = [args.sort] if args.sort else []
    print(
        format_trials(
            rows, fmt=args.format, run_dir=run_dir, ranked=ranked, schema=schema, extra=extra
        )
    )
    return 0


def _report(args: argparse.Namespace) -> int:
    from cluster.report import write_report

    run_dir = Path(args.run_dir)
    report = write_report(run_dir, output=Path(args.output) if args.output else None)
    print(f"wrote {report.html} with {len(report.figures)} figures:")
    for figure in report.figures:
        print(f"  {figure.path}  {figure.title}")
    for note in report.notes:
        print(f"note: {note}")
    return 0


def _print_results(run_dir: Path, *, top: int) -> None:
    from cluster.results import best_trials_table

    print(best_trials_table(run_dir, top=top))


def _export(args: argparse.Namespace) -> int:
    if args.output and args.pick != "pareto" and Path(args.output).suffix != ".pt":
        # A model file is written there and its model.json beside it: a mistyped path
        # (the spec's, say) would be overwritten.
        raise SpecError(
            f"--output: {args.output} does not end in .pt; name the TorchScript file to "
            "write, e.g. --output best.pt (its model.json goes beside it)"
        )
    if args.pick == "best":
        _export_run(Path(args.run_dir), output=args.output)
        return 0
    _export_picked(Path(args.run_dir), pick=args.pick, output=args.output)
    return 0


def _export_picked(run_dir: Path, *, pick: str, output: str | None) -> None:
    """Export the trial a user names, or every Pareto-optimal trial, each in its own folder."""
    import torch

    from cluster.finalize import export_trial
    from cluster.results import pareto_trials, ranked_trials, trial_by_number
    from cluster.rundir import load_run_spec

    if pick == "pareto":
        spec = load_run_spec(run_dir)
        chosen = pareto_trials(ranked_trials(run_dir, spec), spec)
        if not chosen:
            raise SpecError(
                f"--pick pareto: {run_dir} has no completed trial with every objective "
                "measured; see archsearch results"
            )
        folder = Path(output) if output else run_dir / "models"
        targets = [(row, folder / f"trial-{row['trial_number']}" / "model.pt") for row in chosen]
    else:
        try:
            number = int(pick)
        except ValueError:
            raise SpecError(
                f"--pick: {pick!r} is not best, pareto or a trial number; e.g. --pick 3"
            ) from None
        row = trial_by_number(run_dir, number)
        default = run_dir / "models" / f"trial-{number}" / "model.pt"
        targets = [(row, Path(output) if output else default)]

    torch.set_num_threads(os.cpu_count() or 1)
    for row, model_path in targets:
        info = export_trial(run_dir, row, model_path=model_path, stream=sys.stdout)
        test = ", ".join(f"{name} {value:.4f}" for name, value in info["test_metrics"].items())
        cost = info["cost"]
        print(
            f"exported trial {row['trial_number']} to {model_path} ({info['parameters']} "
            f"parameters, {cost['macs']} MACs, {cost['latency_ms']:.3f} ms); test split: {test}"
        )


def _compress(args: argparse.Namespace) -> int:
    from cluster.compress import compress_run

    run_dir = Path(args.run_dir)
    model = Path(args.model) if args.model else None
    print(f"{'variant':<24} {'size':>13} {'latency':>11}  test split")
    compress_run(run_dir, model_path=model, stream=sys.stdout)
    print(
        f"wrote the variants' numbers into {(model or run_dir / 'model.pt').with_suffix('.json')}"
    )
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
    from cluster.progress import tame_ray_console

    tame_ray_console()

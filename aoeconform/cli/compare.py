"""``aoeconform compare``: several runs' reports side by side."""

from __future__ import annotations

import os

from aoeconform.errors import EXIT_OK, UsageError


def register(subparsers) -> None:
    p = subparsers.add_parser("compare", help="compare several runs side by side (one column per target)")
    p.add_argument("reports", nargs="+", metavar="REPORT",
                   help="report directories (or their report.json); a fleet report (`run` over several targets) counts as its targets' runs")
    p.add_argument("--label", action="append", default=[], metavar="NAME",
                   help="column name for each report, in order (default: the target's IDENTIFY model and firmware)")
    p.add_argument("--all", action="store_true", help="list every case, not only those whose outcomes differ")
    p.add_argument("--html", metavar="FILE", help="also write the comparison as a single HTML file")
    p.set_defaults(func=run)


def run(args) -> int:
    from aoeconform.report.compare import html, load_runs, text
    from aoeconform.report.formats import write_atomic

    runs = [run for path in args.reports for run in load_runs(path)]
    if len(runs) < 2:
        raise UsageError("name at least two reports to compare (or a fleet report of several targets)")
    if args.label:
        if len(args.label) != len(runs):
            raise UsageError(f"{len(args.label)} --label for {len(runs)} runs; give one per run or none")
        for run, label in zip(runs, args.label):
            run.label = label
    if len({r.label for r in runs}) < len(runs):  # same target twice: tell the columns apart by directory
        for r in runs:
            r.label = f"{r.label} ({os.path.basename(os.path.dirname(os.path.abspath(r.path)))})"
    print(text(runs, only_differences=not args.all))
    if args.html:
        write_atomic(args.html, html(runs, only_differences=not args.all))
    return EXIT_OK

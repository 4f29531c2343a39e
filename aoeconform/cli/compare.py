"""``aoeconform compare``: several runs' reports side by side."""

from __future__ import annotations

import os

from aoeconform.errors import EXIT_OK, UsageError


def register(subparsers) -> None:
    p = subparsers.add_parser("compare", help="compare several runs side by side (one column per target)")
    p.add_argument("reports", nargs="+", metavar="REPORT", help="report directories (or their report.json)")
    p.add_argument("--label", action="append", default=[], metavar="NAME",
                   help="column name for each report, in order (default: the target's IDENTIFY model and firmware)")
    p.add_argument("--all", action="store_true", help="list every case, not only those whose outcomes differ")
    p.add_argument("--html", metavar="FILE", help="also write the comparison as a single HTML file")
    p.set_defaults(func=run)


def run(args) -> int:
    from aoeconform.report.compare import html, load_run, text
    from aoeconform.report.formats import write_atomic

    if len(args.reports) < 2:
        raise UsageError("name at least two reports to compare")
    if args.label and len(args.label) != len(args.reports):
        raise UsageError(f"{len(args.label)} --label for {len(args.reports)} reports; give one per report or none")
    labels = args.label or [""] * len(args.reports)
    runs = [load_run(path, label) for path, label in zip(args.reports, labels)]
    if len({r.label for r in runs}) < len(runs):  # same target twice: tell the columns apart by directory
        for r in runs:
            r.label = f"{r.label} ({os.path.basename(os.path.dirname(os.path.abspath(r.path)))})"
    print(text(runs, only_differences=not args.all))
    if args.html:
        write_atomic(args.html, html(runs, only_differences=not args.all))
    return EXIT_OK

"""``aoeconform selftest``: the suites against the clean target, every quirk
and every accepted reading.

Exit status 1 when the clean target fails a case, a quirk is caught by no
case, a case catches no quirk and says no `uncatchable` reason, or a case
fails against a reading its rule accepts.
"""

from __future__ import annotations

import json
import time

from aoeconform.errors import EXIT_FAILURES, EXIT_OK


def register(subparsers) -> None:
    from .run import SUITES_HELP

    p = subparsers.add_parser("selftest", help="prove the suites against the reference target and its quirks (in memory)")
    p.add_argument("suites", nargs="*", metavar="SUITE", help=SUITES_HELP)
    p.add_argument("--quirk", action="append", default=[], metavar="NAME", help="only these quirks (repeatable; default all)")
    p.add_argument("--json", action="store_true", help="print the matrix as JSON")
    p.add_argument("--jobs", "-j", type=int, default=None, metavar="N", help="parallel processes (default: one per CPU)")
    p.set_defaults(func=run)


def run(args) -> int:
    from aoeconform.scenario.loader import load_suites, shipped_suite_paths
    from aoeconform.scenario.selftest import selftest
    from aoeconform.target.quirks import QUIRKS, check_quirks

    paths = args.suites or shipped_suite_paths()
    load_suites(paths)  # suite errors: exit 2 before any work
    quirks = sorted(check_quirks(args.quirk)) if args.quirk else list(QUIRKS)
    started = time.monotonic()
    report = selftest(paths, quirks, args.jobs, readings=None if not args.quirk else [])
    if not args.quirk:
        pass
    else:  # a partial quirk set cannot judge cases that catch none
        report.problems[:] = [p for p in report.problems if "catches no quirk" not in p]
    elapsed = time.monotonic() - started
    if args.json:
        doc = report.as_dict()
        doc["seconds"] = round(elapsed, 3)
        print(json.dumps(doc, indent=1))
    else:
        _print(report, elapsed)
    return EXIT_FAILURES if report.problems else EXIT_OK


def _print(report, elapsed: float) -> None:
    from aoeconform.scenario.selftest import NOT_IN_MEMORY

    clean = report.clean
    print(f"left out: cases that need {', '.join(NOT_IN_MEMORY)} (no in-memory target can boot the Linux driver; "
          "tests/test_suite_linux.py proves their catches)")
    ran = sum(1 for o in clean.outcomes.values() if o != "skipped")
    print(f"clean target: {ran} cases ran, {len(clean.bad)} did not pass")
    width = max([len(r.quirk) for r in report.quirk_runs] or [5])
    for run in report.quirk_runs:
        caught = sorted(run.caught_by)
        shown = ", ".join(caught[:4]) + (f", … (+{len(caught) - 4})" if len(caught) > 4 else "")
        mark = "ok " if caught else "MISS"
        print(f"{mark} {run.quirk:<{width}}  {len(caught):>3} cases  {shown}")
    catches = report.catches_of()
    silent = [c for c in report.cases if not catches.get(c.id)]
    print(f"{len(report.cases) - len(silent)} of {len(report.cases)} cases catch at least one quirk; "
          f"{sum(1 for c in silent if c.uncatchable)} others give an `uncatchable` reason")
    if report.reading_runs:
        strict = [r for r in report.reading_runs if r.bad]
        print(f"accepted readings: {len(report.reading_runs)} (`aoeconform target --list-readings`); "
              + (f"{len(strict)} fail cases that should accept them" if strict else "every case accepts every one"))
    runs = [clean, *report.quirk_runs, *report.reading_runs]
    exchanges = sum(r.exchanges for r in runs)
    print(f"{len(runs)} runs, {exchanges} exchanges in {elapsed:.2f} s")
    for problem in report.problems:
        print(f"PROBLEM {problem}")

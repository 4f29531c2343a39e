"""``aoeconform selftest``: the suites against the clean target, every quirk
and every accepted reading.

With ``--fuzz``: the fuzzer instead, against each quirk for ``--seconds``;
exit 0 whatever it finds (the last line says how many quirks it found).
``--fuzz --replay`` also shrinks each finding and replays it against a
fresh target with the quirk and a clean one: exit 1 when a finding does not
fire again, or fires against the clean target too.

Exit status 1 when the clean target fails a case, a quirk is caught by no
case, a case catches no quirk and says no `uncatchable` reason, or a case
fails against a reading its rule accepts.
"""

from __future__ import annotations

import json
import time

from aoeconform.cli.argtypes import seconds
from aoeconform.errors import EXIT_FAILURES, EXIT_OK, UsageError


def register(subparsers) -> None:
    from .run import SUITES_HELP

    p = subparsers.add_parser("selftest", help="prove the suites against the reference target and its quirks (in memory)")
    p.add_argument("suites", nargs="*", metavar="SUITE", help=SUITES_HELP)
    p.add_argument("--quirk", action="append", default=[], metavar="NAME", help="only these quirks (repeatable; default all)")
    p.add_argument("--json", action="store_true", help="print the matrix as JSON")
    p.add_argument("--jobs", "-j", type=int, default=None, metavar="N", help="parallel processes (default: one per CPU)")
    p.add_argument("--fuzz", action="store_true",
                   help="instead of the suites, fuzz the reference target with each quirk: which are found, by which rule, how soon")
    p.add_argument("--seconds", type=seconds, default=None, metavar="S", help="with --fuzz: seconds per quirk (default 20)")
    p.add_argument("--replay", action="store_true",
                   help="with --fuzz: shrink every finding and replay it against the quirk (must fire) and the clean target (must not)")
    p.set_defaults(func=run)


def run_fuzz(args) -> int:
    """Exit 0 whatever the coverage: the summary line says how much was found."""
    from aoeconform.fuzz.selftest import fuzz_quirks
    from aoeconform.target.quirks import QUIRKS, check_quirks

    if args.suites:
        raise UsageError("--fuzz fuzzes the reference target; it takes no SUITE")
    quirks = sorted(check_quirks(args.quirk)) if args.quirk else list(QUIRKS)
    limit = 20.0 if args.seconds is None else args.seconds
    width = max(len(q) for q in quirks)
    started = time.monotonic()

    def line(r) -> None:
        if args.json:
            return
        if r.error:
            print(f"ERR  {r.quirk:<{width}}  {r.error}", flush=True)
        elif r.found:
            replayed = ""
            if args.replay:
                replayed = f"; {len(r.replays) - len(r.not_replayed)} of {len(r.replays)} findings replay"
                replayed += f", {len(r.false_findings)} also on the clean target" if r.false_findings else ""
            print(f"ok   {r.quirk:<{width}}  rule {r.rule} {r.kind} after {r.found_after:.2f} s (case {r.case_index}){replayed}",
                  flush=True)
            for check in r.replays:
                if not check.fires or check.fires_clean:
                    what = "fires on the clean target too" if check.fires_clean else "does not replay"
                    print(f"       {check.signature} ({'shrunk' if check.shrunk else 'as found'}, {check.frames} frames): {what}",
                          flush=True)
        else:
            print(f"MISS {r.quirk:<{width}}  nothing in {r.cases} cases, {r.seconds:.1f} s", flush=True)

    if args.replay and args.seconds is None:
        limit = 10.0  # each quirk runs for all of it when its findings are replayed
    results = fuzz_quirks(quirks, limit, line, replay=args.replay)
    found = sum(1 for r in results if r.found)
    summary = f"found {found} of {len(results)} quirks ({limit:g} s each at most, {time.monotonic() - started:.0f} s in all)"
    checks = [c for r in results for c in r.replays]
    bad = [c for c in checks if not c.fires or c.fires_clean]
    if args.replay:
        summary += (f"; {sum(c.fires for c in checks)} of {len(checks)} findings replay, "
                    f"{sum(c.fires_clean for c in checks)} fire on the clean target too")
    if args.json:
        doc = {"seconds_per_quirk": limit, "found": found, "quirks": len(results), "results": [r.as_dict() for r in results]}
        if args.replay:
            doc.update(findings=len(checks), replayed=sum(c.fires for c in checks), fire_on_clean=sum(c.fires_clean for c in checks))
        print(json.dumps(doc, indent=1))
    else:
        print(summary)
    return EXIT_FAILURES if bad else EXIT_OK


def run(args) -> int:
    if args.fuzz:
        return run_fuzz(args)
    if args.seconds is not None or args.replay:
        raise UsageError(f"{'--seconds' if args.seconds is not None else '--replay'} goes with --fuzz")
    from aoeconform.scenario.loader import load_suites, shipped_suite_paths
    from aoeconform.scenario.selftest import selftest
    from aoeconform.target.quirks import QUIRKS, check_quirks

    paths = args.suites or shipped_suite_paths()
    load_suites(paths)  # suite errors: exit 2 before any work
    quirks = sorted(check_quirks(args.quirk)) if args.quirk else list(QUIRKS)
    started = time.monotonic()
    # a partial quirk set cannot judge cases that catch none, nor runs the readings
    report = selftest(paths, quirks, args.jobs, readings=None if not args.quirk else [], all_quirks=not args.quirk)
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

"""``aoeconform run``: run conformance suites against a target and write reports.

Exit statuses: see ``aoeconform.errors.EXIT_STATUS_HELP`` (shown by --help).
"""

from __future__ import annotations

import argparse
import contextlib
import random
import signal
import sys
import threading
import time

from aoeconform.errors import EXIT_FAILURES, EXIT_OK, EXIT_STATUS_HELP, TargetUnreachable, Terminated, UsageError

from .argtypes import integer


OUTPUT_HELP = """\
output:
  On a terminal: a progress bar, a line per failing case (-v: per case), then a summary.
  Without one (stdout a pipe or a file), or with CI=true: a plain line per case
  (PASS, FAIL, SKIP, ...), no progress bar and no control characters, then the summary.
  Either way the reports go to --report-dir: report.json, junit.xml, report.sarif,
  report.html, manifest.json, and failures/ (a pcap and a replay file per failure)."""

SUITES_HELP = "suite files, or directories of them (expectations files there are left out); default: the shipped suites"


def add_selection_flags(p) -> None:
    g = p.add_argument_group("selection (applied before anything is sent)")
    g.add_argument("--select", action="append", default=[], metavar="GLOB", help="run only cases whose id matches (repeatable)")
    g.add_argument("--exclude", action="append", default=[], metavar="GLOB", help="never run cases whose id matches (repeatable)")
    g.add_argument("--last-failed", metavar="REPORT_DIR",
                   help="only the cases that failed, timed out or errored in the report.json of an earlier run's --report-dir")
    g.add_argument("--start-after", metavar="ID",
                   help="skip every case up to and including this id (resume a run that was interrupted)")
    g.add_argument("-k", dest="keyword", metavar="EXPR",
                   help="boolean expression over tags, levels (MUST/SHOULD/MAY), suite names, sections (s3.1), rule<N>, id globs, "
                        "in any case; e.g. 'ata and not lba48'")


def register(subparsers) -> None:
    p = subparsers.add_parser("run", help="run conformance suites against a target",
                              description="Run conformance suites (default: every shipped suite) against a target; "
                                          "without --target, against the bundled reference target.",
                              epilog=OUTPUT_HELP + "\n\n" + EXIT_STATUS_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("suites", nargs="*", metavar="SUITE", help=SUITES_HELP)
    p.add_argument("--target", action="append", metavar="IF[:S.N]",
                   help="interface, and shelf.slot when several targets answer there; repeat it to run over several "
                        "targets (one report for the fleet); `bundled[:QUIRK,...]` is a reference target of its own")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="worker processes; each owns a target at a time (a lone bundled target: each worker starts its own)")
    p.add_argument("--report-dir", default="reports", metavar="DIR", help="where reports go (default: reports/)")
    add_selection_flags(p)
    g = p.add_argument_group("run")
    g.add_argument("--strict", action="store_true", help="any failure (SHOULD and MAY too) or unexpected pass makes the exit status 1")
    g.add_argument("--expectations", metavar="FILE", help="YAML: case id (or glob) -> reason it is expected to fail")
    g.add_argument("--allow-write", action=argparse.BooleanOptionalAction, default=None,
                   help="let cases write to the target (default: on for the bundled target, off for --target)")
    g.add_argument("--lba-window", metavar="START:COUNT", help="writes stay inside these sectors (default: the whole disk)")
    g.add_argument("--seed", type=int, metavar="N", help="seed for data patterns and shuffles (default: random, printed)")
    g.add_argument("--repeat", type=int, default=1, metavar="N", help="run each case N times")
    g.add_argument("--restart-cmd", action="append", metavar="CMD",
                   help="command that restarts the target when it stops answering (several targets: once for all, or once per --target)")
    g.add_argument("--second-iface", metavar="IF", help="second interface for the second initiator MAC (default: a spoofed source MAC on the same interface)")
    g.add_argument("--linux", action="store_true",
                   help="run the cases with `linux` steps: the kernel's AoE driver boots in user-mode Linux on a link "
                   "bridged to the target (root, `apt-get install user-mode-linux`; a few seconds per case)")
    g.add_argument("--readonly-target", action="store_true", help="the target exports read-only (runs the read-only cases)")
    g.add_argument("--timeout-floor", type=float, default=None, metavar="S", help="smallest reply timeout; the timeout is max(floor, 8 x median RTT) (default 0.25 s: a reply "
                        "that comes ends the wait at once, so the floor costs time only when a required reply never comes)")
    g.add_argument("--step-timeout", type=float, default=30.0, metavar="S", help="watchdog per step (default 30 s)")
    g.add_argument("--case-timeout", type=float, default=120.0, metavar="S", help="watchdog per case (default 120 s)")
    g.add_argument("--maxfail", type=integer(1), metavar="N",
                   help="stop after N failing cases (failed, timeout, error; over all targets and workers of a fleet); "
                        "the reports say the run was cut short and what did not run, and the exit status is 1")
    g.add_argument("--verbose", "-v", action="store_true",
                   help="on a terminal, print every case, not only failures (without a terminal every case is printed anyway)")
    b = p.add_argument_group("bundled target (without --target)")
    b.add_argument("--bundled", default="auto", choices=["auto", "lab", "memory", "loopback"],
                   help="auto: a lab namespace when root, else in memory (default auto)")
    b.add_argument("--quirk", action="append", default=[], metavar="NAME", help="give the bundled target a quirk (see docs/quirks.md)")
    b.add_argument("--mtu", type=int, default=1500, help="link MTU for the bundled target (default 1500)")
    p.set_defaults(func=run)


def parse_window(text):
    if text is None:
        return None
    start, sep, count = text.partition(":")
    try:
        window = (int(start, 0), int(count, 0))
    except ValueError:
        window = None
    if not sep or window is None or window[0] < 0 or window[1] <= 0:
        raise UsageError(f"--lba-window {text!r}: expected START:COUNT in sectors, e.g. 2048:4096")
    return window


def prepare(args):
    """Load suites and apply selection; everything here happens before sending."""
    from aoeconform.scenario.loader import all_cases, load_suites, shipped_suite_paths
    from aoeconform.scenario.selection import check_keyword, load_expectations, select

    paths = args.suites or shipped_suite_paths()
    suites = load_suites(paths)
    cases = all_cases(suites)
    if args.keyword:
        check_keyword(args.keyword)
    chosen = select(cases, args.select, args.exclude, args.keyword)
    last_failed = getattr(args, "last_failed", None)
    if last_failed:
        from aoeconform.scenario.selection import last_failed_ids

        again = set(last_failed_ids(last_failed))
        chosen = [c for c in chosen if c.id in again]
        if not chosen:
            raise UsageError(f"--last-failed {last_failed}: none of the {len(again)} cases that failed there "
                             f"is among the selected cases of these suites")
    start_after = getattr(args, "start_after", None)
    if start_after:
        ids = [c.id for c in chosen]
        if start_after not in ids:
            raise UsageError(f"--start-after {start_after}: no such case among the selected ones (see `aoeconform list`)")
        chosen = chosen[ids.index(start_after) + 1:]
    if not chosen:
        raise UsageError(f"no case selected out of {len(cases)}; check --select/--exclude/-k")
    from aoeconform.scenario.engine import OBSERVED_IDS

    known = [c.id for c in cases] + list(OBSERVED_IDS)
    expectations = load_expectations(args.expectations, known) if getattr(args, "expectations", None) else {}
    return suites, cases, chosen, expectations


def open_endpoint(args):
    from aoeconform.scenario import endpoint as ep

    if args.target:
        if args.quirk:
            raise UsageError("--quirk applies to the bundled target only; leave out --target")
        return ep.external(args.target, args.second_iface, args.restart_cmd, readonly=args.readonly_target)
    if args.second_iface:
        raise UsageError("--second-iface needs --target (the bundled target gets a spoofed second MAC)")
    from aoeconform.target.quirks import check_quirks

    return ep.bundled(check_quirks(args.quirk), readonly=args.readonly_target, mtu=args.mtu, mode=args.bundled)


@contextlib.contextmanager
def _sigterm_interrupts():
    """SIGTERM (a CI job cancelled, `timeout`, `docker stop`) ends the run the
    way Ctrl-C does: reports written for what ran, the target released."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return

    def on_sigterm(signum, frame):
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _observe(args) -> str:
    """All observations for a whole run of the shipped suites; for a chosen
    subset only those that found something, so its list of cases stays put."""
    filtered = args.suites or any(getattr(args, name, None) for name in
                                  ("select", "exclude", "keyword", "start_after", "last_failed"))
    return "failures" if filtered else "all"


def run(args) -> int:
    from aoeconform.report.model import RunInfo
    from aoeconform.report.terminal import Fanout, Progress
    from aoeconform.report.writer import ReportWriter, build_manifest
    from aoeconform.scenario.engine import Engine, RunOptions

    if args.repeat < 1:
        raise UsageError("--repeat must be at least 1")
    if _fleet_run(args):
        from .fleet import run_fleet

        return run_fleet(args)
    window = parse_window(args.lba_window)
    suites, cases, chosen, expectations = prepare(args)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 31)
    run_info = RunInfo(strict=args.strict)
    run_info.manifest = build_manifest(suites=suites, endpoint=None, facts=None, options=None, start=run_info.start)
    run_info.manifest["target_description"] = args.target or "bundled reference target"
    # The writer exists before the first frame is sent, so that whatever ends
    # the run (no target, Ctrl-C, SIGTERM) still leaves report.json and junit.xml.
    writer = ReportWriter(args.report_dir, run_info, {c.id: c for c in cases}, context={"seed": seed, "lba_window": window})
    endpoint = engine = progress = None
    try:
        with _sigterm_interrupts():
            endpoint = open_endpoint(args)
            allow_write = args.allow_write if args.allow_write is not None else endpoint.bundled
            floor = args.timeout_floor if args.timeout_floor is not None else RunOptions.timeout_floor
            options = RunOptions(seed=seed, allow_write=allow_write, lba_window=window, timeout_floor=floor,
                                 step_timeout=args.step_timeout, case_timeout=args.case_timeout, repeat=args.repeat,
                                 expected_failures=expectations, observe=_observe(args), linux=args.linux)
            engine = Engine(endpoint, options)
            facts = engine.probe()
            if window is not None and facts.capacity and window[0] + window[1] > facts.capacity:
                raise UsageError(f"--lba-window {args.lba_window} runs past the target's {facts.capacity} sectors")
            run_info.manifest = build_manifest(suites=suites, endpoint=endpoint, facts=facts, options=options, start=run_info.start)
            writer.context["target"] = facts.as_dict()
            progress = Progress(len(chosen) * args.repeat, verbose=args.verbose)
            print(f"aoeconform: {len(chosen)} of {len(cases)} cases against {endpoint.description}; seed {seed}; "
                  f"second MAC {endpoint.second_mac.hex(':')} ({endpoint.second_mode}); writes {'allowed' if allow_write else 'off'}",
                  flush=True)
            engine.run(chosen, Fanout(writer, progress, _MaxFail(args.maxfail) if args.maxfail else None))
    except _MaxFailReached as stop:
        run_info.stop("maxfail", f"--maxfail {args.maxfail} reached: stopped after {len(run_info.results)} of "
                                 f"{len(chosen) * args.repeat} cases, at {stop.args[0]}; "
                                 f"the rest did not run")
    except TargetUnreachable as exc:
        run_info.stop("target_unreachable", str(exc))
        raise
    except KeyboardInterrupt as exc:
        how = "terminated by SIGTERM" if isinstance(exc, Terminated) else "interrupted (Ctrl-C)"
        message = f"run {how} after {len(run_info.results)} of {len(chosen) * args.repeat} cases"
        if run_info.results:
            message += f"; to go on from here, add --start-after {run_info.results[-1].id}"
        run_info.stop("terminated" if isinstance(exc, Terminated) else "interrupted", message)
        raise
    finally:
        if progress is not None:
            progress.finish()
        if engine is not None:
            run_info.exchanges = engine.wire.exchanges
            run_info.elapsed = engine.elapsed or (max(1e-9, time.monotonic() - engine.started) if engine.started else 0.0)
        try:
            writer.close()
            if progress is not None:
                _print_summary(run_info, args.report_dir)
            else:
                print(f"aoeconform: nothing ran; reports in {args.report_dir}/", flush=True)
            if run_info.stopped and run_info.stopped["reason"] != "target_unreachable":  # that one main() prints
                print(f"aoeconform: {run_info.stopped['message']}", file=sys.stderr)
        finally:
            if endpoint is not None:
                endpoint.close()
    cut_short = bool(run_info.stopped)  # only --maxfail gets here; it stops at failures
    return EXIT_FAILURES if run_info.gating_failures() or cut_short else EXIT_OK


class _MaxFailReached(Exception):
    """Raised by the listener after the Nth failing case; ends engine.run."""


class _MaxFail:
    """A run listener that stops the run after ``limit`` failing cases."""

    def __init__(self, limit: int):
        self.limit = limit
        self.failing = 0

    def case_started(self, case, repeat: int) -> None:
        pass

    def case_finished(self, result) -> None:
        if result.failing:
            self.failing += 1
            if self.failing >= self.limit:
                raise _MaxFailReached(result.name)


def _fleet_run(args) -> bool:
    """Several targets or workers: the fleet runner. One target: ``args`` as before
    (a single --target and --restart-cmd as strings, ``bundled[:QUIRKS]`` as the bundled target)."""
    targets, restarts = args.target or [], args.restart_cmd or []
    if args.workers < 1:
        raise UsageError("--workers must be at least 1")
    if len(targets) > 1 or args.workers > 1:
        return True
    if len(restarts) > 1:
        raise UsageError(f"--restart-cmd is given {len(restarts)} times for one target")
    args.restart_cmd = restarts[0] if restarts else None
    args.target = targets[0] if targets else None
    if args.target == "bundled" or (args.target or "").startswith("bundled:"):
        args.quirk = list(args.quirk) + [q for q in args.target.partition(":")[2].split(",") if q]
        args.target = None
    return False


def _print_summary(run_info, report_dir: str) -> None:
    s = run_info.summary()
    parts = ", ".join(f"{v} {k}" for k, v in s.items() if v)
    print(f"aoeconform: {parts or 'nothing ran'}{' (interrupted)' if run_info.interrupted else ''}")
    print(f"aoeconform: {run_info.exchanges} exchanges in {run_info.elapsed:.2f} s "
          f"({run_info.exchanges_per_second:.0f} exchanges/s); reports in {report_dir}/")
    gating = run_info.gating_failures()
    if gating:
        what = "failures" if run_info.strict else "MUST failures"
        print(f"aoeconform: {len(gating)} {what}: " + ", ".join(r.name for r in gating[:10]) + (" ..." if len(gating) > 10 else ""),
              file=sys.stderr)

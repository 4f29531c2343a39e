"""``aoeconform run`` over several targets or with several workers (not a subcommand).

Each target gets its usual reports in ``REPORT_DIR/targets/<label>/``; the
fleet's report.json and report.html (a column per target, a row per case)
are in REPORT_DIR. ``--maxfail N`` counts failing cases over the whole fleet,
as pytest-xdist does: after the Nth no case is begun on any target, and each
target's reports say how many of its cases did not run (the fleet's rows
say "not run"). Exit status: 3 if a target never answered, else 1 if a
target has gating failures or --maxfail stopped the run, else 0; 4 if a
worker hit an internal error.
"""

from __future__ import annotations

import os
import random
import sys
import time

from aoeconform.errors import EXIT_FAILURES, EXIT_INTERNAL, EXIT_OK, EXIT_UNREACHABLE, UsageError


def run_fleet(args) -> int:
    from aoeconform.report.fleet import fleet_document, target_dirs, write_fleet
    from aoeconform.report.model import RunInfo
    from aoeconform.report.writer import ReportWriter, build_manifest
    from aoeconform.scenario.engine import RunOptions
    from aoeconform.scenario.fleet import plan_units, run_units
    from aoeconform.scenario.targets import parse_targets

    from aoeconform.scenario.fleet import merge_observed

    from .run import _observe, parse_window, prepare

    if args.second_iface:
        raise UsageError("--second-iface takes one target; with several, each uses a spoofed second MAC")
    window = parse_window(args.lba_window)
    suites, cases, chosen, expectations = prepare(args)
    targets = parse_targets(args.target or ["bundled"], args.restart_cmd or [], args.quirk)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 31)
    by_id = {c.id: c for c in cases}
    runs: list[RunInfo] = []
    writers: list[ReportWriter] = []
    columns: list[dict] = []  # one per target: label, report dir, facts, workers, error
    for t, where in zip(targets, target_dirs(t.label for t in targets)):
        run_info = RunInfo(strict=args.strict)
        run_info.manifest = build_manifest(suites=suites, endpoint=None, facts=None, options=None, start=run_info.start)
        run_info.manifest["target_description"] = t.label
        runs.append(run_info)
        writers.append(ReportWriter(os.path.join(args.report_dir, where), run_info, by_id,
                                    context={"seed": seed, "lba_window": window}))
        columns.append({"label": t.label, "report_dir": where})
    suite_manifest = {k: v for k, v in runs[0].manifest.items() if k.startswith("suites") or k == "command_line"}

    def open_target(target):
        return target.open(mode=args.bundled, mtu=args.mtu, readonly=args.readonly_target)

    def make_options(endpoint):
        allow_write = args.allow_write if args.allow_write is not None else endpoint.bundled
        floor = args.timeout_floor if args.timeout_floor is not None else RunOptions.timeout_floor
        return RunOptions(seed=seed, allow_write=allow_write, lba_window=window, timeout_floor=floor,
                          step_timeout=args.step_timeout, case_timeout=args.case_timeout, repeat=args.repeat,
                          expected_failures=expectations, observe=observe)

    order = {}
    observe = _observe(args)
    ran = [0] * len(targets)  # results per target, the engine's observations not counted
    failing: list[str] = []  # "[label] case" of each failing result, as they came

    def on_probed(index, state):
        if runs[index].manifest.get("target"):
            return  # a second worker's instance of the same bundled target
        runs[index].manifest = {**state.manifest, **suite_manifest, "target_description": f"{targets[index].label}: {state.description}"}
        writers[index].context["target"] = state.facts
        columns[index].update(facts=state.facts, description=state.description)
        print(f"aoeconform: [{targets[index].label}] {state.description}", flush=True)

    def on_result(index, case_index, result):
        order[(index, result.name)] = (case_index, result.repeat)
        writers[index].case_finished(result)
        ran[index] += 1
        if result.failing:
            failing.append(f"[{targets[index].label}] {result.name}")
        if result.failing or result.outcome == "xpassed" or args.verbose:
            print(f"{result.outcome.upper():8} [{targets[index].label}] {result.name}: {result.message}", flush=True)

    units = plan_units(targets, len(chosen), args.workers)
    planned = [0] * len(targets)
    for unit in units:
        planned[unit.target] += len(unit.cases) * args.repeat

    def maxfail_reached() -> bool:
        return bool(args.maxfail) and len(failing) >= args.maxfail

    print(f"aoeconform: {len(chosen)} of {len(cases)} cases against {len(targets)} target(s) with "
          f"{min(args.workers, len(units))} worker(s); seed {seed}", flush=True)
    began = time.monotonic()
    states = []
    try:
        states = run_units(targets, chosen, units, args.workers, open_target=open_target, make_options=make_options,
                           on_result=on_result, on_probed=on_probed, max_failures=args.maxfail)
    finally:
        wall = time.monotonic() - began
        for index, (run_info, writer) in enumerate(zip(runs, writers)):
            run_info.results.sort(key=lambda r: order.get((index, r.name), (0, 0)))
            if states:
                state = states[index]
                for result in merge_observed(state.observed, observe):  # after the cases, as a serial run has them
                    writer.case_finished(result)
                run_info.exchanges, run_info.elapsed = state.exchanges, state.elapsed
                columns[index]["workers"] = sorted(state.workers)
                if state.error:
                    columns[index]["error"] = state.error.splitlines()[0]
                    if state.error_kind == "TargetUnreachable":
                        run_info.stop("target_unreachable", state.error)
            if maxfail_reached() and ran[index] < planned[index] and not run_info.stopped:
                run_info.stop("maxfail", _maxfail_message(args.maxfail, failing, ran[index], planned[index]))
            writer.close()
        doc = fleet_document(columns, runs, chosen, workers=args.workers, elapsed=wall)
        write_fleet(args.report_dir, doc)
    status = EXIT_FAILURES if maxfail_reached() else EXIT_OK  # cut short, as a single run is
    for index, (t, run_info, state) in enumerate(zip(targets, runs, states)):
        s = run_info.summary()
        parts = ", ".join(f"{v} {k}" for k, v in s.items() if v) or "nothing ran"
        if ran[index] < planned[index]:
            parts += f", {planned[index] - ran[index]} not run"
        print(f"aoeconform: [{t.label}] {parts}; {run_info.exchanges} exchanges in {run_info.elapsed:.2f} s")
        if state.error:
            print(f"aoeconform: [{t.label}] error: {state.error.splitlines()[0]}", file=sys.stderr)
            status = max(status, EXIT_INTERNAL if state.error_kind == "internal" else
                         EXIT_UNREACHABLE if state.error_kind == "TargetUnreachable" else EXIT_FAILURES)
        elif run_info.gating_failures():
            status = max(status, EXIT_FAILURES)
    if maxfail_reached():
        print(f"aoeconform: --maxfail {args.maxfail} reached at {failing[args.maxfail - 1]}: "
              f"{sum(planned) - sum(ran)} of {sum(planned)} cases over the fleet did not run", file=sys.stderr)
    differ = sum(1 for row in doc["cases"] if row["differs"])
    print(f"aoeconform: fleet of {len(targets)} in {wall:.2f} s wall with {args.workers} worker(s); "
          f"{differ} case(s) differ between targets; reports in {args.report_dir}/ (per target in {args.report_dir}/targets/)")
    return status


def _maxfail_message(limit: int, failing: list, ran: int, planned: int) -> str:
    return (f"--maxfail {limit} reached over the fleet ({len(failing)} failing cases, the {_ordinal(limit)} "
            f"{failing[limit - 1]}): stopped after {ran} of {planned} cases against this target; the rest did not run")


def _ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"

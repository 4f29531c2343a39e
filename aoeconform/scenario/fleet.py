"""Running the cases against several targets at once, in worker processes.

The work is cut into units; a unit is one target and the cases to run
against it. A worker process takes a unit, opens the target (keeping it open
for a later unit of the same target), runs the unit's cases one after the
other and sends each result back, so a target is driven by one worker at a
time and never by two interleaving. A target on an interface is a single
unit. A lone bundled target with several workers is cut into one unit per
worker: each worker starts its own reference target (its own lab namespace
when root) and runs a share of the cases.

The controller (``run_units``) only hands out units and passes results to a
callback; what becomes of them (reports) is the caller's business. After
``max_failures`` failing cases over all workers (``--maxfail``), no worker
begins another case: the ones in flight finish, units not yet begun are
skipped without opening their target, and the caller reports what did not run.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import signal
import time
import traceback
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

from aoeconform.errors import HarnessError

from .targets import FleetTarget


@dataclass
class Unit:
    target: int  # index into the targets
    cases: list  # indices into the chosen cases
    shard: int = 0


@dataclass
class TargetState:
    """What the controller heard about one target."""

    facts: Optional[dict] = None
    manifest: Optional[dict] = None
    description: str = ""
    error: Optional[str] = None
    error_kind: str = ""
    exchanges: int = 0
    elapsed: float = 0.0
    workers: set = field(default_factory=set)
    #: the engine's observed/... results, one list per unit
    observed: list = field(default_factory=list)


#: which of several units' verdicts on one observation stands: the worst
_SEVERITY = {"failed": 5, "error": 4, "timeout": 4, "xpassed": 3, "xfailed": 2, "passed": 1, "skipped": 0}


def merge_observed(per_unit: list, mode: str) -> list:
    """One result per observed id over the units (the worst stands); with mode
    "failures" only those that found something."""
    best: dict = {}
    for results in per_unit:
        for r in results:
            if r.id not in best or _SEVERITY.get(r.outcome, 0) > _SEVERITY.get(best[r.id].outcome, 0):
                best[r.id] = r
    return [r for r in best.values() if mode == "all" or r.outcome != "passed"]


def plan_units(targets: Sequence[FleetTarget], case_count: int, workers: int) -> list[Unit]:
    """One unit per target; a lone bundled target is split across the workers."""
    if len(targets) == 1 and targets[0].bundled and workers > 1:
        shards = min(workers, case_count)
        # contiguous shares keep each suite's cases together (and their order)
        bounds = [round(i * case_count / shards) for i in range(shards + 1)]
        return [Unit(0, list(range(bounds[i], bounds[i + 1])), i) for i in range(shards) if bounds[i] < bounds[i + 1]]
    return [Unit(i, list(range(case_count))) for i in range(len(targets))]


def _worker(number: int, tasks, results, targets, cases, open_target: Callable, make_options: Callable,
            failures, max_failures: Optional[int]) -> None:
    """A worker process: units from ``tasks``, messages to ``results``. The
    workers count failing cases in ``failures`` (shared), so each stops at
    once when the count reaches ``max_failures``, without waiting for the
    controller to read the results."""
    from aoeconform.report.writer import build_manifest

    from .engine import Engine

    def stopped() -> bool:
        return max_failures is not None and failures.value >= max_failures

    def on_sigterm(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_sigterm)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the controller decides; Ctrl-C reaches the whole group
    open_ones: dict = {}
    try:
        while True:
            unit = tasks.get()
            if unit is None:
                return
            index = unit.target
            if stopped():
                results.put(("skipped", index, number))
                continue
            try:
                if index not in open_ones:
                    endpoint = open_target(targets[index])
                    open_ones[index] = endpoint
                    options = make_options(endpoint)
                    engine = Engine(endpoint, options)
                    facts = engine.probe()
                    manifest = build_manifest(suites=[], endpoint=endpoint, facts=facts, options=options)
                    open_ones[index] = (endpoint, engine)
                    results.put(("probed", index, number, facts.as_dict(), manifest, endpoint.description))
                endpoint, engine = open_ones[index]
                engine.started = engine.clock()
                before = engine.wire.exchanges
                for i in unit.cases:
                    for repeat in range(max(1, engine.options.repeat)):
                        if stopped():
                            break
                        result = engine.run_case(cases[i], repeat)
                        if result.failing:
                            with failures.get_lock():
                                failures.value += 1
                        results.put(("result", index, number, i, result))
                if engine.options.observe:  # what the engine noticed on its own (observed/...), per unit
                    results.put(("observed", index, number, engine.observed_results()))
                results.put(("unit_done", index, number, engine.wire.exchanges - before, engine.clock() - engine.started))
            except HarnessError as exc:
                results.put(("error", index, number, type(exc).__name__, str(exc), len(unit.cases)))
            except KeyboardInterrupt:
                return
            except Exception as exc:  # a bug: one line for the controller, the traceback with it
                results.put(("error", index, number, "internal", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}",
                             len(unit.cases)))
    finally:
        for item in open_ones.values():
            endpoint = item[0] if isinstance(item, tuple) else item
            endpoint.close()


def run_units(targets: Sequence[FleetTarget], cases: list, units: list[Unit], workers: int, *,
              open_target: Callable, make_options: Callable, on_result: Callable,
              on_probed: Optional[Callable] = None, max_failures: Optional[int] = None) -> list[TargetState]:
    """Run ``units`` on ``workers`` processes; ``on_result(target_index, case_index, result)``
    for each case as it finishes; no case begins after ``max_failures`` failing
    ones. Returns what was learnt per target, with the observed results of each
    unit (``merge_observed`` makes one set of them)."""
    ctx = multiprocessing.get_context("fork")  # workers inherit the loaded cases and the callables
    tasks, results, failures = ctx.Queue(), ctx.Queue(), ctx.Value("i", 0)
    for unit in units:
        tasks.put(unit)
    count = max(1, min(workers, len(units)))
    for _ in range(count):
        tasks.put(None)
    states = [TargetState() for _ in targets]
    procs = [ctx.Process(target=_worker, args=(n, tasks, results, targets, cases, open_target, make_options, failures, max_failures),
                         name=f"aoeconform-worker-{n}", daemon=False) for n in range(count)]
    for p in procs:
        p.start()
    pending = len(units)
    try:
        while pending:
            try:
                message = results.get(timeout=0.5)
            except queue.Empty:
                if not any(p.is_alive() for p in procs):
                    raise HarnessError("every worker process ended before the run was done") from None
                continue
            kind, index, number = message[:3]
            state = states[index]
            if kind == "skipped":  # a unit begun after the stop: nothing ran
                pending -= 1
                continue
            state.workers.add(number)
            if kind == "probed":
                state.facts, state.manifest, state.description = message[3], message[4], message[5]
                if on_probed is not None:
                    on_probed(index, state)
            elif kind == "result":
                on_result(index, message[3], message[4])
            elif kind == "observed":
                state.observed.append(message[3])
            elif kind == "unit_done":
                state.exchanges += message[3]
                state.elapsed = max(state.elapsed, message[4])
                pending -= 1
            elif kind == "error":
                state.error_kind, state.error = message[3], message[4]
                pending -= 1
    finally:
        deadline = time.monotonic() + 10
        for p in procs:
            p.join(max(0.0, deadline - time.monotonic()) if not pending else 0)
            if p.is_alive():
                p.terminate()  # SIGTERM: the worker closes its targets (labs down) on the way out
        for p in procs:
            p.join(10)
            if p.is_alive() and p.pid is not None:
                os.kill(p.pid, signal.SIGKILL)
                p.join()
    return states

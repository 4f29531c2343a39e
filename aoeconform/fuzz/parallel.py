"""A fuzz campaign split across worker processes.

The fuzzer's cases are a function of the seed and the case index, so a
campaign is split by index, from the start index S: with ``--cases N``
worker k runs its share of the indices S..S+N-1 (together exactly the cases
of a serial run with the same seed); with ``--seconds`` worker k starts at
S + k * STRIDE, far enough apart that no two workers ever send the same
case. ``next_index`` is where such a campaign goes on (``--start-index``,
same seed, same workers) without leaving a case out: the first index not
run with ``--cases``, S plus the slowest worker's progress with
``--seconds`` (the faster workers then redo what they ran beyond it). Each
worker owns one
target (its own reference target, or one of the targets named). Findings
come back to the controller, which merges them the way one fuzzer
deduplicates its own: one finding per (kind, command class), the one seen
at the lowest case index standing for the rest, the counts added up.
"""

from __future__ import annotations

import multiprocessing
import signal
from typing import Callable, List, Optional, Sequence

from .engine import FuzzResult
from .findings import Finding

#: index distance between workers in a timed campaign (tags stay clear of the health-check range)
STRIDE = 1 << 22


def partition(cases: Optional[int], workers: int, start: int = 0) -> List[tuple]:
    """(start index, case count or None) per worker."""
    if cases is None:
        return [(start + k * STRIDE, None) for k in range(workers)]
    bounds = [start + round(k * cases / workers) for k in range(workers + 1)]
    return [(bounds[k], bounds[k + 1] - bounds[k]) for k in range(workers) if bounds[k + 1] > bounds[k]]


def next_index(results: Sequence[FuzzResult], start: int, cases: Optional[int]) -> int:
    """The --start-index that goes on with the campaign these results ran from ``start``."""
    if cases is None:
        return start + min((r.next_index - r.start_index for r in results), default=0)
    unfinished = [r.next_index for r in results if r.end_index is not None and r.next_index < r.end_index]
    return min(unfinished, default=start + cases)


def merge_findings(results: Sequence[FuzzResult]) -> List[Finding]:
    """One finding per signature over all workers, in case-index order."""
    best: dict = {}
    for result in results:
        for f in result.findings:
            known = best.get(f.signature)
            if known is None:
                best[f.signature] = f
                continue
            total = known.count + f.count
            if (f.case_index if f.case_index is not None else 1 << 62) < (known.case_index if known.case_index is not None else 1 << 62):
                best[f.signature] = known = f
            known.count = total
    return sorted(best.values(), key=lambda f: (f.case_index is None, f.case_index or 0, f.kind))


def _worker(number, share, open_target, make_fuzzer, seconds, out):
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the controller stops the campaign
    start, count = share
    transport, info, restart, close = open_target(number)
    try:
        fuzzer = make_fuzzer(transport, info, restart)
        if fuzzer.feed is None:
            fuzzer.feed = False  # the campaign's workers already share out the cores: no helper each
        result = fuzzer.run(cases=count, seconds=seconds, start_index=start)
        out.put((number, result, None))
    except Exception as exc:  # reported by the controller as this worker's error
        out.put((number, None, f"{type(exc).__name__}: {exc}"))
    finally:
        close()


def run_parallel(workers: int, *, open_target: Callable, make_fuzzer: Callable, cases: Optional[int],
                 seconds: Optional[float], start: int = 0) -> tuple[List[FuzzResult], List[str]]:
    """Run the shares on ``workers`` processes; ``open_target(k)`` gives worker k's
    (transport, info, restart, close), ``make_fuzzer(transport, info, restart)`` its Fuzzer.
    Returns the workers' results (in worker order) and their errors."""
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    shares = partition(cases if cases is not None or seconds is not None else 1000, workers, start)
    procs = [ctx.Process(target=_worker, args=(k, share, open_target, make_fuzzer, seconds, out), name=f"aoeconform-fuzz-{k}")
             for k, share in enumerate(shares)]
    for p in procs:
        p.start()
    got: dict = {}
    errors: List[str] = []
    try:
        while len(got) + len(errors) < len(procs):
            try:
                number, result, error = out.get(timeout=1.0)
            except Exception:
                if not any(p.is_alive() for p in procs):
                    errors.append("a fuzz worker ended without a result")
                    break
                continue
            if error is not None:
                errors.append(f"worker {number}: {error}")
            else:
                got[number] = result
    finally:
        for p in procs:
            p.join(5)
            if p.is_alive():
                p.terminate()
                p.join(5)
    return [got[k] for k in sorted(got)], errors

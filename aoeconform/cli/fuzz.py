"""`aoeconform fuzz`: structure-aware fuzzing of an AoE target, with shrinking.

Exit status: 0 no findings, 1 findings (saved under --out), 2 usage error
(bad flags, missing interface), 3 target unreachable.
"""

from __future__ import annotations

import os
import random
import shlex
import sys
from typing import Callable, Optional

from aoeconform.cli.argtypes import integer, seconds
from aoeconform.errors import EXIT_FAILURES, EXIT_INTERNAL, EXIT_OK, UsageError
from aoeconform.session.restart import restart_command

COMMANDS = ("ata", "config", "mask", "reserve", "all")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "fuzz",
        help="fuzz a target with mutated requests; shrink and save what breaks it",
        description="Send mutated AoE requests (boundary values, flag and MBZ bits, lengths that lie, "
        "truncation, trailing garbage, version nibble, tags, wildcards) with several outstanding, "
        "check every reply against the protocol's invariants, and run a health check every N cases. "
        "Findings are saved under --out as JSON (hex frames) and pcap, shrunk to a minimal reproducer. "
        "Writes are off unless --allow-write. Needs root or CAP_NET_RAW for an interface.",
    )
    p.add_argument("--target", action="append", metavar="IF[:S.N]",
                   help="interface, and the target's shelf.slot if several answer; repeat it to fuzz several targets at once, one worker each")
    p.add_argument("--workers", type=integer(1), default=1, metavar="N",
                   help="worker processes, each owning one target (with --in-memory: a reference target each); "
                        "the cases are split between them and the findings merged")
    p.add_argument("--in-memory", action="store_true", help="fuzz the bundled reference target in this process instead (no root needed)")
    p.add_argument("--quirk", action="append", default=[], metavar="NAME", help="with --in-memory: give the reference target a defect (see `aoeconform target --list-quirks`)")
    limit = p.add_mutually_exclusive_group()
    limit.add_argument("--seconds", type=seconds, metavar="S", help="fuzz for S seconds")
    limit.add_argument("--cases", type=integer(1), metavar="N", help="send N cases (default 1000 when neither is given)")
    p.add_argument("--seed", type=integer(0), metavar="N", help="seed of the case sequence (default: random, printed)")
    p.add_argument("--start-index", type=integer(0), default=0, metavar="N",
                   help="first case index: resume a campaign where it stopped (fuzz.json's next_index) with the same --seed")
    p.add_argument("--corpus", metavar="DIR", help="seed frames (*.hex, *.bin); default corpora/ next to the package, plus generated seeds")
    p.add_argument("--out", metavar="DIR", default="fuzz-findings",
                   help="where findings are saved (default ./fuzz-findings), with fuzz.json (this run) and index.json "
                        "(every finding saved there: one seen before is counted, not saved again)")
    p.add_argument("--restart-cmd", action="append", metavar="CMD",
                   help="shell command that restarts the target after it stops answering (several targets: once for all, or once per --target)")
    p.add_argument("--command", choices=COMMANDS, default="all", help="which AoE command to fuzz (default all)")
    p.add_argument("--allow-write", action="store_true", help="let WRITE SECTORS (EXT) through, inside --lba-window only")
    p.add_argument("--lba-window", metavar="START:COUNT", help="sectors writes may touch (default: 64 in the middle of the disk)")
    p.add_argument("--health-every", type=integer(1), default=100, metavar="N", help="health check every N cases (default 100)")
    p.add_argument("--window", type=integer(1), metavar="N", help="requests outstanding at once, a fence among them (default min(16, Buffer Count))")
    p.add_argument("--no-shrink", action="store_true", help="save findings without shrinking them")
    p.add_argument("--expectations", metavar="FILE",
                   help="the target's expectations file (as for `run`, e.g. suites/expectations/vblade-25.yaml): findings whose "
                        "signature an entry `fuzz/<signature glob>: reason` names are its known deviations, counted and "
                        "reported but not failures")
    p.add_argument("--replay", metavar="FILE", help="send a saved finding's (shrunk) frames again; exit 1 if it still fires")
    p.add_argument("--engine", choices=("random", "stateful"), default="random",
                   help="random (default): mutated requests, each reply judged alone; stateful: hypothesis sequences of "
                        "writes, reads, duplicates, reorderings, flushes, config, Mac Mask and reservation edits from two "
                        "MACs, judged by a model of the target and shrunk to the fewest steps (--cases counts examples)")
    p.add_argument("--steps", type=integer(1), default=12, metavar="N", help="with --engine stateful: steps per example at most (default 12)")
    p.add_argument("--second-iface", metavar="IF",
                   help="with --engine stateful: send the second MAC's requests from this interface (default: a spoofed source on --target's)")
    p.add_argument("--quiet", action="store_true", help="print only the summary")
    p.set_defaults(func=run)


def _seeds(args):
    from aoeconform.fuzz.seeds import COMMAND_CHOICES, default_corpus_dir, generated_seeds, load_corpus, select_seeds

    seeds = generated_seeds()
    corpus = args.corpus
    if corpus is None and os.path.isdir(default_corpus_dir()):
        corpus = default_corpus_dir()
    if corpus is not None:
        seeds += load_corpus(corpus)
    if args.command == "all":
        return seeds
    return select_seeds(seeds, [COMMAND_CHOICES[args.command]])


def _open_interface(text: str):
    from aoeconform.fuzz.context import second_mac
    from aoeconform.initiator.addressing import open_target
    from aoeconform.transport.raw import RawTransport

    # promiscuous: the replies to the second initiator's MAC (Mac Mask and reservation cases) must reach us
    transport, record = open_target(text, timeout=2.0, identify=True, lenient=True,
                                    transport_factory=lambda iface: RawTransport(iface, promiscuous=True))
    if record.address_fault:
        print(f"aoeconform fuzz: {record.address_fault}; fuzzing {record.address} at {record.mac.hex(':')} all the same "
              f"(its replies' addresses are findings, rule 11)", file=sys.stderr, flush=True)
    record.second_mac = second_mac(transport.mac)
    return transport, record


def _write_policy(args, info):
    """Writes as asked; without a window and a capacity (IDENTIFY unanswered)
    the fuzz goes on without writes, which is what can be done safely."""
    from aoeconform.fuzz import WritePolicy

    if args.allow_write and not args.lba_window and info.capacity is None:
        print("aoeconform fuzz: the target's capacity is unknown (IDENTIFY unanswered): fuzzing without writes; "
              "give --lba-window START:COUNT to allow them", file=sys.stderr, flush=True)
        return WritePolicy()
    return WritePolicy.for_target(args.allow_write, args.lba_window, info.capacity)


def run(args) -> int:
    from aoeconform.fuzz import Fuzzer

    if args.lba_window and not args.allow_write:
        raise UsageError("--lba-window only matters with --allow-write")
    args.known = _expectations(args)  # read first: a bad file is a usage error before any fuzzing
    targets, restarts = args.target or [], args.restart_cmd or []
    if args.engine == "stateful" and not args.replay:
        return _run_stateful(args, targets, restarts)
    if args.second_iface and not args.replay:
        raise UsageError("--second-iface is for --engine stateful (the random engine speaks from one MAC)")
    if args.workers > 1 or len(targets) > 1:
        return _run_parallel(args, targets, restarts)
    if len(restarts) > 1:
        raise UsageError(f"--restart-cmd is given {len(restarts)} times for one target")
    args.target, args.restart_cmd = (targets[0] if targets else None), (restarts[0] if restarts else None)
    if args.quirk and not args.in_memory:
        raise UsageError("--quirk needs --in-memory (it gives the bundled reference target a defect)")
    if bool(args.target) == bool(args.in_memory):
        raise UsageError("name the target with --target IF[:SHELF.SLOT] (e.g. --target aoec0h:1.2), or use --in-memory")
    if args.replay:
        return replay_file(args.replay, target=args.target, quirks=(_quirk_names(args) or None) if args.in_memory else None,
                           restart_cmd=args.restart_cmd, second_iface=args.second_iface)
    seeds = _seeds(args)
    reference = None
    restart: Optional[Callable[[], None]]
    if args.in_memory:
        from aoeconform.target.host import ThreadHost
        from aoeconform.target.quirks import check_quirks

        reference = ThreadHost(check_quirks(_quirk_names(args)))
        transport, info, restart = reference.host, reference.info, reference.restart
    else:
        transport, info = _open_interface(args.target)
        restart = restart_command(args.restart_cmd) if args.restart_cmd else None
    try:
        seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 32)
        policy = _write_policy(args, info)
        if args.quiet:
            print(f"aoeconform fuzz: seed {seed} (rerun with --seed {seed})", flush=True)
        fuzzer = Fuzzer(
            transport, info, seed=seed, seeds=seeds, policy=policy, out_dir=args.out, restart=restart,
            health_every=args.health_every, window=args.window, shrink=not args.no_shrink,
            log=None if args.quiet else sys.stdout, target_extra=_target_extra(args), expectations=args.known,
        )
        result = fuzzer.run(cases=args.cases, seconds=args.seconds, start_index=args.start_index)
        print(result.summary())
        _report(args, result, result.findings)
        return _status(result.findings)
    finally:
        if reference is not None:
            reference.close()
        else:
            transport.close()


def is_finding_file(path: str) -> bool:
    """A fuzz finding (rather than a suite's replay file): `aoeconform replay` hands it here."""
    import json

    from aoeconform.fuzz.findings import FORMAT

    try:
        with open(path) as f:
            return json.load(f).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def replay_file(path: str, *, target: Optional[str], quirks: Optional[list], restart_cmd: Optional[str],
                second_iface: Optional[str] = None) -> int:
    """Send a saved finding's (shrunk) frames again: to ``target``, or with no
    target to the in-memory reference target with ``quirks`` (None: those
    the finding was found with; empty: none). Exit 1 if its oracle still fires."""
    from aoeconform.fuzz.engine import replay_finding
    from aoeconform.fuzz.findings import load

    finding = load(path)
    if finding.engine == "stateful":
        return _replay_stateful(path, finding, target=target, quirks=quirks, restart_cmd=restart_cmd, second_iface=second_iface)
    reference = None
    restart: Optional[Callable[[], None]]
    if target:
        transport, info = _open_interface(target)
        restart = restart_command(restart_cmd) if restart_cmd else None
    else:
        from aoeconform.target.host import ThreadHost
        from aoeconform.target.quirks import check_quirks

        reference = ThreadHost(check_quirks(finding.target.get("quirks", []) if quirks is None else quirks))
        transport, info, restart = reference.host, reference.info, reference.restart
    try:
        fired = replay_finding(transport, info, finding, restart=restart)
    finally:
        if reference is not None:
            reference.close()
        else:
            transport.close()
    which = "shrunk" if finding.shrunk else "original"
    print(f"{os.path.basename(path)}: {finding.signature} {'reproduced' if fired else 'did not reproduce'} "
          f"({which} frames, {len(finding.reproducer)} sent)")
    return EXIT_FAILURES if fired else EXIT_OK


def _stateful_module():
    try:
        from aoeconform.fuzz import stateful
    except ImportError as exc:
        if (exc.name or "").split(".")[0] == "hypothesis":
            raise UsageError("--engine stateful needs hypothesis: pip install 'aoeconform[fuzz]'") from None
        raise
    return stateful


def _stateful_setup(stateful, *, target: Optional[str], quirks: list, restart_cmd: Optional[str], second_iface: Optional[str]):
    """(setup, policy or None): in memory a fresh reference target per example, or the named one over the wire."""
    if not target:
        from aoeconform.target.quirks import check_quirks

        return stateful.memory_setup(sorted(check_quirks(quirks))), stateful.memory_policy()
    transport, info = _open_interface(target)
    second = None
    try:
        if second_iface:
            from aoeconform.transport.raw import RawTransport

            second = RawTransport(second_iface)
        return stateful.wire_setup(transport, info, second=second, restart=restart_command(restart_cmd) if restart_cmd else None), None
    except BaseException:
        transport.close()
        if second is not None:
            second.close()
        raise


def _run_stateful(args, targets: list, restarts: list) -> int:
    """--engine stateful: hypothesis sequences judged by the model, one target."""
    stateful = _stateful_module()
    if args.workers > 1 or len(targets) > 1:
        raise UsageError("--engine stateful fuzzes one target in one process; leave out --workers and name one --target")
    if len(restarts) > 1:
        raise UsageError(f"--restart-cmd is given {len(restarts)} times for one target")
    if args.start_index:
        raise UsageError("--start-index resumes the random engine's campaign; --engine stateful starts from --seed")
    if args.quirk and not args.in_memory:
        raise UsageError("--quirk needs --in-memory (it gives the bundled reference target a defect)")
    if bool(targets) == bool(args.in_memory):
        raise UsageError("name the target with --target IF[:SHELF.SLOT] (e.g. --target aoec0h:1.2), or use --in-memory")
    if args.second_iface and args.in_memory:
        raise UsageError("--second-iface needs --target (in memory the second MAC needs no interface)")
    args.target, args.restart_cmd = (targets[0] if targets else None), (restarts[0] if restarts else None)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 32)
    setup, policy = _stateful_setup(stateful, target=args.target, quirks=_quirk_names(args), restart_cmd=args.restart_cmd,
                                    second_iface=args.second_iface)
    try:
        if policy is None:
            policy = _write_policy(args, setup.info)
    except BaseException:
        setup.close()
        raise
    if args.quiet:
        print(f"aoeconform fuzz: seed {seed} (rerun with --seed {seed})", flush=True)
    fuzzer = stateful.StatefulFuzzer(setup, policy, seed=seed, steps=args.steps, out_dir=args.out,
                                     log=None if args.quiet else sys.stdout, target_extra=_target_extra(args),
                                     expectations=args.known)
    try:
        result = fuzzer.run(examples=args.cases, seconds=args.seconds)
    finally:
        fuzzer.close()
    print(result.summary())
    _report(args, result, result.findings, resumable=False)
    if fuzzer.stop is not None:
        raise fuzzer.stop  # reported above; the exit status says why the run stopped
    return _status(result.findings)


def _replay_stateful(path: str, finding, *, target: Optional[str], quirks: Optional[list], restart_cmd: Optional[str],
                     second_iface: Optional[str]) -> int:
    """A stateful finding: its steps from a known target (in memory: a fresh one with the finding's quirks)."""
    stateful = _stateful_module()
    setup, _ = _stateful_setup(stateful, target=target, quirks=finding.target.get("quirks", []) if quirks is None else quirks,
                               restart_cmd=restart_cmd, second_iface=second_iface)
    fired = stateful.replay_stateful(setup, finding)
    print(f"{os.path.basename(path)}: {finding.signature} {'reproduced' if fired else 'did not reproduce'} "
          f"({len(finding.steps or [])} steps, {len(finding.reproducer)} frames sent)")
    return EXIT_FAILURES if fired else EXIT_OK


def _target_extra(args) -> dict:
    """The in-memory target's quirks go into each finding, so its replay command names them."""
    return {"quirks": _quirk_names(args)} if args.in_memory else {}


def _quirk_names(args) -> list:
    return [q.strip() for item in args.quirk for q in item.split(",") if q.strip()]


def _expectations(args) -> dict:
    from aoeconform.scenario.selection import read_expectations

    return read_expectations(args.expectations) if args.expectations else {}


def _status(findings) -> int:
    """1 if a finding is not one of the target's known deviations."""
    return EXIT_FAILURES if any(not f.known for f in findings) else EXIT_OK


def _report(args, result, findings, resumable: bool = True) -> None:
    """The findings, each with its count and replay command; fuzz.json and the index in --out."""
    from aoeconform.fuzz.findings import mark_known, record_run
    from aoeconform.fuzz.report import write_reports

    mark_known(findings, args.known)

    path = record_run(args.out, result, findings, args.start_index) if args.out else None
    if args.out:
        where = "reference target in memory" + "".join(f" --quirk {q}" for q in _quirk_names(args)) if args.in_memory else str(args.target)
        write_reports(os.path.join(args.out, "report"), result, findings, target=where)
    known = sum(1 for f in findings if f.known)
    if args.expectations:
        print(f"{known} of {len(findings)} finding(s) are the target's known deviations ({args.expectations})")
    for f in findings:
        print(f"  {'known deviation: ' if f.known else ''}{f.summary()} x{f.count}" + (f" ({f.known})" if f.known else "")
              + (" (seen in an earlier run: counted, not saved again)" if f.seen_before else "")
              + (f" -> {f.paths[0]}" if f.paths else ""))
        print(f"    replay: {f.replay_command}" + (f" --restart-cmd {shlex.quote(args.restart_cmd)}" if isinstance(args.restart_cmd, str) else ""))
    if path:
        reports = os.path.join(args.out, "report")
        print(f"run summary: {path}; report.html, junit.xml and report.sarif in {reports}" + (f"; go on from here with --seed {result.seed} --start-index {result.next_index}" if resumable else ""))


def _run_parallel(args, targets: list, restarts: list) -> int:
    """--workers N or several --target: the cases split by index, findings merged."""
    import time

    from aoeconform.fuzz import Fuzzer, FuzzResult
    from aoeconform.fuzz import findings as findings_mod
    from aoeconform.fuzz.parallel import merge_findings, next_index, run_parallel

    if args.replay:
        raise UsageError("--replay sends one finding to one target; leave out --workers and name one --target")
    if args.quirk and not args.in_memory:
        raise UsageError("--quirk needs --in-memory (it gives the bundled reference target a defect)")
    if bool(targets) == bool(args.in_memory):
        raise UsageError("name the targets with --target IF[:SHELF.SLOT], or use --in-memory")
    if targets and len(restarts) not in (0, 1, len(targets)):
        raise UsageError(f"--restart-cmd is given {len(restarts)} times for {len(targets)} targets: once for all, or once per --target")
    workers = args.workers if args.in_memory else len(targets)
    if targets and args.workers not in (1, len(targets)):
        print(f"aoeconform fuzz: {len(targets)} targets, so {len(targets)} workers (a target is owned by one worker)", flush=True)
    seeds = _seeds(args)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 32)

    def open_target(k):
        if args.in_memory:
            from aoeconform.target.host import ThreadHost
            from aoeconform.target.quirks import check_quirks

            reference = ThreadHost(check_quirks(q.strip() for item in args.quirk for q in item.split(",") if q.strip()))
            return reference.host, reference.info, reference.restart, reference.close
        transport, info = _open_interface(targets[k])
        command = restarts[k] if len(restarts) > 1 else (restarts[0] if restarts else None)
        return transport, info, restart_command(command) if command else None, transport.close

    def make_fuzzer(transport, info, restart):
        policy = _write_policy(args, info)
        return Fuzzer(transport, info, seed=seed, seeds=seeds, policy=policy, out_dir=None, restart=restart,
                      health_every=args.health_every, window=args.window, shrink=not args.no_shrink, log=None,
                      target_extra=_target_extra(args), expectations=args.known)

    where = "reference targets in memory" if args.in_memory else ", ".join(targets)
    print(f"aoeconform fuzz: seed {seed} (rerun with --seed {seed}); {workers} workers; {where}", flush=True)
    began = time.monotonic()
    total_cases = args.cases if args.cases is not None or args.seconds is not None else 1000
    results, errors = run_parallel(workers, open_target=open_target, make_fuzzer=make_fuzzer, cases=args.cases, seconds=args.seconds,
                                   start=args.start_index)
    wall = time.monotonic() - began
    for k, result in enumerate(results):
        if not args.quiet:
            print(f"  worker {k}{'' if args.in_memory else ' (' + targets[k] + ')'}: {result.summary()}")
    merged = merge_findings(results)
    for f in merged:
        if args.out:
            findings_mod.store(f, args.out)
    total = sum(r.cases for r in results)
    found = sum(len(r.findings) for r in results)
    print(f"{total} cases in {wall:.1f} s wall ({total / wall if wall else 0:.0f}/s) on {workers} workers; "
          f"{found} finding(s) from the workers, {len(merged)} after merging; seed {seed}")
    combined = FuzzResult(seed, cases=total, replies=sum(r.replies for r in results), seconds=wall,
                          restarts=sum(r.restarts for r in results),
                          next_index=args.start_index if errors else next_index(results, args.start_index, total_cases))
    _report(args, combined, merged, resumable=not errors)
    for error in errors:
        print(f"aoeconform fuzz: {error}", file=sys.stderr)
    if errors:
        return EXIT_INTERNAL
    return _status(merged)

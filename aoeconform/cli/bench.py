"""`aoeconform bench target|initiator|fuzz|fleet`: throughput against vblade (or a
reference peer), same machine, same run."""

from __future__ import annotations

import importlib


def register(subparsers) -> None:
    p = subparsers.add_parser("bench", help="measure throughput against vblade")
    sub = p.add_subparsers(dest="bench_command", metavar="WHAT")
    t = sub.add_parser("target", help="the reference target against vblade (needs root and vblade)")
    t.add_argument("--json", action="store_true", help="print JSON instead of a table")
    t.add_argument("--seconds", type=float, default=0.5, help="length of one round in seconds (default 0.5)")
    t.add_argument("--rounds", type=int, default=5, help="rounds per target and case; medians are reported (default 5)")
    t.set_defaults(func=_run_target)
    # Other benchmarks live beside their subject and add their own parser.
    for name in ("initiator", "fuzz", "linux", "fleet"):
        try:
            module = importlib.import_module(f"aoeconform.bench.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"aoeconform.bench.{name}":
                raise
            continue
        if hasattr(module, "register"):
            module.register(sub)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _run_target(args) -> int:
    from aoeconform.bench.target import report, run_bench
    from aoeconform.errors import UsageError

    if args.seconds <= 0 or args.rounds < 1:
        raise UsageError("--seconds must be positive and --rounds at least 1")
    rows = run_bench(seconds=args.seconds, rounds=args.rounds)
    print(report(rows, args.json))
    return 0

"""``aoeconform replay FILE``: run a failure's case again, from its replay file.

By default the case embedded in the file runs again with the recorded seed
(same data patterns, same LBA window) and is checked as in the original run:
exit 0 if it passes now, 1 if it still fails. ``--frames`` instead resends
the exact frames the original run sent, one at a time, and prints what comes
back (destination and source MACs are mapped to the current target and
harness unless ``--exact``).
"""

from __future__ import annotations

import json

import yaml

from aoeconform.errors import EXIT_FAILURES, EXIT_OK, UsageError


def register(subparsers) -> None:
    p = subparsers.add_parser("replay", help="resend and recheck a failure from its replay file")
    p.add_argument("file", metavar="FILE", help="a .replay.json file from reports/failures/, or a fuzz finding's .json")
    p.add_argument("--target", metavar="IF[:S.N]", help="the target (default: the bundled reference target)")
    p.add_argument("--frames", action="store_true", help="resend the recorded frames verbatim and print the replies")
    p.add_argument("--exact", action="store_true", help="with --frames: do not map MAC addresses to the current target")
    p.add_argument("--allow-write", action="store_true", help="let the case write to a --target (the bundled target always allows it)")
    p.add_argument("--restart-cmd", metavar="CMD", help="command that restarts the target")
    p.add_argument("--second-iface", metavar="IF", help="second interface for the second MAC")
    p.add_argument("--readonly-target", action="store_true")
    p.add_argument("--bundled", default="auto", choices=["auto", "lab", "memory", "loopback"])
    p.add_argument("--quirk", action="append", default=[], metavar="NAME", help="give the bundled target a quirk")
    p.add_argument("--clean", action="store_true",
                   help="a fuzz finding: replay it against the clean reference target (default: with the quirks it was found with)")
    p.add_argument("--mtu", type=int, default=1500)
    p.set_defaults(func=run)


def load_replay(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except FileNotFoundError:
        raise UsageError(f"{path}: no such replay file") from None
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path}:{exc.lineno}: not a replay file ({exc.msg})") from None
    if not isinstance(doc, dict) or not str(doc.get("format", "")).startswith("aoeconform-replay/"):
        raise UsageError(f"{path}: not an aoeconform replay file (no format: aoeconform-replay/N)")
    return doc


def case_from_replay(doc: dict, path: str):
    from aoeconform.scenario.loader import SuiteError, load_suite_text

    text = yaml.safe_dump({"suite": doc["suite"], "cases": [doc["case"]]}, sort_keys=False)
    suite, problems = load_suite_text(text, path)
    if problems or suite is None:
        raise SuiteError(problems or [f"{path}: no case in the replay file"])
    return suite.cases[0]


def run(args) -> int:
    from aoeconform.scenario.engine import Engine, RunOptions
    from aoeconform.scenario.expect import describe, ReplyView

    from .fuzz import is_finding_file, replay_file
    from .run import open_endpoint

    if is_finding_file(args.file):  # a fuzz finding: its frames go to --target, or to the reference target with its quirks
        if args.clean and (args.quirk or args.target):
            raise UsageError("--clean replays against the clean reference target: it takes no --quirk or --target")
        return replay_file(args.file, target=args.target, quirks=[] if args.clean else (args.quirk or None), restart_cmd=args.restart_cmd,
                           second_iface=args.second_iface)
    if args.clean:
        raise UsageError("--clean goes with a fuzz finding's file")
    doc = load_replay(args.file)
    case = None if args.frames else case_from_replay(doc, args.file)
    endpoint = open_endpoint(args)
    try:
        window = tuple(doc["lba_window"]) if doc.get("lba_window") else None
        options = RunOptions(seed=int(doc.get("seed", 0)), lba_window=window,
                             allow_write=endpoint.bundled or args.allow_write,
                             timeout_floor=0.05 if endpoint.iface == "memory" else 0.25)
        engine = Engine(endpoint, options)
        facts = engine.probe()
        if args.frames:
            old_target = bytes.fromhex(str(doc.get("target", {}).get("mac", "")).replace(":", "")) or None
            old_harness = None
            for hex_frame in doc.get("sent", []):
                raw = bytes.fromhex(hex_frame)
                if not args.exact and len(raw) >= 12:
                    old_harness = old_harness or raw[6:12]
                    if raw[0:6] == old_target:
                        raw = facts.mac + raw[6:]
                    if raw[6:12] == old_harness:
                        raw = raw[:6] + endpoint.transport.mac + raw[12:]
                replies, _ = engine.session.exchange(raw)
                print(f"→ {describe(ReplyView(raw)) if len(raw) >= 24 else raw.hex()}")
                for reply in replies:
                    print(f"  ← {describe(ReplyView(reply))}")
                if not replies:
                    print("  (no reply)")
            return EXIT_OK
        assert case is not None  # loaded above unless --frames, which returned
        result = engine.run_case(case)
        print(f"{result.outcome.upper()} {result.id}" + (f" — {result.message}" if result.message else ""))
        print(f"originally: {doc.get('outcome')} — {doc.get('message', '')}")
        for note in result.notes:
            print(f"note: {note}")
        return EXIT_FAILURES if result.failing else EXIT_OK
    finally:
        endpoint.close()

"""`aoeconform lab up|down|status|clean|vblade|bridge`: a veth pair and a namespace to test in,
vblade run in it as a restartable service (for `run --restart-cmd`), and the
removal of labs left behind by killed runs."""

from __future__ import annotations

import shlex
import sys

from aoeconform.cli.argtypes import integer, probability
from aoeconform.errors import EXIT_OK, EXIT_UNREACHABLE, UsageError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "lab",
        help="create or remove a test network (veth pair + network namespace)",
        description="Create or remove a veth pair whose target end lives in its own network "
        "namespace. Needs root. Both actions are idempotent.",
    )
    actions = parser.add_subparsers(dest="lab_action", metavar="ACTION", required=True)

    up = actions.add_parser("up", help="create the lab (replacing a stale one of the same name)")
    _add_name(up)
    up.add_argument("--mtu", type=int, default=1500, help="MTU of both veth ends (default 1500; 9000 for jumbo frames)")
    up.add_argument("--bridge", action="store_true",
                    help="also a second veth pair NAMEg/NAMEb for an initiator behind `lab bridge` (NAMEb to NAMEh)")
    up.set_defaults(func=_up)

    down = actions.add_parser("down", help="remove the lab and stop anything running in it")
    _add_name(down)
    down.set_defaults(func=_down)

    clean = actions.add_parser(
        "clean",
        help="remove the labs left behind by runs and test workers that were killed",
        description="Remove every lab whose owning process (a run, a test worker, a fleet worker) is gone "
        "without taking it down: its namespace, what still runs in it, and its veth pairs. A lab whose "
        "owner still runs, and one made with `lab up` (it has no owner), are left alone. Every lab "
        "start-up does the same; prints one line saying what was removed and what was left.",
    )
    clean.set_defaults(func=_clean)

    status = actions.add_parser("status", help="say whether the lab exists (exit status 3 if not)")
    _add_name(status)
    status.set_defaults(func=_status)

    vb = actions.add_parser(
        "vblade",
        help="start (or with --restart, replace) vblade in the lab namespace; usable as `run --restart-cmd`",
        description="Start Debian's vblade on the lab's target interface, detached, with a pidfile, and "
        "return once it is up (its start-up advertisement was seen, or it answered a Query Config). "
        "With --restart a vblade already running from the same pidfile is stopped first, so the same "
        "command line serves as `aoeconform run --restart-cmd`. Arguments after `--` go to vblade "
        "(e.g. -- -b 32 -d).",
    )
    _add_name(vb)
    vb.add_argument("--shelf", type=int, default=1, help="shelf (AoE major) to export as (default 1)")
    vb.add_argument("--slot", type=int, default=1, help="slot (AoE minor) to export as (default 1)")
    vb.add_argument("--restart", action="store_true", help="stop the vblade this pidfile names first (otherwise that is an error)")
    vb.add_argument("--stop", action="store_true", help="only stop the vblade this pidfile names")
    vb.add_argument("--pidfile", metavar="FILE",
                    help="pidfile (default /run/aoeconform/NAME-vblade-SHELF.SLOT.pid); vblade's output goes beside it as .log")
    vb.add_argument("--log", metavar="FILE", help="vblade's output (default: the pidfile with .log)")
    vb.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for vblade to come up (default 10)")
    vb.add_argument("image", metavar="IMAGE", help="the disk image to export (e.g. made with `truncate -s 64M disk.img`)")
    vb.add_argument("vblade_args", nargs="*", metavar="-- VBLADE-ARG", help="extra vblade options, after --")
    vb.set_defaults(func=_vblade)

    br = actions.add_parser(
        "bridge",
        help="forward AoE frames between two interfaces with seeded loss, duplication, reordering and delay",
        description="A user-space bridge for AoE frames (the kernel here has no netem): frames from the "
        "initiator's interface go to the target's and back, each direction impaired with its own seeded "
        "stream. --only/--tag restrict the impairments to some frames (the rest pass untouched). Runs until "
        "Ctrl-C, SIGTERM or --seconds, then prints its counters. With --name, the interfaces of a lab made "
        "with `lab up --bridge` (NAMEb and NAMEh; the initiator attaches to NAMEg).",
    )
    _add_name(br)
    br.add_argument("--initiator-if", metavar="IF", help="the initiator's side (default: NAMEb)")
    br.add_argument("--target-if", metavar="IF", help="the target's side (default: NAMEh)")
    br.add_argument("--seed", type=integer(0), default=0, help="seed of both directions' streams (default 0)")
    add_impairment_flags(br)
    br.add_argument("--seconds", type=float, help="stop after this long (default: until Ctrl-C or SIGTERM)")
    br.add_argument("--initiator-pcap", metavar="FILE", help="record the frames crossing the initiator's link")
    br.add_argument("--target-pcap", metavar="FILE", help="record the frames crossing the target's link")
    br.add_argument("--stats", metavar="FILE", help="write the counters as JSON here at the end")
    br.set_defaults(func=_bridge)


def add_impairment_flags(parser) -> None:
    """The bridge's impairment flags (also on `aoeconform linux`)."""
    for flag, helptext in (("--loss", "probability a frame is dropped"), ("--dup", "probability a frame is sent twice"),
                           ("--reorder", "probability a frame is held back behind later ones")):
        parser.add_argument(flag, type=probability, default=0.0, help=f"{helptext}, both directions (default 0)")
    parser.add_argument("--reorder-depth", type=integer(1), default=3, help="frames a held frame waits for (default 3)")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds added to every frame, both directions")
    parser.add_argument("--jitter", type=float, default=0.0, help="uniform +- seconds around --delay")
    parser.add_argument("--to-target", metavar="K=V,...", help="rates for frames to the target only, e.g. loss=0.05,dup=0.01 "
                        "(replaces the both-direction values for that direction)")
    parser.add_argument("--to-initiator", metavar="K=V,...", help="rates for frames to the initiator only")
    parser.add_argument("--only", choices=["all", "requests", "replies", "writes", "reads", "ata"], default="all",
                        help="impair only these frames (default all)")
    parser.add_argument("--tag", type=integer(0), help="impair only frames with this tag")


def impairment_requested(args) -> bool:
    return bool(args.loss or args.dup or args.reorder or args.delay or args.jitter or args.to_target
                or args.to_initiator)


def _add_name(parser) -> None:
    parser.add_argument("--name", default="aoec0", help="lab name: 'aoec' plus up to 10 letters or digits (default aoec0)")


def _up(args) -> int:
    from aoeconform.lab import BridgedLab, Lab

    # owned by nobody: it is meant to outlive this command
    lab = (BridgedLab if args.bridge else Lab)(args.name, mtu=args.mtu).up(owned=False)
    ns, target_if = shlex.quote(lab.netns), shlex.quote(lab.target_if)
    python = shlex.quote(sys.executable)
    print(f"lab {lab.name} is up (MTU {lab.mtu})")
    print(f"  host interface:   {lab.host_if}   (the harness sends here: --iface {lab.host_if})")
    print(f"  namespace:        {lab.netns}")
    print(f"  target interface: {lab.target_if}   (inside {lab.netns})")
    print("start a target in it, for example:")
    print(f"  truncate -s 64M disk.img && aoeconform lab vblade --name {lab.name} --shelf 1 --slot 1 disk.img")
    print(f"  (by hand: ip netns exec {ns} vblade 1 1 {target_if} disk.img)")
    print(f"  ip netns exec {ns} {python} -m aoeconform target mem:64M --iface {target_if} --shelf 1 --slot 1")
    if isinstance(lab, BridgedLab):
        print(f"  initiator link:   {lab.initiator_if} (attach the initiator here) <-> {lab.bridge_if}")
        print(f"  forward with:     aoeconform lab bridge --name {lab.name} --loss 0.01 --dup 0.01 --reorder 0.01")
    print(f"remove it with: aoeconform lab down --name {lab.name}")
    return EXIT_OK


def _down(args) -> int:
    from aoeconform.lab import BridgedLab

    BridgedLab(args.name).down()  # with or without the initiator link
    print(f"lab {args.name} is down")
    return EXIT_OK


def _clean(args) -> int:
    from aoeconform.lab.netns import reap_orphans, require_ip_command, require_root

    require_ip_command()
    require_root("removing labs")
    print(f"lab clean: {reap_orphans(census=True).summary()}")
    return EXIT_OK


def _status(args) -> int:
    from aoeconform.lab import Lab

    lab = Lab(args.name)
    if lab.exists():
        print(f"lab {lab.name} exists: host interface {lab.host_if}, namespace {lab.netns}, target interface {lab.target_if}")
        return EXIT_OK
    print(f"lab {lab.name} does not exist; create it with `aoeconform lab up --name {lab.name}`")
    return EXIT_UNREACHABLE


def _vblade(args) -> int:
    import os

    from aoeconform.lab import Lab
    from aoeconform.lab.service import default_pidfile, start_vblade, stop_vblade

    lab = Lab(args.name)
    pidfile = args.pidfile or default_pidfile(lab.name, args.shelf, args.slot)
    if args.stop:
        pid = stop_vblade(lab, pidfile)
        print(f"vblade {args.shelf}.{args.slot} in lab {lab.name}: " + (f"stopped (PID {pid})" if pid else "was not running"))
        return EXIT_OK
    pid = start_vblade(lab, args.shelf, args.slot, os.path.abspath(args.image), args.vblade_args, pidfile=pidfile,
                       log_path=args.log, restart=args.restart, ready_timeout=args.timeout)
    print(f"vblade {args.shelf}.{args.slot} is up in lab {lab.name} (PID {pid}, pidfile {pidfile}); "
          f"target: --target {lab.host_if}:{args.shelf}.{args.slot}")
    return EXIT_OK


def _rates(text, base):
    """``loss=0.05,dup=0.01`` over ``base`` (an Impairment)."""
    from dataclasses import replace

    if not text:
        return base
    values = {}
    for item in text.split(","):
        key, eq, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not eq or key not in base.__dataclass_fields__:
            raise UsageError(f"cannot read {item!r}: use KEY=VALUE with KEY one of {', '.join(base.__dataclass_fields__)}")
        try:
            values[key] = int(value) if key == "reorder_depth" else float(value)
        except ValueError:
            raise UsageError(f"{item!r}: {value!r} is not a number") from None
    for key in ("loss", "dup", "reorder"):
        if key in values and not 0 <= values[key] <= 1:
            raise UsageError(f"{key}={values[key]} is not a probability; use 0 to 1")
    return replace(base, **values)


def bridge_spec_from_args(args):
    from aoeconform.lab.bridge import BridgeSpec, FrameFilter, Impairment

    both = Impairment(loss=args.loss, dup=args.dup, reorder=args.reorder, reorder_depth=args.reorder_depth,
                      delay=args.delay, jitter=args.jitter)
    if both.delay < 0 or both.jitter < 0:
        raise UsageError("--delay and --jitter must not be negative")
    return BridgeSpec(seed=args.seed, to_target=_rates(args.to_target, both), to_initiator=_rates(args.to_initiator, both),
                      only=FrameFilter(args.only, args.tag))


def _bridge(args) -> int:
    import threading

    from aoeconform.lab.bridge import serve, write_stats

    spec = bridge_spec_from_args(args)
    initiator_if = args.initiator_if or f"{args.name}b"
    target_if = args.target_if or f"{args.name}h"
    stop = threading.Event()
    if args.seconds:
        timer = threading.Timer(args.seconds, stop.set)
        timer.daemon = True
        timer.start()
    ready = threading.Event()
    threading.Thread(target=lambda: ready.wait() and print(
        f"bridge: forwarding {initiator_if} <-> {target_if}, seed {spec.seed}", flush=True), daemon=True).start()
    core = serve(initiator_if, target_if, spec, stop=stop, initiator_pcap=args.initiator_pcap,
                 target_pcap=args.target_pcap, ready=ready)
    for direction, counters in core.counters().items():
        print(f"bridge {direction}: " + ", ".join(f"{k} {v}" for k, v in counters.items()))
    if args.stats:
        write_stats(args.stats, core)
    return EXIT_OK

"""`aoeconform lab up|down|status|vblade`: a veth pair and a namespace to test in,
and vblade run in it as a restartable service (for `run --restart-cmd`)."""

from __future__ import annotations

import shlex
import sys

from aoeconform.errors import EXIT_OK, EXIT_UNREACHABLE


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
    up.set_defaults(func=_up)

    down = actions.add_parser("down", help="remove the lab and stop anything running in it")
    _add_name(down)
    down.set_defaults(func=_down)

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


def _add_name(parser) -> None:
    parser.add_argument("--name", default="aoec0", help="lab name: 'aoec' plus up to 10 letters or digits (default aoec0)")


def _up(args) -> int:
    from aoeconform.lab import Lab

    lab = Lab(args.name, mtu=args.mtu).up()
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
    print(f"remove it with: aoeconform lab down --name {lab.name}")
    return EXIT_OK


def _down(args) -> int:
    from aoeconform.lab import Lab

    Lab(args.name).down()
    print(f"lab {args.name} is down")
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

"""The ``linux`` step: the kernel's own AoE driver (user-mode Linux) against the target under test.

The guest gets a link of its own and the impairment bridge forwards between
it and the run's interface, so the target sees Linux's frames from another
MAC on the same link the harness uses. The driver discovers the target by
its broadcast Query Config, reads IDENTIFY, and the guest writes a seeded
region and reads it back with O_DIRECT. What Linux relies on becomes a
verdict naming the rule it rests on:

* rule 10: the target answers the broadcast Query Config (Linux discovers
  only that way); rule 11: with its real shelf and slot (the driver drops a
  reply that carries the wildcard);
* rule 28: the capacity Linux gives the block device is the one IDENTIFY
  reports to the harness;
* rules 21 and 22: what Linux wrote reads back byte-exact, through the
  loss, duplication and reordering the step asks for (rule 18: Linux
  retransmits with new tags, so duplicates reach the target).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from typing import Callable, List, Mapping, Optional

from .expect import Verdict

SECTOR = 512
#: a guest's work in the default run is small; its boot is about 2-3 s of it
DEFAULT_GUEST_TIMEOUT = 120.0
#: how long the guest waits for the device (asking for discovery every 2 s);
#: a target answers a broadcast in milliseconds
DEVICE_TIMEOUT = 5.0


def linux_problem(endpoint) -> str:
    """Empty if a linux step can run against ``endpoint``; otherwise why not."""
    from aoeconform.lab.uml import uml_problem

    if not endpoint.iface or endpoint.iface == "memory":
        return "the Linux guest needs a real interface to the target (the bundled target in a lab, or --target IF)"
    return uml_problem()


def run_linux_step(engine, body: Mapping, region: tuple[int, int], timeout: Optional[float]) -> List[Verdict]:
    from aoeconform.lab.bridge import BridgeSpec
    from aoeconform.lab.linux import LinuxRun, drive_guest
    from aoeconform.lab.uml import DriverParams, standard_steps
    from aoeconform.lab.workload import ALIGN, WorkloadSpec

    lba, sectors = region
    facts, endpoint = engine.known, engine.endpoint
    per_align = ALIGN // SECTOR
    if lba % per_align or sectors % per_align or sectors <= 0:
        from .expect import CheckError

        raise CheckError(f"linux: lba {lba} and sectors {sectors} must be multiples of {per_align} (O_DIRECT, 4 KiB)")
    block = int(body.get("block_sectors", 64)) * SECTOR
    spec = WorkloadSpec(seed=engine.options.seed or 1, offset=lba * SECTOR, size=sectors * SECTOR,
                        block=min(block, sectors * SECTOR), random_writes=int(body.get("random_writes", 4)))
    params = DriverParams(aoe_maxout=body.get("maxout"), aoe_deadsecs=body.get("deadsecs"))
    bridge = BridgeSpec.symmetric(seed=engine.options.seed, loss=float(body.get("loss", 0)),
                                  dup=float(body.get("dup", 0)), reorder=float(body.get("reorder", 0)))
    guest_timeout = float(timeout or DEFAULT_GUEST_TIMEOUT)
    steps = None
    if body.get("rediscover"):
        # the interface list names no interface of the guest: nothing may appear;
        # then the list is set to vec0 and discovery asked for again
        steps = standard_steps(DriverParams(aoe_iflist="vec9", aoe_maxout=params.aoe_maxout,
                                            aoe_deadsecs=params.aoe_deadsecs), None, device_timeout=3)
        steps[1]["expect_absent"] = True
        steps[1]["rediscover"] = 0
        steps += [{"kind": "write", "path": "/dev/etherd/interfaces", "text": "vec0"},
                  {"kind": "write", "path": "/dev/etherd/discover", "text": "1"},
                  {"kind": "wait_device", "timeout": DEVICE_TIMEOUT, "rediscover": 0},
                  {"kind": "workload", "spec": spec.__dict__}]
    run = LinuxRun(target=f"{endpoint.iface}:{facts.shelf}.{facts.slot}", mtu=endpoint.mtu, params=params,
                   workload=spec, steps=steps, shelf=facts.shelf, slot=facts.slot, timeout=guest_timeout,
                   bridge=bridge, device_timeout=DEVICE_TIMEOUT)
    during = _restart_during(str(body["restart"])) if body.get("restart") else None
    if during is not None and endpoint.restart is None:
        from .engine import CaseStop
        from . import results as R

        raise CaseStop(R.SKIPPED, "unsupported: no way to restart the target (give --restart-cmd)", R.UNSUPPORTED)
    workdir = tempfile.mkdtemp(prefix="aoeconform-linux-step-")
    engine.wire.drain()
    try:
        report = drive_guest(endpoint.iface, facts.shelf, facts.slot, run, endpoint.description,
                             restart=endpoint.restart, during=during, workdir=workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        # Linux's conversation reached the harness's socket too; it is not a case's
        engine.wire.drain()
        engine.wire.arrivals.clear()
        engine.wire.unsolicited.clear()
        engine.shadow.forget(lba, sectors)
    return judge(report, facts, expect_absent_first=bool(body.get("rediscover")), restart_stage=str(body.get("restart") or ""))


def _restart_during(stage: str) -> Callable:
    """Restart the target once the guest reaches workload phase ``stage`` (seq, random, verify)."""

    def during(guest, restart_target, events) -> None:
        if guest.wait_stage(f"workload-{stage}", guest.timeout):
            time.sleep(0.05)  # into the phase's I/O
            before = list(guest.poll_stages())[-1]
            restart_target()
            after = list(guest.poll_stages())[-1]
            events.append(f"restarted during workload stage {before}" + (f" (guest at {after} after it)" if after != before else ""))

    return during


def judge(report, facts, expect_absent_first: bool = False, restart_stage: str = "") -> List[Verdict]:
    g, w = report.guest, report.wire
    summary = (f"Linux: {g.driver_count('retransmit')} retransmissions by its own count, wire: {w.retransmissions} "
               f"retransmissions, {w.duplicates_delivered or 0} duplicates delivered")
    waits = [s for s in g.guest.get("steps", []) if s.get("kind") == "wait_device"]
    if g.killed:
        return [Verdict(False, f"{g.reason}; {summary}")]
    if expect_absent_first and waits and waits[0].get("found"):
        return [Verdict(False, "the device appeared although aoe_iflist named no interface of the guest")]
    found = bool(waits and waits[-1].get("found"))
    if not found:
        if w.wildcard_replies:
            why = (f"rule 11: {w.wildcard_replies} replies to Linux carried the wildcard shelf or slot; "
                   "the driver ignores them, so it never found the target")
        elif not w.replies:
            why = "rule 10: nothing answered Linux's broadcast Query Config, so it never found the target"
        else:
            why = f"Linux never made the device: {g.reason or 'no reason given'}"
        return [Verdict(False, why)]
    verdicts: List[Verdict] = []
    info = g.device_info
    capacity = int(info.get("size", 0) or 0)
    if facts.identified and capacity != facts.capacity:
        verdicts.append(Verdict(False, f"rule 28: Linux sized the device at {capacity} sectors, "
                                       f"IDENTIFY told the harness {facts.capacity}"))
    if w.wildcard_replies:
        verdicts.append(Verdict(False, f"rule 11: {w.wildcard_replies} replies to Linux carried the wildcard shelf or slot"))
    work = g.workload
    if not work:
        verdicts.append(Verdict(False, g.reason or "the workload did not run"))
    elif not work.get("ok"):
        if work.get("error"):
            verdicts.append(Verdict(False, f"rules 21/22: Linux's I/O failed: {work['error']}; {summary}"))
        else:
            verdicts.append(Verdict(False, f"rules 21/22: Linux read back {work['mismatch_count']} sectors different from "
                                           f"what it wrote (first: {work['mismatched_sectors'][:4]}); {summary}"))
    elif not g.ok:
        verdicts.append(Verdict(False, g.reason))
    restarts = [e for e in report.events if e.startswith("restarted during")]
    if restart_stage and not any(e.startswith(f"restarted during workload stage workload-{restart_stage}") for e in restarts):
        from .expect import CheckError

        raise CheckError(f"the target was not restarted during the {restart_stage} phase ({'; '.join(report.events) or 'no restart'}): "
                         "the phase was too short to restart it in; give more sectors")
    if not verdicts:
        rate = sum(p["bytes"] for p in work["phases"]) / max(1e-9, sum(p["seconds"] for p in work["phases"])) / 1e6
        events = f"; {', '.join(report.events)}" if report.events else ""
        verdicts.append(Verdict(True, f"Linux found e{facts.shelf}.{facts.slot} ({capacity} sectors, "
                                      f"{info.get('payload')}-byte frames) and read back {work['spec']['size'] // 1024} KiB "
                                      f"byte-exact at {rate:.1f} MB/s; {summary}{events}"))
    return verdicts

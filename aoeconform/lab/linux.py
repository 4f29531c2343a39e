"""One run of the Linux AoE driver against a target: lab, target, capture, guest, counts.

``run_linux`` puts a target on a lab's far end (the bundled reference
target, or Debian's vblade) or uses a user's interface, captures the AoE
frames at the guest's side of the link, boots the guest (``uml.LinuxGuest``)
with the driver's parameters and a workload, and puts together what Linux
saw (capacity, frame size, its error lines, the block layer's counters) and
what crossed the wire (``wirestats``). When the target's image is a file of
ours, the image itself is checked afterwards against what the workload
wrote: an independent witness to what the target stored.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

from aoeconform.errors import UsageError

from .bridge import BridgeCore, BridgeSpec
from .capture import Capture
from .netns import GuestLink, Lab, TargetProcess, make_sparse_image
from .uml import WARM_HANDSHAKE, DriverParams, GuestResult, LinuxGuest, standard_steps
from .wirestats import WireCounts, analyse
from .workload import WorkloadSpec, expected_region

BUNDLED = "bundled"
VBLADE = "vblade"
DEFAULT_SHELF, DEFAULT_SLOT = 1, 2
DEFAULT_IMAGE_BYTES = 64 << 20

_lab_counter = itertools.count()


def lab_name() -> str:
    return f"aoecl{os.getpid() % 1000000}{next(_lab_counter)}"[:14]


@dataclass
class LinuxRun:
    """What to run: ``target`` is "bundled", "vblade" or "IF[:S.N]"."""

    target: str = BUNDLED
    mtu: int = 1500
    params: DriverParams = field(default_factory=DriverParams)
    workload: Optional[WorkloadSpec] = field(default_factory=WorkloadSpec)
    #: guest steps instead of load / wait for the device / workload
    steps: Optional[List[Dict]] = None
    quirks: Tuple[str, ...] = ()
    image_bytes: int = DEFAULT_IMAGE_BYTES
    shelf: int = DEFAULT_SHELF
    slot: int = DEFAULT_SLOT
    timeout: float = 90.0
    device_timeout: float = 15.0
    #: frames seen at the guest's side (with a bridge, the target's side goes beside it as -target.pcap)
    pcap: Optional[str] = None
    #: put the impairment bridge between the guest and the target (lab targets only)
    bridge: Optional[BridgeSpec] = None
    #: when the bridge starts impairing: "boot" (discovery and IDENTIFY too), or
    #: "workload" (after the driver's RTT estimate has settled on a clean link:
    #: it starts at 250 ms, so each early loss costs a second or more)
    impair_from: str = "workload"
    #: bytes read before the workload, on a clean link when impair_from is "workload"
    warmup: int = 1 << 20

    @property
    def in_lab(self) -> bool:
        return self.target in (BUNDLED, VBLADE)


@dataclass
class LinuxReport:
    run: LinuxRun
    guest: GuestResult
    wire: WireCounts
    target: str = ""
    capture_drops: int = 0
    #: receive errors of the capture (it went on after each)
    capture_errors: List[str] = field(default_factory=list)
    #: the target's image file matched what the workload wrote (None: not checked)
    image_matches: Optional[bool] = None
    image_detail: str = ""
    target_log: str = ""
    events: List[str] = field(default_factory=list)
    #: the bridge's counters per direction, when there was one
    bridge: Dict[str, Dict[str, int]] = field(default_factory=dict)

    @property
    def device_found(self) -> bool:
        return bool(self.guest.step("wait_device").get("found"))

    @property
    def workload_ok(self) -> bool:
        return bool(self.guest.workload.get("ok"))

    @property
    def ok(self) -> bool:
        if not self.guest.ok:
            return False
        if self.run.workload is not None and self.run.steps is None and not self.workload_ok:
            return False
        return self.image_matches is not False

    @property
    def problem(self) -> str:
        if not self.guest.ok:
            return self.guest.reason
        work = self.guest.workload
        if work and not work.get("ok"):
            if work.get("error"):
                return f"workload failed: {work['error']}"
            return (f"read-back differs from what was written in {work.get('mismatch_count')} sectors "
                    f"(first: {work.get('mismatched_sectors', [])[:4]})")
        if self.image_matches is False:
            return f"the target's image differs from what Linux wrote: {self.image_detail}"
        return ""

    def as_dict(self) -> Dict:
        return {
            "ok": self.ok,
            "problem": self.problem,
            "target": self.target,
            "mtu": self.run.mtu,
            "params": asdict(self.run.params),
            "guest": {"killed": self.guest.killed, "reason": self.guest.reason, "stages": self.guest.stages,
                      "seconds": self.guest.seconds, "device": self.guest.device_info,
                      "driver_errors": self.guest.driver_errors, "workload": self.guest.workload,
                      "steps": self.guest.guest.get("steps", [])},
            "driver": {"retransmit": self.guest.driver_count("retransmit"),
                       "unexpected": self.guest.driver_count("unexpected")},
            "wire": self.wire.as_dict(),
            "capture_drops": self.capture_drops,
            "capture_errors": self.capture_errors,
            "bridge": {"spec": self.run.bridge.as_dict(), "counters": self.bridge} if self.run.bridge else None,
            "image_matches": self.image_matches,
            "pcap": self.run.pcap,
            "events": self.events,
        }


def _check_image(image_path: str, spec: WorkloadSpec) -> Tuple[bool, str]:
    expected = expected_region(spec)
    with open(image_path, "rb") as f:
        f.seek(spec.offset)
        stored = f.read(spec.size)
    if stored == expected:
        return True, f"sha256 {hashlib.sha256(stored).hexdigest()[:16]}"
    for pos in range(0, min(len(stored), len(expected)), 512):
        if stored[pos:pos + 512] != expected[pos:pos + 512]:
            return False, f"first differing sector {(spec.offset + pos) // 512}"
    return False, f"image holds {len(stored)} of {len(expected)} bytes"


def _parse_user_target(text: str) -> Tuple[str, Optional[int], Optional[int]]:
    iface, _, address = text.partition(":")
    if not iface:
        raise UsageError(f"--target {text!r}: name an interface, e.g. eth1:1.2")
    if not address:
        return iface, None, None
    shelf, dot, slot = address.partition(".")
    if not dot or not shelf.isdigit() or not slot.isdigit():
        raise UsageError(f"--target {text!r}: write the address as SHELF.SLOT, e.g. eth1:1.2")
    return iface, int(shelf), int(slot)


def _discover(iface: str) -> Tuple[int, int]:
    from aoeconform.initiator.addressing import open_target

    transport, record = open_target(iface, 1.0, identify=False)
    transport.close()
    return record.shelf, record.slot


def _interface_mtu(iface: str, default: int) -> int:
    try:
        with open(f"/sys/class/net/{iface}/mtu") as f:
            return int(f.read())
    except (OSError, ValueError):
        return default


#: called while the guest runs, with the guest and a way to restart the target
DuringHook = Callable[[LinuxGuest, Callable[[], None], List[str]], None]


def run_linux(run: LinuxRun, during: Optional[DuringHook] = None, workdir: Optional[str] = None) -> LinuxReport:
    """Set up, run the guest, take everything down; the report says what happened."""
    if run.workload is not None:
        run.workload.check(run.image_bytes if run.in_lab else None)
    if run.bridge is not None and not run.in_lab:
        raise UsageError("the impairment bridge needs a lab target (bundled or vblade), not --target")
    own_workdir = workdir is None
    workdir = workdir or tempfile.mkdtemp(prefix="aoeconform-linux-")
    lab: Optional[Lab] = None
    target_proc: Dict[str, TargetProcess] = {}
    image_path = os.path.join(workdir, "disk.img")
    events: List[str] = []
    restart_target: Optional[Callable[[], None]] = None
    try:
        if run.in_lab:
            lab = Lab(lab_name(), mtu=run.mtu).up()
            make_sparse_image(image_path, run.image_bytes)
            iface, shelf, slot = lab.host_if, run.shelf, run.slot
            log_path = os.path.join(workdir, "target.log")
            the_lab = lab

            def start_target() -> None:
                if run.target == VBLADE:
                    target_proc["proc"] = the_lab.start_vblade(shelf, slot, image_path, log_path=log_path)
                else:
                    target_proc["proc"] = the_lab.start_reference_target(shelf, slot, image_path, quirks=run.quirks,
                                                                         log_path=log_path)

            def restart() -> None:
                proc = target_proc.pop("proc", None)
                if proc is not None:
                    proc.stop()
                start_target()

            start_target()
            restart_target = restart
            description = ("Debian vblade" if run.target == VBLADE else "bundled reference target"
                           + (f" with quirks {','.join(run.quirks)}" if run.quirks else "")) + f" in lab {lab.name}"
        else:
            iface, user_shelf, user_slot = _parse_user_target(run.target)
            if user_shelf is None or user_slot is None:
                shelf, slot = _discover(iface)
            else:
                shelf, slot = user_shelf, user_slot
            description = f"{iface}:{shelf}.{slot}"
            run.mtu = _interface_mtu(iface, run.mtu)  # the guest's NIC matches the link it sits on

        report = drive_guest(iface, shelf, slot, run, description, restart=restart_target, during=during,
                             workdir=workdir, events=events)
        proc = target_proc.pop("proc", None)
        if proc is not None:
            proc.stop()  # everything it acknowledged is in the file now
            report.target_log = proc.log_tail(3)
        if (run.in_lab and run.workload is not None and run.steps is None
                and report.guest.workload and not report.guest.workload.get("error")):
            report.image_matches, report.image_detail = _check_image(image_path, run.workload)
        return report
    finally:
        for proc in target_proc.values():
            proc.stop()
        if lab is not None:
            lab.down()
        if own_workdir:
            shutil.rmtree(workdir, ignore_errors=True)


def drive_guest(
    iface: str,
    shelf: int,
    slot: int,
    run: LinuxRun,
    description: str,
    *,
    restart: Optional[Callable[[], None]] = None,
    during: Optional[DuringHook] = None,
    workdir: str,
    events: Optional[List[str]] = None,
) -> LinuxReport:
    """Boot the guest for a target reached through ``iface``: on ``iface`` itself
    (frames captured there), or with ``run.bridge`` on a guest link of its own
    whose bridge forwards to ``iface``. Everything it made is gone afterwards."""
    events = events if events is not None else []
    if run.impair_from not in ("boot", "workload"):
        raise UsageError(f"impair_from {run.impair_from!r}: use boot or workload")

    def restart_target() -> None:
        if restart is None:
            raise UsageError("restarting needs a target the harness can restart (a lab target)")
        events.append("target stopped")
        restart()
        events.append("target restarted")

    steps = run.steps if run.steps is not None else standard_steps(
        run.params, asdict(run.workload) if run.workload is not None else None, run.device_timeout,
        warmup=run.warmup if run.bridge is not None and run.bridge.impairs and run.impair_from == "workload" else 0)
    link: Optional[GuestLink] = None
    bridge: Optional[BridgeThread] = None
    capture: Optional[Capture] = None
    frames: List = []
    try:
        if run.bridge is not None:
            link = GuestLink(lab_name(), run.mtu).up()
            # off until the guest's warm-up handshake, if its steps have one
            bridge = BridgeThread(link.bridge_if, iface, run.bridge, run.pcap, workdir,
                                  enabled=not any(step.get("file") == WARM_HANDSHAKE for step in steps))
            guest_iface = link.initiator_if
        else:
            capture = Capture(iface, run.pcap)
            guest_iface = iface
        guest = LinuxGuest(guest_iface, steps, shelf=shelf, slot=slot, mtu=run.mtu, timeout=run.timeout,
                           workdir=os.path.join(workdir, "guest"))
        try:
            guest.start()
            if bridge is not None and not bridge.core.enabled:
                # the guest waits after its warm-up until impairments are on
                if guest.wait_stage("wait_host", run.timeout):
                    bridge.core.enabled = True
                    guest.answer(WARM_HANDSHAKE)
                    events.append(f"impairments on at {guest.poll_stages()['wait_host']:.1f} s, after the warm-up")
            if during is not None:
                during(guest, restart_target, events)
            result = guest.wait()
        finally:
            guest.stop()
            if capture is not None:
                frames = capture.stop()
            if bridge is not None:
                bridge.stop()
    finally:
        if link is not None:
            link.down()
    if bridge is not None:
        wire = analyse(bridge.initiator_frames(), bridge.target_frames())
        return LinuxReport(run, result, wire, target=description + ", through the impairment bridge",
                           events=events, bridge=bridge.core.counters())
    assert capture is not None
    return LinuxReport(run, result, analyse(frames), target=description, capture_drops=capture.kernel_drops,
                       capture_errors=capture.errors, events=events)


class BridgeThread:
    """The impairment bridge in a thread between an initiator's link and the target's,
    recording both sides; impairments apply once ``core.enabled`` is set."""

    def __init__(self, initiator_if: str, target_if: str, spec: BridgeSpec, pcap: Optional[str], workdir: str,
                 enabled: bool = True) -> None:
        import threading

        from .bridge import serve

        self.initiator_pcap = pcap or os.path.join(workdir, "initiator.pcap")
        self.target_pcap = os.path.splitext(self.initiator_pcap)[0] + "-target.pcap"
        self.core = BridgeCore(spec)
        self.core.enabled = enabled
        self.error = ""
        self._stop = threading.Event()
        ready = threading.Event()

        def forward() -> None:
            try:
                serve(initiator_if, target_if, spec, stop=self._stop, ready=ready, core=self.core,
                      initiator_pcap=self.initiator_pcap, target_pcap=self.target_pcap)
            except Exception as exc:  # reported by start-up or in the result
                self.error = f"{type(exc).__name__}: {exc}"
                ready.set()

        self._thread = threading.Thread(target=forward, name="aoeconform-bridge", daemon=True)
        self._thread.start()
        ready.wait(10)
        if self.error:
            raise UsageError(f"the impairment bridge could not start: {self.error}")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _frames(self, path: str) -> List[Tuple[float, bytes, int]]:
        from aoeconform.transport.pcap import PcapReader

        try:
            with PcapReader(path) as reader:
                return [(r.timestamp, r.data, r.original_length) for r in reader]
        except (OSError, UsageError):
            return []

    def initiator_frames(self) -> List[Tuple[float, bytes, int]]:
        return self._frames(self.initiator_pcap)

    def target_frames(self) -> List[Tuple[float, bytes, int]]:
        return self._frames(self.target_pcap)


def format_report(report: LinuxReport) -> List[str]:
    """The lines ``aoeconform linux`` prints."""
    g = report.guest
    info = g.device_info
    lines = [f"target: {report.target}, MTU {report.run.mtu}"]
    stages = g.stages
    lines.append(f"guest: init at {stages.get('init', '-')} s, device at {stages.get('device', '-')} s, "
                 f"finished in {g.seconds:.1f} s" + (" (KILLED: it hung)" if g.killed else ""))
    if info.get("size"):
        sectors = int(info["size"])
        lines.append(f"Linux saw: {os.path.basename(info.get('device', '?'))} "
                     f"capacity {sectors} sectors ({sectors * 512 / 2**20:.0f} MiB), {info.get('payload', '?')}-byte data frames, "
                     f"firmware {info.get('firmware-version', '?')}, state {info.get('state', '?')}")
    params = info.get("parameters", {})
    if params:
        lines.append("driver parameters: " + ", ".join(f"{k}={v}" for k, v in params.items()))
    stat = info.get("stat")
    if stat:
        lines.append(f"block layer: {stat['reads']} reads ({stat['read_sectors']} sectors), "
                     f"{stat['writes']} writes ({stat['write_sectors']} sectors)")
    work = g.workload
    for phase in work.get("phases", []):
        rate = phase["bytes"] / phase["seconds"] / 1e6 if phase["seconds"] else 0.0
        lines.append(f"workload {phase['name']}: {phase['bytes'] / 2**20:.2f} MiB in {phase['seconds']:.2f} s "
                     f"({rate:.1f} MB/s)" + (f" ERROR {phase['error']}" if phase.get("error") else ""))
    if work:
        lines.append("read-back: " + ("byte-exact, sha256 " + work["read_sha256"][:16] if work.get("ok")
                                      else f"DIFFERS in {work.get('mismatch_count')} sectors {work.get('mismatched_sectors', [])[:4]}"))
    if report.image_matches is not None:
        lines.append("target image: " + ("matches what Linux wrote" if report.image_matches else "DIFFERS: ")
                     + ("" if report.image_matches else report.image_detail))
    lines.append(f"Linux's error lines: {g.driver_count('retransmit')} retransmit, {g.driver_count('unexpected')} unexpected response"
                 + (f", {len(g.driver_errors)} in all" if g.driver_errors else ""))
    for line in g.driver_errors[:5]:
        lines.append(f"  {line}")
    w = report.wire
    lines.append(f"wire: {w.requests} requests ({w.write_requests} writes, {w.read_requests} reads, {w.config_requests} config), "
                 f"{w.replies} replies, largest payload {w.max_payload} bytes")
    lines.append(f"wire: {w.retransmissions} retransmissions, {w.duplicates_delivered or 0} duplicates delivered to the target, "
                 f"{w.late_replies} late replies, {w.error_replies} error replies, {w.wildcard_replies} wildcard replies"
                 + (f"; capture dropped {report.capture_drops} frames" if report.capture_drops else "")
                 + (f"; capture errors: {len(report.capture_errors)} ({report.capture_errors[0]})"
                    if report.capture_errors else ""))
    for direction, counters in report.bridge.items():
        lines.append(f"bridge {direction.replace('_', ' ')}: {counters['seen']} frames, {counters['dropped']} dropped, "
                     f"{counters['duplicated']} duplicated, {counters['reordered']} reordered, {counters['delayed']} delayed")
    for event in report.events:
        lines.append(f"event: {event}")
    if report.run.pcap:
        lines.append(f"pcap: {report.run.pcap}")
    lines.append("result: " + ("PASS" if report.ok else f"FAIL: {report.problem}"))
    return lines

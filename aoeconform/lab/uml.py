"""The kernel's own AoE driver, in user-mode Linux, attached to a lab interface.

Debian's ``user-mode-linux`` ships Linux as a program (``linux.uml``) and
``aoe.ko`` among its modules (reference §11). A ``LinuxGuest`` boots it with
the host's root file system read-only (hostfs), one network interface in
raw mode on a host interface (``vec0`` inside), and ``aoeconform.lab.guest``
as init. The guest reports through a directory shared with the host:
``stages`` (one line per step, as it starts) and ``result.json``.

Every guest is bounded: past its deadline it is halted through its
management console and then its whole process group is killed, and the
result says so (``killed``). Nothing is left running.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from aoeconform.errors import HarnessError

UML_BINARY = "linux.uml"
UML_MODULES = "/usr/lib/uml/modules"
AOE_MODULE = "kernel/drivers/block/aoe/aoe.ko"
GUEST_IFACE = "vec0"
DEFAULT_MEM = "256M"
#: the driver's defaults (drivers/block/aoe/aoecmd.c, aoeblk.c), for reports
DRIVER_DEFAULTS = {"aoe_maxout": 64, "aoe_deadsecs": 180}


class GuestError(HarnessError):
    """The guest could not be started or did not finish."""


def uml_binary() -> Optional[str]:
    return shutil.which(UML_BINARY)


def aoe_module() -> Optional[str]:
    """Path of aoe.ko for the installed linux.uml (the newest modules tree)."""
    try:
        versions = sorted(os.listdir(UML_MODULES))
    except OSError:
        return None
    for version in reversed(versions):
        path = os.path.join(UML_MODULES, version, AOE_MODULE)
        if os.path.exists(path):
            return path
    return None


def uml_problem() -> str:
    """Empty if a Linux guest can run here; otherwise one line saying why not."""
    if os.geteuid() != 0:
        return "the Linux guest needs root (raw sockets for its network interface)"
    if uml_binary() is None:
        return "user-mode Linux is not installed (apt-get install user-mode-linux)"
    if aoe_module() is None:
        return f"no aoe.ko under {UML_MODULES} (apt-get install --reinstall user-mode-linux)"
    return ""


@dataclass
class DriverParams:
    """aoe.ko's module parameters (``/sys/module/aoe/parameters``)."""

    aoe_iflist: str = GUEST_IFACE
    aoe_maxout: Optional[int] = None
    aoe_deadsecs: Optional[int] = None

    def as_module_params(self) -> Dict[str, str]:
        params = {"aoe_iflist": self.aoe_iflist}
        if self.aoe_maxout is not None:
            params["aoe_maxout"] = str(self.aoe_maxout)
        if self.aoe_deadsecs is not None:
            params["aoe_deadsecs"] = str(self.aoe_deadsecs)
        return params


#: the file the host creates when the guest may go on after ``standard_steps``' warm-up
WARM_HANDSHAKE = "warmed-up"


def standard_steps(params: DriverParams, workload: Optional[Dict], device_timeout: float = 15.0,
                   warmup: int = 0) -> List[Dict]:
    """Load the driver, wait for the device, read ``warmup`` bytes and wait for the
    host (``LinuxGuest.answer(WARM_HANDSHAKE)``), run the workload (if any)."""
    steps: List[Dict] = [{"kind": "load", "params": params.as_module_params()},
             {"kind": "wait_device", "timeout": device_timeout}]
    if warmup:
        steps.append({"kind": "read", "size": warmup})
        steps.append({"kind": "wait_host", "file": WARM_HANDSHAKE})
    if workload is not None:
        steps.append({"kind": "workload", "spec": workload})
    return steps


@dataclass
class GuestResult:
    ok: bool = False
    #: killed at the deadline (it hung) rather than powering itself off
    killed: bool = False
    reason: str = ""
    #: host seconds from launch to each stage the guest reached
    stages: Dict[str, float] = field(default_factory=dict)
    #: what the guest wrote (steps, driver_errors, final device info)
    guest: Dict = field(default_factory=dict)
    seconds: float = 0.0
    console_tail: str = ""
    workdir: str = ""

    @property
    def boot_seconds(self) -> Optional[float]:
        return self.stages.get("init")

    @property
    def device_seconds(self) -> Optional[float]:
        return self.stages.get("device")

    def step(self, kind: str) -> Dict:
        for step in self.guest.get("steps", []):
            if step.get("kind") == kind:
                return step
        return {}

    @property
    def workload(self) -> Dict:
        return self.step("workload").get("workload", {})

    @property
    def device_info(self) -> Dict:
        return self.guest.get("final") or self.step("wait_device").get("info", {})

    @property
    def driver_errors(self) -> List[str]:
        return [line for _, line in self.guest.get("driver_errors", [])]

    def driver_count(self, word: str) -> int:
        """Lines of /dev/etherd/err starting with ``word`` (retransmit, unexpected, ...)."""
        return sum(1 for line in self.driver_errors if line.split()[:1] == [word])


class LinuxGuest:
    """One boot of linux.uml on ``host_iface`` running ``steps`` (see guest.py)."""

    def __init__(
        self,
        host_iface: str,
        steps: List[Dict],
        *,
        shelf: int,
        slot: int,
        mtu: int = 1500,
        timeout: float = 60.0,
        mem: str = DEFAULT_MEM,
        workdir: Optional[str] = None,
        umid: Optional[str] = None,
    ) -> None:
        problem = uml_problem()
        if problem:
            raise GuestError(problem)
        self.host_iface = host_iface
        self.steps = steps
        self.shelf, self.slot, self.mtu = shelf, slot, mtu
        self.timeout = timeout
        self.mem = mem
        self._own_workdir = workdir is None
        self.workdir = workdir or tempfile.mkdtemp(prefix="aoeconform-uml-")
        self.shared = os.path.join(self.workdir, "shared")
        os.makedirs(self.shared, exist_ok=True)
        self.umid = umid or f"aoec{os.getpid()}x{int(time.monotonic() * 1000) % 100000}"
        self.popen: Optional[subprocess.Popen] = None
        self._launched = 0.0
        self._stages: Dict[str, float] = {}

    # -- files shared with the guest ----------------------------------------------

    def _write_boot_files(self) -> str:
        package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        config = {"host_dir": self.shared, "iface": GUEST_IFACE, "mtu": self.mtu, "shelf": self.shelf,
                  "slot": self.slot, "module": aoe_module(), "steps": self.steps}
        config_path = os.path.join(self.workdir, "config.json")
        with open(config_path, "w") as f:
            json.dump(config, f, indent=1)
        init_path = os.path.join(self.workdir, "init")
        with open(init_path, "w") as f:
            f.write("#!/bin/sh\n# init of an aoeconform Linux guest\n"
                    f"export PYTHONPATH={package_root} PYTHONDONTWRITEBYTECODE=1\n"
                    f"exec {sys.executable} -m aoeconform.lab.guest {config_path}\n")
        os.chmod(init_path, 0o755)
        return init_path

    def command(self, init_path: str) -> List[str]:
        nic = f"{GUEST_IFACE}:transport=raw,ifname={self.host_iface}"
        if self.mtu != 1500:
            nic += f",mtu={self.mtu}"  # above 1500 vec0 stays down without it (§11)
        return [uml_binary() or UML_BINARY, f"umid={self.umid}", f"uml_dir={self.workdir}", f"mem={self.mem}",
                "rootfstype=hostfs", "rootflags=/", "ro", f"init={init_path}",
                "con=null", "con0=null,fd:1", nic]

    # -- life cycle -------------------------------------------------------------------

    def start(self) -> "LinuxGuest":
        init_path = self._write_boot_files()
        console = open(os.path.join(self.workdir, "console.log"), "wb")
        try:
            self.popen = subprocess.Popen(self.command(init_path), stdin=subprocess.DEVNULL, stdout=console,
                                          stderr=subprocess.STDOUT, start_new_session=True, cwd=self.workdir)
        except OSError as exc:
            raise GuestError(f"cannot start {UML_BINARY}: {exc}") from None
        finally:
            console.close()
        self._launched = time.monotonic()
        return self

    def poll_stages(self) -> Dict[str, float]:
        """Stages the guest has reached, with host seconds since launch when first seen."""
        try:
            with open(os.path.join(self.shared, "stages")) as f:
                lines = f.read().splitlines()
        except OSError:
            return self._stages
        now = time.monotonic() - self._launched
        for line in lines:
            name = line.split(" ", 1)[0]
            if name and name not in self._stages:
                self._stages[name] = round(now, 3)
        return self._stages

    def wait_stage(self, name: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if name in self.poll_stages():
                return True
            if self.popen is not None and self.popen.poll() is not None:
                return False
            time.sleep(0.02)
        return False

    def answer(self, name: str) -> None:
        """Let a guest waiting in a ``wait_host`` step for ``name`` go on."""
        with open(os.path.join(self.shared, name), "w") as f:
            f.write("go\n")

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def wait(self) -> GuestResult:
        """Until the guest powers off or its deadline; then make sure it is gone."""
        assert self.popen is not None, "start() first"
        deadline = self._launched + self.timeout
        killed = False
        while self.popen.poll() is None:
            self.poll_stages()
            if time.monotonic() >= deadline:
                killed = True
                break
            if "done" in self._stages:
                # powering off takes a moment; past that, it is hung
                deadline = min(deadline, time.monotonic() + 10.0)
            time.sleep(0.02)
        self.poll_stages()
        self.stop()
        return self._result(killed)

    def stop(self) -> None:
        """Halt through the management console, then kill the process group."""
        if self.popen is None:
            return
        if self.popen.poll() is None:
            mconsole = shutil.which("uml_mconsole")
            socket_path = os.path.join(self.workdir, self.umid, "mconsole")
            if mconsole and os.path.exists(socket_path):
                try:
                    subprocess.run([mconsole, socket_path, "halt"], capture_output=True, timeout=3)
                    self.popen.wait(3)
                except (subprocess.TimeoutExpired, OSError):
                    pass
        # linux.uml forks a process per guest process; the group takes them all
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.popen.wait(5)
        except subprocess.TimeoutExpired:
            pass

    def _result(self, killed: bool) -> GuestResult:
        result = GuestResult(killed=killed, stages=dict(self._stages), workdir=self.workdir,
                             seconds=round(time.monotonic() - self._launched, 3))
        try:
            with open(os.path.join(self.shared, "result.json")) as f:
                result.guest = json.load(f)
        except (OSError, ValueError):
            result.guest = {}
        try:
            with open(os.path.join(self.workdir, "console.log"), "rb") as f:
                text = f.read().decode(errors="replace").replace("\r\n", "\n")
            result.console_tail = "\n".join(text.strip().splitlines()[-15:])
        except OSError:
            pass
        last = list(self._stages)[-1] if self._stages else "launch"  # in the order reached
        if killed:
            result.reason = f"guest hung after stage '{last}' and was killed at its {self.timeout:.0f} s deadline"
        elif "done" not in self._stages:
            result.reason = f"guest stopped after stage '{last}' without finishing (see {self.workdir}/console.log)"
        elif result.guest.get("error"):
            result.reason = result.guest["error"]
        result.ok = not result.reason
        return result

    def close(self) -> None:
        self.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> "LinuxGuest":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def run_guest(host_iface: str, steps: List[Dict], **kwargs) -> GuestResult:
    """Boot, run ``steps``, and return the result; the guest is gone afterwards."""
    guest = LinuxGuest(host_iface, steps, **kwargs).start()
    try:
        return guest.wait()
    finally:
        guest.stop()

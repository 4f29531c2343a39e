"""Init of the user-mode Linux guest: load aoe.ko, find the target, run the steps.

Runs as PID 1 inside the guest (``python -m aoeconform.lab.guest CONFIG``,
from the host's root file system mounted read-only as hostfs). It talks to
the host only through a directory the host shares read-write
(``config["host_dir"]``): ``stages`` gets one line per step as it starts,
with the guest's uptime, so the host sees how far a guest got even when it
hangs; ``result.json`` is written at the end (and after every step, so a
killed guest leaves what it had). The guest powers itself off.

Standard library only, and nothing that needs the network or a terminal.
"""

from __future__ import annotations

import ctypes
import json
import os
import sys
import threading
import time
import traceback
from typing import Dict, List, Optional

from aoeconform.lab.workload import WorkloadSpec, run_workload

SHARED = "/tmp/aoeconform"
#: x86-64 system call numbers (UML runs x86-64 user processes)
SYS_FINIT_MODULE = 313
LINUX_REBOOT_MAGIC1 = 0xFEE1DEAD
LINUX_REBOOT_MAGIC2 = 672274793
LINUX_REBOOT_CMD_POWER_OFF = 0x4321FEDC
MS_RDONLY = 1

_libc = ctypes.CDLL(None, use_errno=True)


def uptime() -> float:
    with open("/proc/uptime") as f:
        return float(f.read().split()[0])


def mount(source: str, target: str, fstype: str, data: str = "", flags: int = 0) -> None:
    os.makedirs(target, exist_ok=True)
    if _libc.mount(source.encode(), target.encode(), fstype.encode(), flags, data.encode() or None) != 0:
        err = ctypes.get_errno()
        if err != 16:  # EBUSY: already mounted (devtmpfs by the kernel)
            raise OSError(err, f"mount {fstype} on {target}: {os.strerror(err)}")


def load_module(path: str, params: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        if _libc.syscall(SYS_FINIT_MODULE, fd, params.encode(), 0) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"finit_module {path}: {os.strerror(err)}")
    finally:
        os.close(fd)


def power_off() -> None:
    os.sync()
    _libc.reboot(LINUX_REBOOT_CMD_POWER_OFF)
    # only reached if reboot failed: the host kills us at its deadline
    while True:
        time.sleep(60)


class Guest:
    def __init__(self, config: Dict) -> None:
        self.config = config
        self.result: Dict = {"stages": [], "steps": [], "driver_errors": [], "error": ""}
        self._errors_lock = threading.Lock()

    # -- reporting to the host -----------------------------------------------

    def stage(self, name: str) -> None:
        t = uptime()
        self.result["stages"].append([name, t])
        with open(os.path.join(SHARED, "stages"), "a") as f:
            f.write(f"{name} {t:.3f}\n")

    def save(self) -> None:
        with self._errors_lock:
            data = json.dumps(self.result, indent=1, default=str)
        tmp = os.path.join(SHARED, "result.json.tmp")
        with open(tmp, "w") as f:
            f.write(data)
        os.replace(tmp, os.path.join(SHARED, "result.json"))

    # -- set-up ---------------------------------------------------------------

    def mounts(self) -> None:
        mount("proc", "/proc", "proc")
        mount("sysfs", "/sys", "sysfs")
        mount("devtmpfs", "/dev", "devtmpfs")
        mount("tmpfs", "/tmp", "tmpfs")
        mount("hostfs", SHARED, "hostfs", self.config["host_dir"])

    def link_up(self) -> None:
        iface, mtu = self.config.get("iface", "vec0"), int(self.config.get("mtu", 1500))
        base = f"/sys/class/net/{iface}"
        if not os.path.exists(base):
            raise RuntimeError(f"the guest has no interface {iface} (is the host interface up?)")
        import fcntl
        import socket
        import struct

        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            SIOCSIFMTU, SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8922, 0x8913, 0x8914, 0x1
            fcntl.ioctl(sock, SIOCSIFMTU, struct.pack("16si", iface.encode(), mtu))
            flags = struct.unpack_from("H", fcntl.ioctl(sock, SIOCGIFFLAGS, struct.pack("16sH", iface.encode(), 0)), 16)[0]
            fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sH", iface.encode(), flags | IFF_UP))
        finally:
            sock.close()

    def _read_errors(self) -> None:
        # /dev/etherd/err blocks until the driver has a message; each read is one line
        try:
            fd = os.open("/dev/etherd/err", os.O_RDONLY)
        except OSError:
            return
        while True:
            try:
                data = os.read(fd, 1024)
            except OSError:
                return
            if not data:
                time.sleep(0.05)
                continue
            for line in data.decode(errors="replace").splitlines():
                if line.strip():
                    with self._errors_lock:
                        self.result["driver_errors"].append([round(uptime(), 3), line.strip()])

    # -- steps ------------------------------------------------------------------

    @property
    def device(self) -> str:
        return f"/dev/etherd/e{self.config['shelf']}.{self.config['slot']}"

    @property
    def sysfs(self) -> str:
        return f"/sys/block/etherd!e{self.config['shelf']}.{self.config['slot']}"

    def step_load(self, step: Dict) -> Dict:
        params = " ".join(f"{k}={v}" for k, v in step.get("params", {}).items())
        load_module(self.config["module"], params)
        threading.Thread(target=self._read_errors, daemon=True).start()
        return {"params": params}

    def step_wait_device(self, step: Dict) -> Dict:
        timeout = float(step.get("timeout", 10))
        # The driver broadcasts Query Config once at load and then once a
        # minute; on a lossy link that one frame or its answer may be lost,
        # so ask again the way a user would (0 = never).
        rediscover = float(step.get("rediscover", 2.0))
        start = time.monotonic()
        deadline, next_discover = start + timeout, start + rediscover
        discoveries = 0
        while time.monotonic() < deadline:
            if os.path.exists(self.device) and self._capacity() > 0:
                self.stage("device")
                return {"found": True, "info": self.device_info(), "rediscoveries": discoveries}
            if rediscover and time.monotonic() >= next_discover:
                try:
                    with open("/dev/etherd/discover", "w") as f:
                        f.write("1")
                    discoveries += 1
                except OSError:
                    pass
                next_discover = time.monotonic() + rediscover
            time.sleep(0.05)
        outcome = {"found": False, "info": self.device_info(), "rediscoveries": discoveries}
        if step.get("expect_absent"):
            return outcome
        outcome["error"] = f"no {self.device} within {timeout:g} s"
        return outcome

    def _capacity(self) -> int:
        try:
            with open(os.path.join(self.sysfs, "size")) as f:
                return int(f.read())
        except (OSError, ValueError):
            return 0

    def device_info(self) -> Dict:
        info: Dict = {"device": self.device, "present": os.path.exists(self.device)}
        for name in ("size", "payload", "firmware-version", "mac", "netif", "state"):
            try:
                with open(os.path.join(self.sysfs, name)) as f:
                    info[name] = f.read().strip()
            except OSError:
                pass
        params = "/sys/module/aoe/parameters"
        if os.path.isdir(params):
            info["parameters"] = {}
            for name in sorted(os.listdir(params)):
                try:
                    with open(os.path.join(params, name)) as f:
                        info["parameters"][name] = f.read().strip()
                except OSError:
                    pass
        stat = os.path.join(self.sysfs, "stat")
        try:
            with open(stat) as f:
                fields = [int(x) for x in f.read().split()]
            # Documentation/block/stat.rst: reads, -, sectors read, -, writes, -, sectors written
            info["stat"] = {"reads": fields[0], "read_sectors": fields[2], "writes": fields[4],
                            "write_sectors": fields[6], "in_flight": fields[8]}
        except (OSError, ValueError, IndexError):
            pass
        return info

    def step_write(self, step: Dict) -> Dict:
        with open(step["path"], "w") as f:
            f.write(str(step["text"]))
        return {}

    def step_sleep(self, step: Dict) -> Dict:
        time.sleep(float(step.get("seconds", 1)))
        return {}

    def step_read(self, step: Dict) -> Dict:
        """Read ``size`` bytes from ``offset`` (O_DIRECT) and throw them away:
        a warm-up that lets the driver's RTT estimate settle."""
        from aoeconform.lab.workload import read_region

        seconds = read_region(self.device, int(step.get("offset", 0)), int(step.get("size", 1 << 20)))
        return {"seconds": seconds}

    def step_wait_host(self, step: Dict) -> Dict:
        """Wait until the host creates ``file`` in the shared directory (a handshake:
        the host changes something on the link, e.g. turns impairments on)."""
        path = os.path.join(SHARED, step["file"])
        deadline = time.monotonic() + float(step.get("timeout", 60))
        while not os.path.exists(path):
            if time.monotonic() >= deadline:
                return {"error": f"the host did not answer ({step['file']})"}
            time.sleep(0.01)
        return {}

    def step_workload(self, step: Dict) -> Dict:
        spec = WorkloadSpec.from_dict(step.get("spec", {}))
        spec.check(self._capacity() * 512)
        result = run_workload(self.device, spec, on_phase=lambda name: self.stage(f"workload-{name}"))
        return {"workload": result.as_dict(), "info": self.device_info()}

    def run(self) -> None:
        self.mounts()
        self.stage("init")
        try:
            self.link_up()
            self.stage("link")
            for step in self.config.get("steps", []):
                kind = step["kind"]
                self.stage(kind)
                try:
                    outcome = getattr(self, f"step_{kind.replace('-', '_')}")(step)
                except Exception as exc:  # reported to the host, then the next step
                    outcome = {"error": f"{type(exc).__name__}: {exc}"}
                outcome["kind"] = kind
                self.result["steps"].append(outcome)
                self.save()
                if outcome.get("error") and step.get("required", True):
                    self.result["error"] = f"step {kind}: {outcome['error']}"
                    break
        except Exception as exc:
            self.result["error"] = f"{type(exc).__name__}: {exc}"
            self.result["traceback"] = traceback.format_exc()
        time.sleep(0.2)  # the last lines of /dev/etherd/err
        self.result["final"] = self.device_info() if os.path.isdir("/sys/module/aoe") else {}
        self.stage("done")
        self.save()


def main(argv: Optional[List[str]] = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    with open(argv[0]) as f:
        config = json.load(f)
    guest = Guest(config)
    try:
        guest.run()
    except Exception:
        traceback.print_exc()
    power_off()


if __name__ == "__main__":
    main()

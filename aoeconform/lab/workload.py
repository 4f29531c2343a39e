"""The I/O a Linux guest runs on an AoE block device: seeded, checkable.

Three phases over a region of the disk (``offset``, ``size``):

* ``seq``: the whole region written front to back in ``block``-byte writes,
  with data drawn from the seed;
* ``random``: ``random_writes`` writes of 4 KiB to ``block`` bytes at
  4 KiB-aligned offsets inside the region, each with its own seeded data;
* ``verify``: the whole region read back and compared with what was
  written, sector by sector.

Every write and read uses O_DIRECT: buffered reads of an AoE device now and
then stall for good inside user-mode Linux (reference §11), and O_DIRECT
also means a completed write has been acknowledged by the target, not just
copied into the page cache, so "acknowledged" has its plain meaning.

The expected contents are a function of the parameters alone
(``expected_region``), so the host can check a target's image file after
the guest is gone. Standard library only: this module runs inside the
guest, before anything else is importable.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import random
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

SECTOR = 512
#: O_DIRECT needs buffers, offsets and lengths aligned; 4 KiB serves every device here
ALIGN = 4096
MAX_MISMATCHES = 16


@dataclass
class WorkloadSpec:
    seed: int = 1
    #: bytes from the start of the device where the region begins
    offset: int = 0
    size: int = 4 << 20
    #: bytes per sequential write and read, and the largest random write
    block: int = 64 << 10
    random_writes: int = 64

    def check(self, capacity_bytes: Optional[int] = None) -> None:
        for name in ("offset", "size", "block"):
            value = getattr(self, name)
            if value < 0 or value % ALIGN:
                raise ValueError(f"workload {name} {value} must be a non-negative multiple of {ALIGN}")
        if self.size == 0 or self.block == 0:
            raise ValueError("workload size and block must be positive")
        if self.random_writes < 0:
            raise ValueError("workload random_writes must not be negative")
        if capacity_bytes is not None and self.offset + self.size > capacity_bytes:
            raise ValueError(f"workload region {self.offset}+{self.size} passes the device's end ({capacity_bytes} bytes)")

    @classmethod
    def from_dict(cls, data: Dict) -> "WorkloadSpec":
        known = {k: int(v) for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def sequential_block(spec: WorkloadSpec, pos: int) -> bytes:
    """The seq phase's data for the block at ``pos`` (generated per block, so the
    guest never holds the whole region: page faults are dear in user-mode Linux)."""
    n = min(spec.block, spec.size - pos)
    return random.Random(f"{spec.seed}:{pos}").randbytes(n)


def random_writes(spec: WorkloadSpec) -> List[Tuple[int, bytes]]:
    """(offset within the region, data) of each random write, in order."""
    rng = random.Random(spec.seed ^ 0x5EED5EED)
    writes = []
    units = spec.size // ALIGN
    for _ in range(spec.random_writes):
        length = rng.randint(1, max(1, min(spec.block, spec.size) // ALIGN)) * ALIGN
        start = rng.randrange(0, units - length // ALIGN + 1) * ALIGN
        writes.append((start, rng.randbytes(length)))
    return writes


class ExpectedRegion:
    """What each block of the region holds after the seq and random phases."""

    def __init__(self, spec: WorkloadSpec, writes: List[Tuple[int, bytes]]) -> None:
        self.spec = spec
        self.overlaps: Dict[int, List[Tuple[int, bytes]]] = {}
        for start, data in writes:
            first, last = start // spec.block, (start + len(data) - 1) // spec.block
            for index in range(first, last + 1):
                self.overlaps.setdefault(index, []).append((start, data))

    def block(self, pos: int) -> bytes:
        data = bytearray(sequential_block(self.spec, pos))
        end = pos + len(data)
        for start, written in self.overlaps.get(pos // self.spec.block, ()):
            lo, hi = max(start, pos), min(start + len(written), end)
            data[lo - pos:hi - pos] = written[lo - start:hi - start]
        return bytes(data)


def expected_region(spec: WorkloadSpec) -> bytes:
    """The region's contents after the seq and random phases."""
    expected = ExpectedRegion(spec, random_writes(spec))
    return b"".join(expected.block(pos) for pos in range(0, spec.size, spec.block))


@dataclass
class PhaseResult:
    name: str
    bytes: int = 0
    seconds: float = 0.0
    requests: int = 0
    error: str = ""

    @property
    def mb_per_s(self) -> float:
        return self.bytes / self.seconds / 1e6 if self.seconds > 0 else 0.0


@dataclass
class WorkloadResult:
    spec: Dict
    phases: List[Dict] = field(default_factory=list)
    expected_sha256: str = ""
    read_sha256: str = ""
    #: device sectors (absolute) whose read-back differs from what was written
    mismatched_sectors: List[int] = field(default_factory=list)
    mismatch_count: int = 0
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error and self.mismatch_count == 0 and self.read_sha256 == self.expected_sha256

    def as_dict(self) -> Dict:
        data = asdict(self)
        data["ok"] = self.ok
        return data


def _aligned(size: int) -> mmap.mmap:
    # anonymous mappings are page aligned, as O_DIRECT wants
    return mmap.mmap(-1, max(size, ALIGN))


def _pwrite_all(fd: int, buf, offset: int) -> None:
    done = 0
    view = memoryview(buf)
    while done < len(view):
        n = os.pwrite(fd, view[done:], offset + done)
        if n <= 0:
            raise OSError(f"short write at byte {offset + done}")
        done += n


def _pread_all(fd: int, buf, offset: int) -> None:
    done = 0
    view = memoryview(buf)
    while done < len(view):
        n = os.preadv(fd, [view[done:]], offset + done)
        if n <= 0:
            raise OSError(f"short read at byte {offset + done} (end of device?)")
        done += n


def open_device(path: str, direct: bool = True) -> int:
    flags = os.O_RDWR | (getattr(os, "O_DIRECT", 0) if direct else 0)
    return os.open(path, flags)


def run_workload(
    path: str,
    spec: WorkloadSpec,
    *,
    direct: bool = True,
    on_phase: Optional[Callable[[str], None]] = None,
    clock: Callable[[], float] = time.monotonic,
) -> WorkloadResult:
    """Write, overwrite and read back ``spec``'s region of ``path``."""
    result = WorkloadResult(spec=asdict(spec))
    writes = random_writes(spec)
    expected = ExpectedRegion(spec, writes)
    fd = open_device(path, direct)
    mapping = _aligned(spec.block)
    buf = memoryview(mapping)
    view: Optional[memoryview] = None
    phase = PhaseResult("seq")
    try:
        # seq: the sequential pattern, block by block (generated as it goes);
        # random: the overwrites at their offsets
        sequential = ((pos, sequential_block(spec, pos)) for pos in range(0, spec.size, spec.block))
        for name, blocks in (("seq", sequential), ("random", writes)):
            phase = PhaseResult(name)
            if on_phase:
                on_phase(name)
            start = clock()
            for pos, data in blocks:
                buf[:len(data)] = data
                _pwrite_all(fd, buf[:len(data)], spec.offset + pos)
                phase.bytes += len(data)
                phase.requests += 1
            phase.seconds = clock() - start
            result.phases.append(asdict(phase))

        phase = PhaseResult("verify")
        if on_phase:
            on_phase("verify")
        digest, expected_digest = hashlib.sha256(), hashlib.sha256()
        start = clock()
        mismatches: List[int] = []
        for pos in range(0, spec.size, spec.block):
            n = min(spec.block, spec.size - pos)
            view = buf[:n]
            _pread_all(fd, view, spec.offset + pos)
            digest.update(view)
            want = expected.block(pos)
            expected_digest.update(want)
            phase.bytes += n
            phase.requests += 1
            if view != want:
                for s in range(0, n, SECTOR):
                    if view[s:s + SECTOR] != want[s:s + SECTOR]:
                        result.mismatch_count += 1
                        if len(mismatches) < MAX_MISMATCHES:
                            mismatches.append((spec.offset + pos + s) // SECTOR)
        phase.seconds = clock() - start
        result.phases.append(asdict(phase))
        result.read_sha256 = digest.hexdigest()
        result.expected_sha256 = expected_digest.hexdigest()
        result.mismatched_sectors = mismatches
    except OSError as exc:
        phase.error = str(exc)
        result.phases.append(asdict(phase))
        result.error = f"{phase.name}: {exc}"
    finally:
        # the mapping closes only once no view of it is left
        view = None
        buf.release()
        mapping.close()
        os.close(fd)
    return result


def phase_rate(result: Dict, name: str) -> float:
    """MB/s of one phase in a result dict (0 if absent)."""
    for phase in result.get("phases", []):
        if phase["name"] == name and phase["seconds"] > 0:
            return phase["bytes"] / phase["seconds"] / 1e6
    return 0.0


def read_region(path: str, offset: int, size: int, block: int = 64 << 10) -> float:
    """Read a region with O_DIRECT, discarding the data; returns the seconds it took."""
    fd = open_device(path, True)
    mapping = _aligned(block)
    buf = memoryview(mapping)
    try:
        start = time.monotonic()
        for pos in range(0, size, block):
            _pread_all(fd, buf[:min(block, size - pos)], offset + pos)
        return time.monotonic() - start
    finally:
        buf.release()
        mapping.close()
        os.close(fd)

"""Backing stores for the reference target: a file (sparse is fine) or memory.

Both offer the same four calls the target logic needs, with byte offsets:
``readinto(view, offset)`` fills a writable buffer and zero-fills whatever
lies past the end, ``write(data, offset)``, ``flush()`` and ``close()``.
``size`` is in bytes; the target exports ``size // 512`` sectors.
"""

from __future__ import annotations

import mmap
import os
import re

from aoeconform.errors import UsageError

SECTOR_SIZE = 512
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str) -> int:
    """'64M', '1G', '4096', '512KiB' to bytes; UsageError on anything else."""
    match = re.fullmatch(r"\s*(\d+)\s*([KMGT]?)(?:i?B)?\s*", text, re.IGNORECASE)
    if not match:
        raise UsageError(f"cannot read {text!r} as a size; write it like 64M, 1G or 1048576")
    return int(match.group(1)) * _UNITS[match.group(2).upper()]


class MemoryImage:
    """An image held in a bytearray: fast, private to the process, lost at exit."""

    def __init__(self, size: int) -> None:
        if size < SECTOR_SIZE:
            raise UsageError(f"an image of {size} bytes holds no sector; give at least 512 bytes")
        self.size = size
        self._data = bytearray(size)
        self._view = memoryview(self._data)
        self.name = f"mem:{size}"
        self.readonly = False

    def readinto(self, view, offset: int) -> int:
        count = len(view)
        available = max(0, min(count, self.size - offset))
        view[:available] = self._view[offset:offset + available]
        if available < count:
            view[available:] = bytes(count - available)
        return available

    def write(self, data, offset: int) -> int:
        count = max(0, min(len(data), self.size - offset))
        self._view[offset:offset + count] = data[:count]
        return count

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


class FileImage:
    """An image file used in place, through a shared memory mapping.

    Reads and writes copy to and from the page cache without a system call,
    which is what keeps the Python target near vblade's speed. ``sync`` opens
    the file O_DSYNC and writes with ``pwrite``, so an acknowledged write is
    on stable storage; ``flush`` (FLUSH CACHE) always msyncs and fsyncs. The
    file must not shrink while it is served (the mapping would fault).
    """

    def __init__(self, path: str, readonly: bool = False, sync: bool = False) -> None:
        flags = os.O_RDONLY if readonly else os.O_RDWR
        if sync and not readonly:
            flags |= os.O_DSYNC
        try:
            self._fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            raise UsageError(f"image {path} does not exist; create one with `truncate -s 64M {path}` or use mem:64M") from None
        except PermissionError:
            raise UsageError(f"no permission to open image {path}{'' if readonly else ' for writing'}; check its mode or add --readonly") from None
        except IsADirectoryError:
            raise UsageError(f"image {path} is a directory; name a file or use mem:SIZE") from None
        try:
            size = os.lseek(self._fd, 0, os.SEEK_END)
            if size < SECTOR_SIZE:
                raise UsageError(f"image {path} is {size} bytes, less than one sector; enlarge it with `truncate -s 64M {path}`")
            self._map = mmap.mmap(self._fd, size, mmap.MAP_SHARED, mmap.PROT_READ if readonly else mmap.PROT_READ | mmap.PROT_WRITE)
        except BaseException:
            os.close(self._fd)
            raise
        self._view = memoryview(self._map)
        self.size = size
        self.name = path
        self.readonly = readonly
        self.sync = sync
        if sync:
            # an instance attribute, so the per-sector path has no branch
            self.write = self._write_through  # type: ignore[method-assign]

    def readinto(self, view, offset: int) -> int:
        count = len(view)
        if offset + count <= self.size:
            view[:] = self._view[offset:offset + count]
            return count
        # past the end of the file (only reachable through a quirk)
        available = max(0, self.size - offset)
        view[:available] = self._view[offset:offset + available]
        view[available:] = bytes(count - available)
        return available

    def write(self, data, offset: int) -> int:
        count = max(0, min(len(data), self.size - offset))
        self._view[offset:offset + count] = data[:count]
        return count

    def _write_through(self, data, offset: int) -> int:
        count = max(0, min(len(data), self.size - offset))
        done = 0
        while done < count:
            done += os.pwrite(self._fd, data[done:count], offset + done)
        return done

    def flush(self) -> None:
        if not self.readonly:
            self._map.flush()
            os.fsync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            try:
                self._view.release()
                self._map.close()
            except BufferError:
                pass  # a view is still alive somewhere; the mapping goes with it
            os.close(self._fd)
            self._fd = -1


def open_image(spec: str, readonly: bool = False, sync: bool = False):
    """``mem:SIZE`` or a file path, as the command line takes it."""
    if spec.startswith("mem:"):
        image = MemoryImage(parse_size(spec[4:]))
        image.readonly = readonly
        return image
    return FileImage(spec, readonly=readonly, sync=sync)


class SparseImage:
    """A memory image that stores only the sectors written, so a disk of
    more than 2^28 sectors costs nothing (the same calls as MemoryImage)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.name = f"sparse:{size}"
        self.readonly = False
        self._sectors: dict[int, bytes] = {}

    def readinto(self, view, offset: int) -> int:
        count = len(view)
        done = 0
        while done < count:
            pos = offset + done
            sector, within = divmod(pos, 512)
            n = min(512 - within, count - done)
            if pos >= self.size:
                view[done:] = bytes(count - done)
                return done
            data = self._sectors.get(sector)
            view[done:done + n] = data[within:within + n] if data is not None else bytes(n)
            done += n
        return count

    def write(self, data, offset: int) -> int:
        data = bytes(data)
        count = max(0, min(len(data), self.size - offset))
        done = 0
        while done < count:
            pos = offset + done
            sector, within = divmod(pos, 512)
            n = min(512 - within, count - done)
            old = bytearray(self._sectors.get(sector, bytes(512)))
            old[within:within + n] = data[done:done + n]
            self._sectors[sector] = bytes(old)
            done += n
        return count

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

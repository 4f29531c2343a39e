"""Findings: what the oracles caught, saved so that anyone can replay it.

Each finding is written to the output directory as

* ``<kind>-<hash>-seed<N>.json``: the exact request frames in hex (the
  original sequence and, once shrunk, the minimal one), the replies seen,
  the rule broken, the case index and mutations, and how to replay it;
* ``<kind>-<hash>-seed<N>.pcap``: the original exchange, for Wireshark;
* ``<kind>-<hash>-seed<N>.min.pcap``: the shrunk reproducer and its replies.

The hash is over the original request frames, so the same failure found
again under the same seed gets the same name instead of a new file.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from typing import List, Optional

from aoeconform.errors import UsageError
from aoeconform.transport.pcap import PcapWriter

from .oracle import KINDS

FORMAT = "aoeconform-fuzz-finding/1"


def command_class(command: Optional[int]):
    """Findings are told apart by kind and by this: a known command (0-3),
    'undefined' (4-0xEF) or 'vendor' (0xF0-0xFF)."""
    if command is None or command < 4:
        return command
    return "vendor" if command >= 0xF0 else "undefined"


@dataclass
class Finding:
    kind: str
    detail: str
    seed: int
    #: the request frames, in the order sent; for a reply anomaly the last
    #: one is the request that was answered wrongly
    frames: List[bytes]
    replies: List[bytes] = field(default_factory=list)
    case_index: Optional[int] = None
    mutations: tuple = ()
    #: how many times this kind was seen for this command in the run
    count: int = 1
    shrunk: Optional[List[bytes]] = None
    shrunk_replies: List[bytes] = field(default_factory=list)
    #: True/False once replayed during shrinking; None if never tried
    reproduced: Optional[bool] = None
    note: str = ""
    target: dict = field(default_factory=dict)
    paths: List[str] = field(default_factory=list)

    @property
    def command(self) -> Optional[int]:
        if self.kind == "unresponsive" or not self.frames or len(self.frames[-1]) < 20:
            return None
        return self.frames[-1][19]

    @property
    def signature(self) -> tuple:
        return (self.kind, command_class(self.command))

    @property
    def digest(self) -> str:
        h = hashlib.sha256()
        for frame in self.frames or self.replies:
            h.update(len(frame).to_bytes(4, "big") + frame)
        return h.hexdigest()[:12]

    @property
    def name(self) -> str:
        return f"{self.kind}-{self.digest}-seed{self.seed}"

    @property
    def reproducer(self) -> List[bytes]:
        return self.shrunk if self.shrunk is not None else self.frames

    def summary(self) -> str:
        rule = KINDS.get(self.kind, (0, ""))[0]
        size = ""
        if self.shrunk is not None:
            size = f"; shrunk to {len(self.shrunk)} frame(s), last {len(self.shrunk[-1]) if self.shrunk else 0} bytes"
        where = f" case {self.case_index}" if self.case_index is not None else ""
        return f"{self.kind} (rule {rule}){where}: {self.detail}{size}"

    def as_dict(self) -> dict:
        return {
            "format": FORMAT,
            "kind": self.kind,
            "rule": KINDS.get(self.kind, (0, ""))[0],
            "statement": KINDS.get(self.kind, (0, ""))[1],
            "detail": self.detail,
            "seed": self.seed,
            "case_index": self.case_index,
            "mutations": list(self.mutations),
            "count": self.count,
            "reproduced": self.reproduced,
            "note": self.note,
            "target": self.target,
            "frames": [f.hex() for f in self.frames],
            "replies": [r.hex() for r in self.replies],
            "shrunk": None if self.shrunk is None else [f.hex() for f in self.shrunk],
            "shrunk_replies": [r.hex() for r in self.shrunk_replies],
            "replay": f"aoeconform fuzz --target IFACE --replay {self.name}.json",
        }

    @classmethod
    def from_dict(cls, data: dict) -> "Finding":
        if data.get("format") != FORMAT:
            raise UsageError(f"not a fuzz finding file (format {data.get('format')!r}, expected {FORMAT!r})")
        shrunk = data.get("shrunk")
        return cls(
            kind=data["kind"],
            detail=data.get("detail", ""),
            seed=data.get("seed", 0),
            frames=[bytes.fromhex(f) for f in data.get("frames", [])],
            replies=[bytes.fromhex(r) for r in data.get("replies", [])],
            case_index=data.get("case_index"),
            mutations=tuple(data.get("mutations", ())),
            count=data.get("count", 1),
            shrunk=None if shrunk is None else [bytes.fromhex(f) for f in shrunk],
            shrunk_replies=[bytes.fromhex(r) for r in data.get("shrunk_replies", [])],
            reproduced=data.get("reproduced"),
            note=data.get("note", ""),
            target=data.get("target", {}),
        )


def _write_pcap(path: str, requests: List[bytes], replies: List[bytes]) -> None:
    with open(path, "wb") as f:
        writer = PcapWriter(f)
        for frame in requests:
            writer.write(frame)
        for frame in replies:
            writer.write(frame)
        writer.close()


def save(finding: Finding, out_dir: str) -> List[str]:
    """Write (or rewrite) the finding's JSON and pcaps; returns their paths."""
    os.makedirs(out_dir, exist_ok=True)
    base = os.path.join(out_dir, finding.name)
    paths = [base + ".json", base + ".pcap"]
    _write_pcap(base + ".pcap", finding.frames, finding.replies)
    if finding.shrunk is not None:
        _write_pcap(base + ".min.pcap", finding.shrunk, finding.shrunk_replies)
        paths.append(base + ".min.pcap")
    tmp = base + ".json.tmp"
    with open(tmp, "w") as f:
        json.dump(finding.as_dict(), f, indent=1)
        f.write("\n")
    os.replace(tmp, base + ".json")
    finding.paths = paths
    return paths


def load(path: str) -> Finding:
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        raise UsageError(f"--replay {path}: no such file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"--replay {path}: not JSON ({exc})") from None
    try:
        return Finding.from_dict(data)
    except (KeyError, ValueError, TypeError) as exc:
        if isinstance(exc, UsageError):
            raise
        raise UsageError(f"--replay {path}: malformed finding file ({exc})") from None

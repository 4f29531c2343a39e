"""Findings: what the oracles caught, saved so that anyone can replay it.

Each finding is written to the output directory as

* ``<kind>-<hash>-seed<N>.json``: the exact request frames in hex (the
  original sequence and, once shrunk, the minimal one), the replies seen,
  the rule broken, the case index and mutations, and how to replay it;
* ``<kind>-<hash>-seed<N>.pcap``: the original exchange, for Wireshark;
* ``<kind>-<hash>-seed<N>.min.pcap``: the shrunk reproducer and its replies.

The hash is over the original request frames, so the same failure found
again under the same seed gets the same name instead of a new file.

A finding's signature is (rule, command, field): the field its shrunk
trigger changes (see ``signature``), so one defect is one finding however
many requests show it. ``index.json`` in the output directory keeps every
signature saved there across runs: a finding seen before is counted in it,
not saved again. ``fuzz.json`` describes the last run.
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
INDEX_FORMAT = "aoeconform-fuzz-index/1"
RUN_FORMAT = "aoeconform-fuzz-run/1"
INDEX = "index.json"
RUN = "fuzz.json"


def command_class(command: Optional[int]):
    """Findings are told apart by kind and by this: a known command (0-3),
    'undefined' (4-0xEF) or 'vendor' (0xF0-0xFF)."""
    if command is None or command < 4:
        return command
    return "vendor" if command >= 0xF0 else "undefined"


#: kinds whose defect lies in how the target keys requests by tag, whatever
#: the command: one finding for all commands, its trigger field the tag
TAG_KINDS = frozenset({"stale-reply"})


def group_of(kind: str, command: Optional[int]) -> tuple:
    """How the engine groups anomalies before a finding is shrunk."""
    return (kind, "any") if kind in TAG_KINDS else (kind, command_class(command))


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
    #: what the shrunk trigger changes (see ``signature.classify``); None until classified
    trigger_command: Optional[str] = None
    trigger_field: Optional[str] = None
    #: the output directory's index had this signature from an earlier run
    seen_before: bool = False
    #: seconds of fuzzing before it was found (None when not known)
    found_after: Optional[float] = None
    #: a known deviation of the target: the reason its expectations file gives ("" if none)
    known: str = ""
    #: which fuzzer found it: "random" (one request judged alone) or "stateful" (a sequence judged by the model)
    engine: str = "random"
    #: how many of the reproducer's frames each step sends back to back (the stateful engine's steps;
    #: the random engine's requests that were in flight together); None: one at a time
    steps: Optional[List[int]] = None
    #: stateful: what each step does, in words (the shrunk hypothesis program)
    program: List[str] = field(default_factory=list)
    #: the rule broken, where the kind's rule in ``oracle.KINDS`` is not the one
    #: (a silence or a stop: the request's rule, see ``charge``; kinds only the model names)
    rule_number: Optional[int] = None

    @property
    def command(self) -> Optional[int]:
        if self.kind == "unresponsive" or not self.frames or len(self.frames[-1]) < 20:
            return None
        return self.frames[-1][19]

    @property
    def group(self) -> tuple:
        """How the engine groups anomalies before a finding is shrunk."""
        return group_of(self.kind, self.command)

    @property
    def rule(self) -> int:
        if self.rule_number:
            return self.rule_number
        return KINDS[self.kind][0] if self.kind in KINDS else 0

    @property
    def signature(self) -> str:
        """rule/command/field: one per distinct defect."""
        from .signature import command_label

        trigger = self.reproducer[-1] if self.reproducer else b""
        command = self.trigger_command or command_label(None if self.kind == "unresponsive" or len(trigger) < 20 else trigger[19])
        return f"rule{self.rule}/{self.kind}/{command}/{self.trigger_field or 'unclassified'}"

    @property
    def replay_command(self) -> str:
        path = self.paths[0] if self.paths else f"{self.name}.json"
        quirks = self.target.get("quirks")
        if quirks is not None:
            return " ".join(["aoeconform replay", path] + [f"--quirk {q}" for q in quirks])
        return f"aoeconform replay {path} --target {self.target.get('iface') or 'IF'}"

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
        size = ""
        if self.shrunk is not None and self.steps is not None:
            size = f"; shrunk to {len(self.steps)} step(s), {len(self.shrunk)} frame(s)"
        elif self.shrunk is not None:
            size = f"; shrunk to {len(self.shrunk)} frame(s), last {len(self.shrunk[-1]) if self.shrunk else 0} bytes"
        where = f" case {self.case_index}" if self.case_index is not None else ""
        return f"{self.signature}{where}: {self.detail}{size}"

    def as_dict(self) -> dict:
        return {
            "format": FORMAT,
            "kind": self.kind,
            "rule": self.rule,
            "statement": KINDS.get(self.kind, (0, ""))[1],
            "detail": self.detail,
            "seed": self.seed,
            "case_index": self.case_index,
            "found_after": None if self.found_after is None else round(self.found_after, 3),
            "mutations": list(self.mutations),
            "count": self.count,
            "reproduced": self.reproduced,
            "note": self.note,
            "target": self.target,
            "frames": [f.hex() for f in self.frames],
            "replies": [r.hex() for r in self.replies],
            "shrunk": None if self.shrunk is None else [f.hex() for f in self.shrunk],
            "shrunk_replies": [r.hex() for r in self.shrunk_replies],
            "signature": self.signature,
            "trigger_command": self.trigger_command,
            "trigger_field": self.trigger_field,
            "replay": self.replay_command,
            "engine": self.engine,
            "steps": self.steps,
            "program": list(self.program),
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
            trigger_command=data.get("trigger_command"),
            trigger_field=data.get("trigger_field"),
            engine=data.get("engine", "random"),
            steps=data.get("steps"),
            program=list(data.get("program") or []),
            rule_number=data.get("rule"),
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


def load_index(out_dir: str) -> dict:
    """signature -> entry, from the output directory's index ({} if none)."""
    try:
        with open(os.path.join(out_dir, INDEX)) as f:
            data = json.load(f)
    except (FileNotFoundError, NotADirectoryError):
        return {}
    except (OSError, ValueError) as exc:
        raise UsageError(f"--out {out_dir}: {INDEX} is unreadable ({exc}); move it away to start a new index") from None
    if not isinstance(data, dict) or data.get("format") != INDEX_FORMAT or not isinstance(data.get("findings"), dict):
        raise UsageError(f"--out {out_dir}: {INDEX} is not a fuzz index (format {INDEX_FORMAT})")
    return data["findings"]


def store(finding: Finding, out_dir: str) -> bool:
    """Save a finding unless the index already holds its signature (then it
    points at the saved one); True if written."""
    known = load_index(out_dir).get(finding.signature)
    if known is not None:
        finding.seen_before = True
        finding.paths = [os.path.join(out_dir, known["file"])]
        return False
    save(finding, out_dir)
    return True


def _dump(path: str, data: dict) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1)
        f.write("\n")
    os.replace(tmp, path)


def record_run(out_dir: str, result, findings: List[Finding], start_index: int = 0) -> str:
    """Count this run's findings into the index and write fuzz.json; returns its path."""
    os.makedirs(out_dir, exist_ok=True)
    index = load_index(out_dir)
    rows = []
    for f in findings:
        new = f.signature not in index
        if new:
            save(f, out_dir)  # again: its count is final now
            index[f.signature] = {"rule": f.rule, "kind": f.kind, "file": os.path.basename(f.paths[0]),
                                          "count": 0, "runs": 0, "first_seed": f.seed, "replay": f.replay_command}
        entry: dict = index[f.signature]
        entry["count"] += f.count
        entry["runs"] += 1
        rows.append({"signature": f.signature, "rule": f.rule, "kind": f.kind, "count": f.count, "new": new, "known": f.known, "engine": f.engine,
                     **({"steps": len(f.steps)} if f.steps is not None else {}),
                     "detail": f.detail, "reproduced": f.reproduced, "file": os.path.join(out_dir, entry["file"]),
                     "replay": entry["replay"]})
    _dump(os.path.join(out_dir, INDEX), {"format": INDEX_FORMAT, "findings": index})
    seconds = round(result.seconds, 3)
    path = os.path.join(out_dir, RUN)
    _dump(path, {
        "format": RUN_FORMAT, "engine": getattr(result, "engine", "random"), "seed": result.seed, "start_index": start_index, "next_index": getattr(result, "next_index", 0) or start_index + result.cases,
        "cases": result.cases, "seconds": seconds, "cases_per_second": round(result.cases_per_second, 1),
        "replies": result.replies, "restarts": result.restarts, "stopped_early": result.stopped_early,
        **({"steps": result.steps} if getattr(result, "engine", "random") == "stateful" else {}),
        "findings": rows,
    })
    return path


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


#: an expectations file's entries for fuzz findings start with this, then a signature glob
EXPECTATION_PREFIX = "fuzz/"


def mark_known(findings: List[Finding], expectations: dict) -> None:
    """Mark each finding that an entry ``fuzz/<signature glob>: reason`` of an
    expectations file (the one the suites use for the target) names."""
    import fnmatch

    patterns = [(key[len(EXPECTATION_PREFIX):], reason) for key, reason in expectations.items() if key.startswith(EXPECTATION_PREFIX)]
    for f in findings:
        f.known = next((reason or "known deviation" for pattern, reason in patterns if fnmatch.fnmatchcase(f.signature, pattern)), "")

"""Per-failure evidence: a pcap of the case's frames and a replay file.

File names are the case id with slashes turned into double underscores, so
a failing input is found under its own name (never buried in a database).
"""

from __future__ import annotations

import json
import os
import re

from aoeconform import __version__
from aoeconform.scenario.results import CaseResult
from aoeconform.transport.pcap import PcapWriter

REPLAY_FORMAT = "aoeconform-replay/1"


def safe_name(result: CaseResult) -> str:
    name = re.sub(r"[^A-Za-z0-9_.+-]", "_", result.id.replace("/", "__"))
    return name if not result.repeat else f"{name}#{result.repeat + 1}"


def write_pcap(result: CaseResult, directory: str) -> str:
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, safe_name(result) + ".pcap")
    with PcapWriter(path) as writer:
        for frame in result.frames:
            writer.write(frame.raw, frame.time)
    return path


def replay_document(result: CaseResult, case_source: dict, context: dict) -> dict:
    return {
        "format": REPLAY_FORMAT,
        "harness_version": __version__,
        "id": result.id,
        "suite": result.suite,
        "file": result.file,
        "line": result.line,
        "outcome": result.outcome,
        "message": result.message,
        "seed": context.get("seed", 0),
        "lba_window": context.get("lba_window"),
        "target": context.get("target", {}),
        "case": case_source,
        "frames": [f.as_dict() for f in result.frames],
        "sent": [raw.hex() for raw in result.sent],
    }


def write_replay(result: CaseResult, case_source: dict, context: dict, directory: str) -> str:
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, safe_name(result) + ".replay.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(replay_document(result, case_source, context), f, indent=1, default=str)
        f.write("\n")
    return path

"""Writing every report of a run into --report-dir.

Per-failure pcaps and replay files are written as each case finishes; the
summary files (report.json, junit.xml, report.html, report.sarif,
manifest.json) are rewritten after every ``flush_every`` cases and once more
by ``close()``, which the command line calls in a ``finally`` block, so an
interrupted run still leaves reports for what ran.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from typing import Optional

from aoeconform import __version__
from aoeconform.errors import UsageError
from aoeconform.scenario.results import CaseResult

from .artifacts import write_pcap, write_replay
from .formats import write_atomic, write_json, write_junit, write_sarif
from .html import write_html
from .model import RunInfo

FILES = ("report.json", "junit.xml", "report.html", "report.sarif", "manifest.json")


def build_manifest(*, suites, endpoint, facts, options, argv=None, start=None) -> dict:
    return {
        "harness": "aoeconform",
        "harness_version": __version__,
        "python": sys.version.split()[0],
        "suites": [{"name": s.name, "path": s.path, "sha256": s.sha256, "cases": len(s.cases)} for s in suites],
        "suites_sha256": hashlib.sha256("".join(s.sha256 for s in suites).encode()).hexdigest(),
        "target_description": endpoint.description if endpoint else "",
        "interface": (endpoint.iface or endpoint.transport.name) if endpoint else "",
        "mtu": endpoint.mtu if endpoint else None,
        "harness_mac": endpoint.transport.mac.hex(":") if endpoint else "",
        "second_mac": endpoint.second_mac.hex(":") if endpoint else "",
        "second_mac_mode": endpoint.second_mode if endpoint else "",
        "target": facts.as_dict() if facts is not None else {},
        "seed": options.seed if options else 0,
        "lba_window": list(options.lba_window) if options and options.lba_window else None,
        "allow_write": options.allow_write if options else None,
        "command_line": " ".join(argv if argv is not None else sys.argv),
        "start_time": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(start or time.time())),
        "end_time": None,
    }


def prepare_report_dir(directory: str) -> None:
    """Make ``directory`` (and its failures/) and prove it is writable, before
    anything is sent: a place reports cannot go is a usage error, not a crash
    at the end of a long run. Permission bits do not stop root, so this writes
    a file rather than asking os.access()."""
    where = f"--report-dir {directory}"
    try:
        os.makedirs(os.path.join(directory, "failures"), exist_ok=True)
        for name in FILES:
            if os.path.isdir(os.path.join(directory, name)):
                raise UsageError(f"{where}: {name} there is a directory; reports cannot be written (choose another --report-dir)")
        probe = os.path.join(directory, f".aoeconform-write-test.{os.getpid()}")
        with open(probe, "w", encoding="utf-8") as f:
            f.write("")
        os.remove(probe)
    except OSError as exc:
        what = exc.strerror or str(exc)
        if isinstance(exc, (FileExistsError, NotADirectoryError)):
            what = "a part of the path is a file, not a directory"
        raise UsageError(f"{where}: cannot write reports there ({what}); choose a writable directory") from None


class ReportWriter:
    """A run listener that writes reports; ``cases_by_id`` supplies case sources for replay files."""

    def __init__(self, directory: str, run: RunInfo, cases_by_id: Optional[dict] = None, flush_every: int = 50,
                 context: Optional[dict] = None):
        self.directory = directory
        self.run = run
        self.cases_by_id = cases_by_id or {}
        self.flush_every = max(1, flush_every)
        self.context = context or {}
        self.written: list[str] = []
        prepare_report_dir(directory)
        self._since_flush = 0

    def case_started(self, case, repeat: int) -> None:
        pass

    def case_finished(self, result: CaseResult) -> None:
        self.run.results.append(result)
        if result.failing or result.outcome == "xfailed":
            failures = os.path.join(self.directory, "failures")
            if result.frames:
                self.written.append(write_pcap(result, failures))
            case = self.cases_by_id.get(result.id)
            source = {}
            if case is not None:  # the case as it ran: suite defaults folded in
                source = {**case.source, "section": case.section, "level": case.level, "tags": case.tags, "requires": case.requires}
            self.written.append(write_replay(result, source, self.context, failures))
        self._since_flush += 1
        if self._since_flush >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        self._since_flush = 0
        d = self.directory
        write_json(self.run, os.path.join(d, "report.json"))
        write_junit(self.run, os.path.join(d, "junit.xml"))
        write_sarif(self.run, os.path.join(d, "report.sarif"))
        write_html(self.run, os.path.join(d, "report.html"))
        write_atomic(os.path.join(d, "manifest.json"), json.dumps(self.run.manifest, indent=1, default=str) + "\n")

    def close(self) -> None:
        self.run.end = self.run.end or time.time()
        self.run.manifest["end_time"] = time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(self.run.end))
        self.run.manifest["exchanges"] = self.run.exchanges
        self.run.manifest["exchanges_per_second"] = round(self.run.exchanges_per_second, 1)
        self.flush()

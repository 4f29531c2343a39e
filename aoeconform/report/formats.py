"""report.json, junit.xml and report.sarif."""

from __future__ import annotations

import json
import os
import pathlib
import urllib.parse
import xml.etree.ElementTree as ET
from collections import OrderedDict
from typing import Optional

from aoeconform import __version__
from aoeconform.scenario.results import CaseResult

from .model import RunInfo

INFORMATION_URI = "https://github.com/aoeconform/aoeconform"
#: the published schema's own id (OASIS SARIF 2.1.0 with errata 01)
SARIF_SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
SARIF_LEVEL = {"MUST": "error", "SHOULD": "warning", "MAY": "note"}


def write_atomic(path: str, text: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


# -- report.json -------------------------------------------------------------------


def json_report(run: RunInfo) -> dict:
    return {
        "summary": run.summary(),
        "cases": [r.as_dict() for r in run.results],
        "rules": run.rule_matrix(),
        "run": {
            "start": run.start, "end": run.end, "elapsed": round(run.elapsed, 3), "exchanges": run.exchanges,
            "exchanges_per_second": round(run.exchanges_per_second, 1), "interrupted": run.interrupted,
            "strict": run.strict, "must_failures": len(run.must_failures()),
            # why the run ended early (target_unreachable, interrupted, terminated, maxfail), else null
            "stopped": run.stopped,
        },
        "manifest": run.manifest,
    }


def write_json(run: RunInfo, path: str) -> None:
    write_atomic(path, json.dumps(json_report(run), indent=1, default=str) + "\n")


# -- junit.xml ---------------------------------------------------------------------


def _detail(result: CaseResult) -> str:
    lines = [result.message, f"requirement: {result.requirement}", f"where: {result.file}:{result.line}"]
    for step in result.steps:
        if step.ok:
            continue
        lines.append(f"step {step.index + 1} ({step.action}, line {step.line}): {step.message}")
        for verdict in step.verdicts:
            for check in verdict.get("checks", []):
                mark = "ok " if check["ok"] else "BAD"
                lines.append(f"  {mark} {check['field']}: expected {check['expected']}, actual {check['actual']}")
    lines += [f"note: {n}" for n in result.notes]
    return "\n".join(lines)


def relative_source(path: str, cwd: str) -> str:
    """A suite file's path relative to the directory the run started in, with /.

    junit.xml's ``file`` attributes use it: CI tools (GitLab's test report,
    GitHub annotation actions) resolve them against the job's checkout, which is
    the directory the job runs aoeconform in, so the file opens where it is.
    Suites elsewhere (shipped ones inside an installed package) get ../ paths,
    still correct from that directory."""
    if not path:
        return ""
    return os.path.relpath(os.path.join(cwd, path), cwd).replace(os.sep, "/")


def junit_tree(run: RunInfo) -> ET.Element:
    suites: "OrderedDict[str, list[CaseResult]]" = OrderedDict()
    for r in run.results:
        suites.setdefault(r.suite or "aoeconform", []).append(r)
    root = ET.Element("testsuites", name="aoeconform", tests=str(len(run.results)), time=f"{run.elapsed:.3f}")
    totals = {"failures": 0, "errors": 0, "skipped": 0}
    for name, results in suites.items():
        suite = ET.SubElement(root, "testsuite", name=name, tests=str(len(results)),
                              time=f"{sum(r.duration for r in results):.3f}")
        counts = {"failures": 0, "errors": 0, "skipped": 0}
        for r in results:
            case = ET.SubElement(suite, "testcase", classname=f"aoeconform.{name}", name=r.name, time=f"{r.duration:.6f}",
                                 file=relative_source(r.file, run.cwd), line=str(r.line))
            props = ET.SubElement(case, "properties")
            for key, value in (("requirement", r.requirement), ("section", r.section), ("level", r.level),
                               ("rule", ",".join(map(str, r.rule))), ("outcome", r.outcome)):
                ET.SubElement(props, "property", name=key, value=str(value))
            if r.failed_rule is not None:
                # the rule the failing step checks, which need not be the case's headline rule
                ET.SubElement(props, "property", name="failed_rule", value=str(r.failed_rule))
                ET.SubElement(props, "property", name="failed_level", value=r.gating_level)
            if r.outcome in ("failed", "timeout") or (r.outcome == "xpassed" and run.strict):
                node = ET.SubElement(case, "failure", message=r.message[:500], type=r.outcome)
                node.text = _detail(r)
                counts["failures"] += 1
            elif r.outcome == "error":
                node = ET.SubElement(case, "error", message=r.message[:500], type=r.skip_reason or "error")
                node.text = _detail(r)
                counts["errors"] += 1
            elif r.outcome in ("skipped", "xfailed"):
                message = r.message if r.outcome == "skipped" else f"expected failure: {r.expected_failure}: {r.message}"
                ET.SubElement(case, "skipped", message=message[:500], type=r.skip_reason or r.outcome)
                counts["skipped"] += 1
            elif r.outcome == "xpassed":
                out = ET.SubElement(case, "system-out")
                out.text = r.message
        for key, count in counts.items():
            suite.set(key, str(count))
            totals[key] += count
    if run.stopped:
        # CI tools show testcases, not report.json: a run that did not run to
        # the end leaves one testcase saying so (an error when the run itself
        # failed, a skip when --maxfail cut it short as asked)
        name = "aoeconform"
        suite = ET.SubElement(root, "testsuite", name=name, tests="1", time="0.000", failures="0",
                              errors="1" if run.aborted else "0", skipped="0" if run.aborted else "1")
        case = ET.SubElement(suite, "testcase", classname="aoeconform.run", name=f"run stopped: {run.stopped['reason']}", time="0")
        node = ET.SubElement(case, "error" if run.aborted else "skipped", message=run.stopped["message"][:500],
                             type=run.stopped["reason"])
        node.text = run.stopped["message"]
        totals["errors" if run.aborted else "skipped"] += 1
        root.set("tests", str(len(run.results) + 1))
    for key, total in totals.items():
        root.set(key, str(total))
    return root


def write_junit(run: RunInfo, path: str) -> None:
    tree = junit_tree(run)
    ET.indent(tree)
    write_atomic(path, '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(tree, encoding="unicode") + "\n")


# -- report.sarif ------------------------------------------------------------------


def _dir_uri(directory: str) -> str:
    """A directory's file: uri; SARIF wants base uris to end with a slash."""
    uri = pathlib.Path(directory).as_uri()
    return uri if uri.endswith("/") else uri + "/"


class _UriBases:
    """SARIF artifact locations as a relative uri plus a ``uriBaseId`` (§3.4.4),
    with the bases' absolute uris in the run's ``originalUriBaseIds``.

    %SRCROOT% is the directory the run started in: code scanning (GitHub) and
    other viewers resolve relative uris against the checkout, which is where a
    CI job runs aoeconform, so suites in the repository open in place; the
    name is the one CodeQL and most producers use for that base. Shipped
    suites outside it are relative to SUITES (the shipped suites directory);
    anything else to ROOT (/), still relative."""

    def __init__(self, cwd: str):
        self.cwd = os.path.abspath(cwd)
        self.used: dict[str, str] = {}

    def _base_for(self, path: str) -> tuple[str, str]:
        from aoeconform.scenario.loader import shipped_suites_dir

        shipped: Optional[str] = shipped_suites_dir()
        for name, directory in (("%SRCROOT%", self.cwd), ("SUITES", os.path.abspath(shipped) if shipped else None)):
            if directory and (path == directory or path.startswith(directory.rstrip(os.sep) + os.sep)):
                return name, directory
        return "ROOT", os.sep

    def location(self, file: str) -> dict:
        path = os.path.abspath(os.path.join(self.cwd, file))
        name, directory = self._base_for(path)
        self.used[name] = _dir_uri(directory)
        relative = os.path.relpath(path, directory).replace(os.sep, "/")
        return {"uri": urllib.parse.quote(relative), "uriBaseId": name}

    def original(self) -> dict:
        return {name: {"uri": uri} for name, uri in sorted(self.used.items())}


def sarif(run: RunInfo) -> dict:
    bases = _UriBases(run.cwd)
    rules: list[dict] = []
    index: dict[str, int] = {}
    for r in run.results:
        if r.id in index:
            continue
        index[r.id] = len(rules)
        rules.append({
            "id": r.id,
            "name": r.id.replace("/", "_"),
            "shortDescription": {"text": r.requirement[:200] or r.id},
            "fullDescription": {"text": r.requirement or r.id},
            "defaultConfiguration": {"level": SARIF_LEVEL.get(r.level, "warning")},
            "properties": {"section": r.section, "level": r.level, "rule": r.rule, "tags": r.tags},
        })
    results = []
    for r in run.results:
        if not (r.failing or r.outcome == "xpassed"):
            continue
        line = r.line
        if r.failed_step is not None and r.failed_step < len(r.steps):
            line = r.steps[r.failed_step].line
        results.append({
            "ruleId": r.id,
            "ruleIndex": index[r.id],
            "level": "note" if r.outcome == "xpassed" else SARIF_LEVEL.get(r.gating_level, "warning"),
            "kind": "fail",
            "message": {"text": f"{r.outcome}" + (f" (rule {r.failed_rule})" if r.failed_rule is not None else "") + f": {r.message}"},
            **({"locations": [{"physicalLocation": {"artifactLocation": bases.location(r.file),
                                                    "region": {"startLine": max(1, line)}}}]} if r.file else {}),
            "properties": {"outcome": r.outcome, "requirement": r.requirement, "section": r.section,
                           **({"failed_rule": r.failed_rule, "failed_level": r.gating_level} if r.failed_rule is not None else {})},
        })
    sarif_run: dict = {
        "tool": {"driver": {"name": "aoeconform", "version": __version__, "informationUri": INFORMATION_URI, "rules": rules}},
        "results": results,
        "invocations": [_invocation(run, bases)],
    }
    if bases.used:
        sarif_run["originalUriBaseIds"] = bases.original()
    return {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [sarif_run]}


def _invocation(run: RunInfo, bases: _UriBases) -> dict:
    out: dict = {"executionSuccessful": not (run.interrupted or run.aborted), "commandLine": run.manifest.get("command_line", ""),
                 "workingDirectory": {"uri": _dir_uri(bases.cwd)}}
    if run.stopped:
        out["toolExecutionNotifications"] = [{
            "level": "error" if run.aborted else "note",
            "message": {"text": run.stopped["message"]},
            "descriptor": {"id": run.stopped["reason"]},
        }]
    return out


def write_sarif(run: RunInfo, path: str) -> None:
    write_atomic(path, json.dumps(sarif(run), indent=1) + "\n")

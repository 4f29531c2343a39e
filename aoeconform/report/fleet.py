"""One report for a run over several targets.

``report.json`` at the top of the report directory has a column per target
(its label, IDENTIFY model, serial and firmware revision, Query Config
firmware version, summary, where its own reports are) and a row per case
(the outcome against each target). Each target's usual reports (junit.xml,
report.json, report.html, SARIF, pcaps, replay files) are in
``targets/<label>/`` beside it. ``report.html`` shows the same table, rules
and cases, the way ``aoeconform compare`` does; ``aoeconform compare`` reads
a fleet report as the runs of its targets.
"""

from __future__ import annotations

import json
import os
import re

from .formats import write_atomic

FLEET_FORMAT = 1


def target_dir_name(label: str) -> str:
    """A directory name for a target label (eth1:7.3 -> eth1_7.3)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", label).strip("._") or "target"


def target_dirs(labels) -> list[str]:
    """``targets/<name>`` for each label, in order, no two the same."""
    names: set = set()
    dirs = []
    for label in labels:
        name = target_dir_name(label)
        while name in names:
            name += "_"
        names.add(name)
        dirs.append(os.path.join("targets", name))
    return dirs


def fleet_document(columns: list[dict], runs: list, cases: list, *, workers: int, elapsed: float) -> dict:
    """``columns``: per target {label, report_dir, description, facts, error}; ``runs``:
    the targets' RunInfo in the same order; ``cases``: the chosen cases in order."""
    targets = []
    for col, run in zip(columns, runs):
        facts = col.get("facts") or {}
        targets.append({
            "label": col["label"], "report_dir": col["report_dir"], "description": col.get("description", ""),
            "identify": {"model": facts.get("model", ""), "serial": facts.get("serial", ""), "firmware_rev": facts.get("firmware_rev", "")},
            "firmware": facts.get("firmware"), "mac": facts.get("mac", ""), "shelf": facts.get("shelf"), "slot": facts.get("slot"),
            "summary": run.summary(), "gating_failures": len(run.gating_failures()),
            "exchanges": run.exchanges, "elapsed": round(run.elapsed, 3), "error": col.get("error"),
            "workers": col.get("workers", []),
            # why its run ended before every case ran (as in its own report.json), else null
            "stopped": run.stopped,
        })
    by_target = [{r.name: r for r in run.results} for run in runs]
    # a case without a result: "not run" when the target's run was cut short
    # (--maxfail, no answer), "-" when its run simply has no such case
    missing = ["not run" if run.stopped else "-" for run in runs]
    rows = []
    for case in cases:
        names = sorted({n for results in by_target for n in results if n == case.id or n.startswith(case.id + "#")},
                       key=lambda n: (len(n), n))
        for name in names or [case.id]:
            outcomes = {col["label"]: (results[name].outcome if name in results else absent)
                        for col, results, absent in zip(columns, by_target, missing)}
            rows.append({"id": name, "level": case.level, "section": case.section, "rule": case.rule,
                         "requirement": case.requirement, "outcomes": outcomes,
                         "differs": len(set(outcomes.values())) > 1})
    # results of no case (the engine's observed/...), after the cases as in each target's report
    seen = {row["id"] for row in rows}
    for run in runs:
        for r in run.results:
            if r.name in seen:
                continue
            seen.add(r.name)
            outcomes = {col["label"]: (results[r.name].outcome if r.name in results else "-") for col, results in zip(columns, by_target)}
            rows.append({"id": r.name, "level": r.level, "section": r.section, "rule": r.rule, "requirement": r.requirement,
                         "outcomes": outcomes, "differs": len(set(outcomes.values())) > 1})
    return {"format": "aoeconform-fleet", "version": FLEET_FORMAT, "workers": workers, "elapsed": round(elapsed, 3),
            "targets": targets, "cases": rows,
            "summary": {t["label"]: t["summary"] for t in targets}}


def write_fleet(directory: str, doc: dict) -> list[str]:
    """report.json and report.html of the fleet in ``directory``."""
    from .compare import html, load_run

    json_path = os.path.join(directory, "report.json")
    write_atomic(json_path, json.dumps(doc, indent=1) + "\n")
    runs = [load_run(os.path.join(directory, t["report_dir"]), _heading(t)) for t in doc["targets"]]
    html_path = os.path.join(directory, "report.html")
    notes = [f"{t['label']}: stopped early ({t['stopped']['reason']}): {t['stopped']['message']}"
             for t in doc["targets"] if t.get("stopped")]
    write_atomic(html_path, html(runs, title=f"aoeconform fleet report: {len(runs)} targets, {doc['elapsed']:.1f} s, "
                                             f"{doc['workers']} worker(s)", notes=notes))
    return [json_path, html_path]


def _heading(target: dict) -> str:
    ident = " ".join(x for x in (target["identify"].get("model", ""), target["identify"].get("firmware_rev", "")) if x)
    fw = f"fw 0x{target['firmware']:04x}" if isinstance(target.get("firmware"), int) else ""
    extra = ", ".join(x for x in (ident, fw) if x)
    return f"{target['label']} ({extra})" if extra else target["label"]


def is_fleet(doc) -> bool:
    return isinstance(doc, dict) and doc.get("format") == "aoeconform-fleet"


def fleet_runs(file: str, doc: dict) -> list:
    """The runs of a fleet report's targets, for ``aoeconform compare``."""
    from .compare import load_run

    base = os.path.dirname(file)
    return [load_run(os.path.join(base, t["report_dir"]), _heading(t)) for t in doc["targets"]]

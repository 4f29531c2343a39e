"""Several runs side by side: one column per target, one row per case or rule.

Reads the ``report.json`` of each run (a report directory or the file
itself), so runs made at different times, on different machines, against
different targets can be compared, as Autobahn does for WebSocket agents.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from html import escape
from typing import Sequence

from aoeconform.errors import UsageError

from .html import COLORS, CSS


@dataclass
class Run:
    label: str
    path: str
    cases: dict  # id -> case dict
    rules: dict  # rule number -> row dict
    summary: dict


def load_runs(path: str, label: str = "") -> list[Run]:
    """The run a report names, or each target's run when it is a fleet report."""
    from .fleet import fleet_runs, is_fleet

    file = os.path.join(path, "report.json") if os.path.isdir(path) else path
    try:
        with open(file, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError):
        doc = None  # load_run names the problem
    if is_fleet(doc):
        return fleet_runs(file, doc)
    return [load_run(path, label)]


def load_run(path: str, label: str = "") -> Run:
    file = os.path.join(path, "report.json") if os.path.isdir(path) else path
    try:
        with open(file, encoding="utf-8") as f:
            doc = json.load(f)
    except FileNotFoundError:
        raise UsageError(f"{file}: no such report; name a report directory or its report.json") from None
    except (OSError, ValueError) as exc:
        raise UsageError(f"{file}: not a readable report.json ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("cases"), list):
        raise UsageError(f"{file}: not an aoeconform report.json (no \"cases\" list)")
    manifest = doc.get("manifest") or {}
    target = manifest.get("target") or {}
    if not label:
        model = target.get("model") or ""
        label = f"{model} {target.get('firmware_rev', '')}".strip() or manifest.get("target_description") or file
    return Run(
        label=label,
        path=file,
        cases={c["id"]: c for c in doc["cases"] if isinstance(c, dict) and "id" in c},
        rules={r["rule"]: r for r in doc.get("rules") or [] if isinstance(r, dict) and "rule" in r},
        summary=doc.get("summary") or {},
    )


def case_rows(runs: list[Run], only_differences: bool) -> list[tuple[str, dict, list[str]]]:
    """(case id, first case dict seen, outcome per run or '-') in suite order."""
    order: list[str] = []
    seen: set[str] = set()
    for run in runs:
        for case_id in run.cases:
            if case_id not in seen:
                seen.add(case_id)
                order.append(case_id)
    rows = []
    for case_id in order:
        outcomes = [run.cases[case_id]["outcome"] if case_id in run.cases else "-" for run in runs]
        if only_differences and len(set(outcomes)) == 1:
            continue
        first = next(run.cases[case_id] for run in runs if case_id in run.cases)
        rows.append((case_id, first, outcomes))
    return rows


def rule_rows(runs: list[Run]) -> list[tuple[int, dict, list[str]]]:
    numbers = sorted({n for run in runs for n in run.rules})
    rows = []
    for n in numbers:
        first = next(run.rules[n] for run in runs if n in run.rules)
        rows.append((n, first, [run.rules[n]["verdict"] if n in run.rules else "-" for run in runs]))
    return rows


def text(runs: list[Run], only_differences: bool = True) -> str:
    lines = []
    width = max([len("case")] + [len(r[0]) for r in case_rows(runs, only_differences)])
    col = max(10, *(len(r.label[:40]) for r in runs))
    header = "case".ljust(width) + "  level   " + "".join(r.label[:40].ljust(col + 2) for r in runs)
    lines.append(header)
    for case_id, case, outcomes in case_rows(runs, only_differences):
        lines.append(case_id.ljust(width) + f"  {case.get('level', ''):<6}  " + "".join(o.ljust(col + 2) for o in outcomes))
    if only_differences and len(lines) == 1:
        lines.append("(every case has the same outcome in every run)")
    lines.append("")
    for key in ("passed", "failed", "errors", "skipped", "xfailed", "xpassed", "timeouts"):
        lines.append(key.ljust(width) + "          " + "".join(str(r.summary.get(key, 0)).ljust(col + 2) for r in runs))
    return "\n".join(lines)


def _cell(outcome: str) -> str:
    colour = COLORS.get({"no case": "error", "not run": "skipped"}.get(outcome, outcome), "#555")
    return f'<td><span class="o" style="background:{colour}">{escape(outcome)}</span></td>' if outcome != "-" else "<td class=muted>-</td>"


def html(runs: list[Run], only_differences: bool = False, title: str = "aoeconform comparison",
         notes: Sequence[str] = ()) -> str:
    """``notes``: paragraphs under the title (a fleet's runs that were cut short)."""
    heads = "".join(f"<th>{escape(r.label)}<br><span class=muted>{escape(os.path.dirname(r.path) or r.path)}</span></th>" for r in runs)
    rule_html = "".join(
        f"<tr><td>{n}</td><td>§{escape(str(row.get('section', '')))}</td><td>{escape(row.get('title', ''))}</td>"
        + "".join(_cell(v) for v in verdicts) + "</tr>"
        for n, row, verdicts in rule_rows(runs)
    )
    case_html = "".join(
        f"<tr><td>{escape(case_id)}</td><td>{escape(case.get('level', ''))}</td><td>{escape(case.get('requirement', ''))}</td>"
        + "".join(_cell(o) for o in outcomes) + "</tr>"
        for case_id, case, outcomes in case_rows(runs, only_differences)
    )
    return (
        f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>{escape(title)}</title>"
        f"<style>{CSS}</style></head><body><h1>{escape(title)}</h1>"
        + "".join(f"<p><b>{escape(note)}</b></p>" for note in notes)
        + f"<h2>Rules</h2><table><tr><th>rule</th><th>section</th><th>requirement</th>{heads}</tr>{rule_html}</table>"
        f"<h2>Cases</h2><table><tr><th>case</th><th>level</th><th>requirement</th>{heads}</tr>{case_html}</table>"
        "</body></html>\n"
    )

"""report.html: one self-contained file (no external assets, no server).

Sections: summary, the requirement-by-requirement matrix, the cases (with
filters by outcome and a search box: a small inline script, and without it
everything is simply shown), every failure with expected vs actual field by
field and its frames in hex, then an RTT histogram and a timeline of the run
(time axis, one labelled row per case) as inline SVG.
"""

from __future__ import annotations

import math
from html import escape
from typing import Iterable

from aoeconform import __version__
from aoeconform.scenario.results import CaseResult

from .model import RunInfo

COLORS = {"passed": "#2e7d32", "failed": "#c62828", "error": "#6a1b9a", "skipped": "#9e9e9e",
          "xfailed": "#ef6c00", "xpassed": "#0277bd", "timeout": "#ad1457"}

CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
h1{margin-bottom:.2em} h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.5em 0} td,th{border:1px solid #ddd;padding:.2em .5em;text-align:left;vertical-align:top;font-size:90%}
th{background:#f4f4f4} .o{color:#fff;border-radius:3px;padding:0 .4em;font-size:85%;white-space:nowrap}
.bad{background:#fdecea} pre{background:#f7f7f7;padding:.5em;overflow-x:auto;font-size:80%;margin:.2em 0}
.muted{color:#777} details{margin:.6em 0} summary{cursor:pointer;font-weight:600}
#filters{margin:.5em 0;padding:.4em;background:#f4f4f4;border-radius:4px} #filters label{margin-right:.8em;white-space:nowrap}
#search{min-width:18em} [hidden]{display:none!important}
"""

# Filters the cases table rows and the failure sections (anything with
# data-outcomes) by the ticked outcomes and the search text. The controls are
# hidden until this runs, so a page opened without scripts shows no dead controls.
SCRIPT = """
(function () {
  var box = document.getElementById("filters");
  if (!box) return;
  box.hidden = false;
  var ticks = box.querySelectorAll("input[type=checkbox]");
  var search = document.getElementById("search");
  var shown = document.getElementById("shown");
  var items = document.querySelectorAll("[data-outcomes]");
  function apply() {
    var on = {};
    ticks.forEach(function (t) { on[t.getAttribute("data-outcome")] = t.checked; });
    var q = search.value.trim().toLowerCase();
    var rows = 0, visible = 0;
    items.forEach(function (el) {
      var outcomeOk = el.getAttribute("data-outcomes").split(" ").some(function (o) { return on[o]; });
      var textOk = !q || el.textContent.toLowerCase().indexOf(q) >= 0;
      el.hidden = !(outcomeOk && textOk);
      if (el.tagName === "TR") { rows++; if (!el.hidden) visible++; }
    });
    shown.textContent = visible + " of " + rows + " cases shown";
  }
  box.addEventListener("input", apply);
  box.addEventListener("change", apply);
  apply();
})();
"""


def badge(outcome: str) -> str:
    return f'<span class="o" style="background:{COLORS.get(outcome, "#555")}">{escape(outcome)}</span>'


def _hex_dump(raw: bytes) -> str:
    lines = []
    for off in range(0, len(raw), 16):
        chunk = raw[off:off + 16]
        lines.append(f"{off:04x}  {chunk.hex(' '):<47}  " + "".join(chr(b) if 32 <= b < 127 else "." for b in chunk))
    return "\n".join(lines)


def _describe(raw: bytes) -> str:
    try:
        from aoeconform.wire import Frame

        return Frame.decode(raw).describe()
    except Exception as exc:  # undecodable frames are evidence too
        return f"{len(raw)} bytes, undecodable: {exc}"


def _summary(run: RunInfo) -> str:
    s = run.summary()
    cells = "".join(f"<th>{escape(k)}</th>" for k in s)
    values = "".join(f"<td>{v}</td>" for v in s.values())
    m = run.manifest
    target = m.get("target", {})
    info = [
        ("target", m.get("target_description", "")),
        ("IDENTIFY", f"{target.get('model', '')} / {target.get('serial', '')} / {target.get('firmware_rev', '')}"),
        ("interface / MTU", f"{m.get('interface', '')} / {m.get('mtu', '')}"),
        ("second MAC", m.get("second_mac_mode", "")),
        ("seed", m.get("seed", "")),
        ("exchanges", f"{run.exchanges} in {run.elapsed:.2f} s ({run.exchanges_per_second:.0f}/s)"),
        ("MUST failures", str(len(run.must_failures()))),
        ("command line", m.get("command_line", "")),
    ]
    rows = "".join(f"<tr><th>{escape(k)}</th><td>{escape(str(v))}</td></tr>" for k, v in info)
    note = ""
    if run.stopped:
        note = f"<p><b>Stopped early ({escape(run.stopped['reason'])}):</b> {escape(run.stopped['message'])}; the report covers the cases that ran.</p>"
    elif run.interrupted:
        note = "<p><b>Interrupted:</b> the report covers the cases that ran.</p>"
    return f"<h2>Summary</h2>{note}<table><tr>{cells}</tr><tr>{values}</tr></table><table>{rows}</table>"


def _shown_as_failure(r: CaseResult) -> bool:
    return r.failing or r.outcome == "xpassed"


def _filters(results: list[CaseResult]) -> str:
    """Outcome tick boxes (the outcomes present, with counts) and a search box."""
    counts: dict[str, int] = {}
    for r in results:
        counts[r.outcome] = counts.get(r.outcome, 0) + 1
    ticks = "".join(
        f'<label><input type=checkbox data-outcome="{escape(o)}" checked> {badge(o)} {n}</label>'
        for o, n in sorted(counts.items(), key=lambda kv: list(COLORS).index(kv[0]) if kv[0] in COLORS else 99))
    return (f'<div id=filters hidden>{ticks}<input type=search id=search placeholder="search id, requirement, message" '
            f'aria-label="search cases"> <span id=shown class=muted></span></div>')


def _matrix(results: Iterable[CaseResult]) -> str:
    by_id: dict[str, list[CaseResult]] = {}
    for r in results:
        by_id.setdefault(r.id, []).append(r)
    rows = []
    for case_id, rs in by_id.items():
        r = rs[0]
        outcomes = " ".join(badge(x.outcome) for x in rs)
        failure = any(_shown_as_failure(x) for x in rs)
        anchor = f'<a href="#f-{escape(case_id)}">{escape(case_id)}</a>' if failure else escape(case_id)
        # a failure's message is shown once, in its section under Failures
        message = '<a href="#f-%s">see the failure below</a>' % escape(case_id) if failure else escape(r.message[:160])
        kinds = " ".join(dict.fromkeys(x.outcome for x in rs))
        rows.append(
            f'<tr data-outcomes="{kinds}"><td>§{escape(r.section)}</td><td>{escape(",".join(map(str, r.rule)))}</td><td>{escape(r.level)}</td>'
            f"<td>{anchor}</td><td>{escape(r.requirement)}</td><td>{outcomes}</td><td class=muted>{message}</td></tr>"
        )
    return ("<h2>Cases</h2>" + _filters(list(results)) + "<table id=cases><tr><th>section</th><th>rule</th><th>level</th><th>case</th><th>requirement</th>"
            "<th>outcome</th><th>message</th></tr>" + "".join(rows) + "</table>")


def _rules(run: RunInfo) -> str:
    verdict_color = {"passed": "passed", "failed": "failed", "xfailed": "xfailed", "not run": "skipped", "no case": "error", "blocked": "skipped"}
    rows = []
    for row in run.rule_matrix():
        worst = sorted(row["cases"].items(), key=lambda kv: kv[1] == "passed")
        listed = " ".join(escape(case_id) for case_id, _ in worst[:6])
        more = f" (+{len(worst) - 6} more)" if len(worst) > 6 else ""
        badge_html = f'<span class="o" style="background:{COLORS[verdict_color[row["verdict"]]]}">{escape(row["verdict"])}</span>'
        rows.append(
            f"<tr><td>{row['rule']}</td><td>§{escape(row['section'])}</td><td>{escape(row['level'])}</td>"
            f"<td>{escape(row['title'])}</td><td>{badge_html}</td><td>{len(row['cases'])}</td>"
            f"<td class=muted>{listed}{more}</td></tr>"
        )
    return ("<h2>Traceability: rule by rule</h2><table><tr><th>rule</th><th>section</th><th>level</th><th>requirement</th>"
            "<th>verdict</th><th>cases</th><th>cases (failing first)</th></tr>" + "".join(rows) + "</table>")


def _failure(r: CaseResult) -> str:
    parts = [f'<h3 id="f-{escape(r.id)}">{badge(r.outcome)} {escape(r.name)}</h3>',
             f"<p>{escape(r.requirement)} <span class=muted>(§{escape(r.section)}, {escape(r.level)}, {escape(r.file)}:{r.line})</span></p>",
             *([f"<p>charged to rule {r.failed_rule} ({escape(r.gating_level)}): the rule its failing step checks</p>"] if r.failed_rule is not None else []),
             f"<p><b>{escape(r.message)}</b></p>"]
    for note in r.notes:
        parts.append(f"<p class=muted>note: {escape(note)}</p>")
    for step in r.steps:
        if step.ok and not step.verdicts:
            continue
        rows = []
        for verdict in step.verdicts:
            for c in verdict.get("checks", []):
                cls = "" if c["ok"] else ' class="bad"'
                rows.append(f"<tr{cls}><td>{escape(c['field'])}</td><td>{escape(c['expected'])}</td><td>{escape(c['actual'])}</td><td>{'✓' if c['ok'] else '✗'}</td></tr>")
            for i, alt in enumerate(verdict.get("alternatives", [])):
                rows.append(f"<tr><td colspan=4 class=muted>alternative {i + 1}: {'holds' if alt['ok'] else escape(alt['message'])}</td></tr>")
        if step.ok:
            status = "ok"
        elif step.message and step.message in r.message:
            status = "<b>failed</b> (the message above)"  # said once, not twice
        else:
            status = escape(step.message)
        table = ("<table><tr><th>field</th><th>expected</th><th>actual</th><th></th></tr>" + "".join(rows) + "</table>") if rows else ""
        parts.append(f"<p>step {step.index + 1} <code>{escape(step.action)}</code> (line {step.line}) {escape(step.label)}: {status}</p>{table}")
    if r.frames:
        t0 = r.frames[0].time
        frames = []
        for f in r.frames:
            arrow = "→" if f.direction == "out" else "←"
            frames.append(f"<p>{arrow} +{(f.time - t0) * 1000:.3f} ms {escape(f.iface)}: {escape(_describe(f.raw))}</p><pre>{escape(_hex_dump(f.raw))}</pre>")
        parts.append(f"<details><summary>{len(r.frames)} frames</summary>{''.join(frames)}</details>")
    return "".join(parts)


def rtt_histogram_svg(rtts: list[float], width: int = 640, height: int = 180) -> str:
    if not rtts:
        return "<p class=muted>no round trips measured</p>"
    micros = [max(x * 1e6, 1.0) for x in rtts]
    lo, hi = math.floor(math.log10(min(micros)) * 4) / 4, math.ceil(math.log10(max(micros)) * 4) / 4 + 0.25
    bins = max(1, int(round((hi - lo) * 4)))
    counts = [0] * bins
    for m in micros:
        counts[min(bins - 1, int((math.log10(m) - lo) * 4))] += 1
    top = max(counts)
    bw = (width - 60) / bins
    bars, labels = [], []
    for i, c in enumerate(counts):
        h = (height - 40) * c / top
        x = 50 + i * bw
        bars.append(f'<rect x="{x:.1f}" y="{height - 25 - h:.1f}" width="{bw - 1:.1f}" height="{h:.1f}" fill="#1565c0"><title>{c}</title></rect>')
        if i % 4 == 0:
            labels.append(f'<text x="{x:.1f}" y="{height - 8}" font-size="10">{10 ** (lo + i / 4):.0f}µs</text>')
    ordered = sorted(micros)
    median = ordered[len(ordered) // 2]
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    caption = f'<text x="50" y="12" font-size="11">{len(micros)} round trips, median {median:.0f} µs, p99 {p99:.0f} µs (log scale)</text>'
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" aria-label="RTT histogram">'
            f"{caption}{''.join(bars)}{''.join(labels)}<text x='0' y='{height / 2}' font-size='10'>{top}</text></svg>")


def _tick_step(span: float, most: int = 8) -> float:
    """A round step (1, 2 or 5 times a power of ten) giving at most ``most`` ticks over ``span``."""
    raw = span / most
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if factor * power >= raw:
            return factor * power
    return 10 * power


def _seconds_label(t: float, step: float) -> str:
    if step < 1:
        return f"{round(t * 1000, 6):g} ms"
    return f"{round(t, 6):g} s"


def timeline_svg(results: list[CaseResult], width: int = 1000, row: int = 12, label_width: int = 300) -> str:
    """One row per case, labelled with its name, its bar placed on a time axis
    that starts when the first case started."""
    timed = [r for r in results if r.start]
    if not timed:
        return "<p class=muted>nothing ran</p>"
    t0 = min(r.start for r in timed)
    t1 = max(r.start + r.duration for r in timed)
    span = max(t1 - t0, 1e-6)
    x0, plot = label_width + 10, width - label_width - 30
    top = 36  # caption, then the axis labels
    height = top + row * len(timed) + 6
    step = _tick_step(span)
    parts = [f'<text x="10" y="12" font-size="11">{len(timed)} cases over {span:.2f} s, one row each, coloured by outcome</text>']
    for i in range(int(span / step + 1e-9) + 1):
        x = x0 + plot * (i * step) / span
        parts.append(f'<line x1="{x:.1f}" y1="{top - 6}" x2="{x:.1f}" y2="{height}" stroke="#ddd"/>'
                     f'<text x="{x:.1f}" y="{top - 10}" font-size="10" text-anchor="middle" class="tick">{_seconds_label(i * step, step)}</text>')
    parts.append(f'<line x1="{x0}" y1="{top - 6}" x2="{x0 + plot}" y2="{top - 6}" stroke="#999"/>')
    for i, r in enumerate(timed):
        y = top + i * row
        x = x0 + plot * (r.start - t0) / span
        w = max(1.0, plot * r.duration / span)
        name = r.name if len(r.name) <= 48 else r.name[:47] + "…"
        title = f"{escape(r.name)}: {r.outcome}, {r.duration * 1000:.1f} ms"
        parts.append(f'<text x="{label_width}" y="{y + row - 3}" font-size="10" text-anchor="end" class="case">{escape(name)}<title>{title}</title></text>'
                     f'<rect x="{x:.1f}" y="{y + 1}" width="{w:.1f}" height="{row - 2}" fill="{COLORS.get(r.outcome, "#555")}">'
                     f"<title>{title}</title></rect>")
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" aria-label="timeline">'
            + "".join(parts) + "</svg>")


def render(run: RunInfo) -> str:
    failures = [r for r in run.results if r.failing or r.outcome == "xpassed"]
    failure_html = "".join(f'<section class=failure data-outcomes="{r.outcome}">{_failure(r)}</section>' for r in failures) or "<p>None.</p>"
    return (
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>aoeconform report</title>"
        f"<style>{CSS}</style></head><body>"
        f"<h1>aoeconform report</h1><p class=muted>aoeconform {escape(__version__)}</p>"
        + _summary(run)
        + _rules(run)
        + _matrix(run.results)
        + f"<h2>Failures</h2>{failure_html}"
        + "<h2>Round-trip times</h2>" + rtt_histogram_svg(run.rtts())
        + "<h2>Timeline</h2>" + timeline_svg(run.results)
        + f"<script>{SCRIPT}</script></body></html>\n"
    )


def write_html(run: RunInfo, path: str) -> None:
    from .formats import write_atomic

    write_atomic(path, render(run))

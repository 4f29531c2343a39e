"""report.html seen in a real browser: headless Chromium (Debian's package).

A small run against the bundled target with a quirk writes a report with
failures. A copy of its report.html gets one script appended that, once the
page and its own scripts have run, measures what a reader would see (each
element rendered with a size, not hidden by CSS, inside a visible parent) and
writes it into the page as JSON; `chromium --headless --dump-dom` prints the
page, and the test reads that JSON back. Script errors on the page are caught
and fail the test too.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from html import unescape

from conftest import need_program

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUIRK = "flush-status-zero"  # fails the FLUSH CACHE status cases, and nothing else in this selection
SELECT = ("ata/flush/*", "header/tag/*")

# Appended to the copy of the report: errors are caught from the first script
# on, and the probe runs after the load event, when the report's own scripts
# have run (--virtual-time-budget lets timers settle before the dump).
ERRORS = "<script>window.__errors=[];addEventListener('error',e=>__errors.push(String(e.message)));</script>"
PROBE = r"""<script>
addEventListener('load', () => setTimeout(() => {
  const seen = el => {
    if (!el) return {found: false};
    const r = el.getBoundingClientRect();
    const visible = el.checkVisibility({checkOpacity: true, checkVisibilityCSS: true}) && r.width > 0 && r.height > 0;
    return {found: true, visible, text: el.innerText.slice(0, 50000)};
  };
  const heading = prefix => [...document.querySelectorAll('h1,h2,h3,h4')].find(h => h.innerText.trim().toLowerCase().startsWith(prefix));
  const tableAfter = h => {  // the first table after a heading, before the next heading
    for (let e = h && h.nextElementSibling; e && !/^H[1-4]$/.test(e.tagName); e = e.nextElementSibling) {
      const t = e.tagName === 'TABLE' ? e : e.querySelector('table');
      if (t) return t;
    }
    return null;
  };
  const summary = heading('summary'), matrix = heading('traceability');
  const failure = document.getElementById('f-' + FAILED_ID);
  const fields = tableAfter(failure);
  const out = {
    errors: window.__errors,
    summary: seen(summary), summary_table: seen(tableAfter(summary)),
    matrix: seen(matrix), matrix_table: seen(tableAfter(matrix)),
    failure: seen(failure), field_table: seen(fields),
    bad_row: seen(fields && fields.querySelector('tr.bad')),
  };
  const pre = document.createElement('pre');
  pre.id = 'aoec-probe';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
}, 0));
</script>"""


def _render(chromium: str, page: str, profile: str) -> str:
    # the flags a closed network and a root user need (see the machine notes):
    # no sandbox as root, no background connections that would be refused
    argv = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--window-size=1280,2000", f"--user-data-dir={profile}", "--virtual-time-budget=5000",
            "--dump-dom", "file://" + page]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"chromium exited {done.returncode}: {done.stderr[-2000:]}"
    return done.stdout


def test_report_html_in_headless_chromium(tmp_path):
    chromium = need_program("chromium", "chromium")  # under CI=true a missing browser fails
    reports = tmp_path / "reports"
    argv = [sys.executable, "-m", "aoeconform", "run", "--bundled", "memory", "--quirk", QUIRK, "--seed", "5",
            "--report-dir", str(reports)]
    for pattern in SELECT:
        argv += ["--select", pattern]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, env=dict(os.environ, PYTHONPATH=ROOT))
    assert done.returncode in (0, 1), done.stderr
    report = json.loads((reports / "report.json").read_text())
    failed = [c for c in report["cases"] if c["outcome"] == "failed"]
    assert failed, f"the quirk {QUIRK} made no case fail: {report['summary']}"
    case_id = failed[0]["id"]

    page = (reports / "report.html").read_text()
    probe = PROBE.replace("FAILED_ID", json.dumps(case_id))
    page = page.replace("<head>", "<head>" + ERRORS, 1)
    page = page.replace("</body>", probe + "</body>", 1) if "</body>" in page else page + probe
    probed = tmp_path / "probed.html"
    probed.write_text(page)

    dom = _render(chromium, str(probed), str(tmp_path / "profile"))
    match = re.search(r'<pre id="aoec-probe">(.*?)</pre>', dom, re.S)
    assert match, f"the probe did not run (page script error?); DOM tail:\n{dom[-1500:]}"
    seen = json.loads(unescape(match.group(1)))
    assert seen["errors"] == [], f"script errors on the page: {seen['errors']}"
    for part in ("summary", "summary_table", "matrix", "matrix_table", "failure", "field_table", "bad_row"):
        assert seen[part]["found"], f"{part} is not in the page"
        assert seen[part]["visible"], f"{part} is in the page but not visible"

    summary = seen["summary_table"]["text"]
    assert "failed" in summary and str(report["summary"]["failed"]) in summary, summary
    matrix = seen["matrix_table"]["text"]
    assert "failed" in matrix and "rule" in matrix.lower(), matrix[:500]
    assert case_id in seen["failure"]["text"]
    assert "expected" in seen["field_table"]["text"] and "actual" in seen["field_table"]["text"]
    assert "ata.cmd_status" in seen["bad_row"]["text"], seen["bad_row"]["text"]
    # the rule the failure is charged to shows as failed in the matrix
    charged = failed[0]["failed_rule"]
    row = next((line for line in matrix.splitlines() if line.split("\t")[0].strip() == str(charged)), "")
    assert "failed" in row, f"rule {charged} is not failed in the matrix: {row!r}"

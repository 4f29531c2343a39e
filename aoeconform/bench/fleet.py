"""`aoeconform bench fleet`: a fleet run on one worker against N workers, side by side.

Four targets (by default), each in a lab namespace of its own: Debian's
vblade 25 serving a sparse image (the shipped suites with
``suites/expectations/vblade-25.yaml`` and a ``--restart-cmd`` per target,
as ``docs/running-against-vblade.md`` runs them), then four bundled
reference targets. Each set runs four ways in one go, wall clock measured
around the whole command:

* ``aoeconform run --target ... --workers 1`` and ``--workers N``;
* ``pytest --aoe-target ... -n 1`` and ``-n N`` (the plugin under xdist).

Before each run every vblade is restarted on its image, so each run starts
from the same state. The per-case outcomes of every run are compared with
the first (``aoeconform run --workers 1``): the speedup counts only if they
are equal. On a machine with fewer cores than workers, the speedup comes
from overlapping waits (reply timeouts, silence windows, vblade restarts),
not from CPU.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET

from aoeconform.errors import UsageError
from aoeconform.lab import Lab, require_root

SHELF, SLOT = 1, 2
IMAGE_BYTES = 64 << 20
#: reply timeout floor of every run: a few CPU-starved milliseconds on a 2-core machine
#: running 4 workers and 4 targets must not turn a late reply into a timeout
TIMEOUT_FLOOR = "0.2"


def register(subparsers) -> None:
    p = subparsers.add_parser("fleet", help="a fleet run on 1 worker vs N, `aoeconform run` and the pytest plugin, vblade and bundled targets (needs root)")
    p.add_argument("--targets", type=int, default=4, help="targets per set, each in its own lab (default 4)")
    p.add_argument("--workers", type=int, default=4, help="workers of the parallel runs (default 4)")
    p.add_argument("--kind", choices=["vblade", "bundled", "both"], default="both", help="which set of targets (default both)")
    p.add_argument("--seed", type=int, default=1, help="seed of every run (default 1)")
    p.add_argument("--keep", metavar="DIR", help="keep the reports of every run in DIR")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=_run)


def _run(args) -> int:
    if args.targets < 1 or args.workers < 2:
        raise UsageError("--targets must be at least 1 and --workers at least 2")
    require_root("bench fleet")
    rows = run_bench(args.targets, args.workers, args.kind, args.seed, args.keep)
    print(report(rows, args.json))
    return 0 if all(r["same_outcomes"] for r in rows) else 1


def _python(*args, cwd=None, timeout=900) -> tuple[float, subprocess.CompletedProcess]:
    began = time.monotonic()
    proc = subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=cwd, timeout=timeout)
    return time.monotonic() - began, proc


class _VbladeSet:
    """N labs, vblade in each, restartable by the command a run gets as --restart-cmd."""

    def __init__(self, count: int, where: str):
        from aoeconform.lab.testbed import unique_lab_name

        if shutil.which("vblade") is None:
            raise UsageError("vblade is not installed; install it with `apt-get install vblade`")
        self.labs, self.commands = [], []
        try:
            for i in range(count):
                lab = Lab(unique_lab_name())
                lab.up()
                self.labs.append(lab)
                image = os.path.join(where, f"vblade{i}.img")
                with open(image, "wb") as f:
                    f.truncate(IMAGE_BYTES)
                start = [sys.executable, "-m", "aoeconform", "lab", "vblade", "--name", lab.name, "--shelf", str(SHELF),
                         "--slot", str(SLOT), "--pidfile", os.path.join(where, f"vblade{i}.pid"), image, "--restart"]
                self.commands.append(shlex.join(start))
            self.restart_all()
        except BaseException:
            self.close()
            raise

    @property
    def targets(self) -> list[str]:
        return [f"{lab.host_if}:{SHELF}.{SLOT}" for lab in self.labs]

    def restart_all(self) -> None:
        for command in self.commands:
            done = subprocess.run(shlex.split(command), capture_output=True, text=True, timeout=60)
            if done.returncode != 0:
                raise UsageError(f"starting vblade failed: {done.stderr.strip()[-200:]}")

    def close(self) -> None:
        for lab in self.labs:
            lab.down()


def _run_outcomes(report_dir: str) -> dict:
    with open(os.path.join(report_dir, "report.json")) as f:
        doc = json.load(f)
    labels = [t["label"] for t in doc["targets"]]
    return {(row["id"], i): row["outcomes"][label] for row in doc["cases"] for i, label in enumerate(labels)
            if row["outcomes"][label] != "-"}


def _plugin_outcomes(junit: str, labels: list[str]) -> dict:
    index = {label: i for i, label in enumerate(labels)}
    out = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        props = {str(p.get("name")): str(p.get("value")) for p in case.iter("property")}
        if "case_id" in props and "outcome" in props:
            out[(props["case_id"], index[props["target"]])] = props["outcome"]
    return out


def _common(outcomes: dict, reference: dict) -> bool:
    """Equal on every case both ran (the plugin has no observed/... items)."""
    shared = set(outcomes) & set(reference)
    return bool(shared) and all(outcomes[k] == reference[k] for k in shared) and \
        {k for k in reference if not k[0].startswith("observed/")} <= set(outcomes)


def run_bench(count: int, workers: int, kind: str, seed: int, keep=None) -> list[dict]:
    rows: list[dict] = []
    from aoeconform.scenario.loader import shipped_suites_dir

    expectations = os.path.join(shipped_suites_dir() or "suites", "expectations", "vblade-25.yaml")
    with tempfile.TemporaryDirectory(prefix="aoeconform-bench-fleet-") as tmp:
        out = keep or tmp
        os.makedirs(out, exist_ok=True)
        kinds = ["vblade", "bundled"] if kind == "both" else [kind]
        for which in kinds:
            vset = _VbladeSet(count, tmp) if which == "vblade" else None
            try:
                targets = vset.targets if vset else ["bundled"] * count
                labels = targets if vset else ["bundled"] + [f"bundled#{i}" for i in range(2, count + 1)]
                run_extra, py_extra = [], []
                if vset:
                    run_extra = ["--allow-write", "--expectations", expectations]
                    py_extra = ["--aoe-allow-write", "--aoe-expectations", expectations]
                    for c in vset.commands:
                        run_extra += ["--restart-cmd", c]
                        py_extra += ["--aoe-restart-cmd", c]
                reference = None
                for tool, n in (("run", 1), ("run", workers), ("pytest", 1), ("pytest", workers)):
                    if vset:
                        vset.restart_all()  # every run starts from vblades just started
                    name = f"{which}-{tool}-{n}"
                    if tool == "run":
                        argv = ["-m", "aoeconform", "run", *[a for t in targets for a in ("--target", t)], "--workers", str(n),
                                "--seed", str(seed), "--timeout-floor", TIMEOUT_FLOOR, "--report-dir", os.path.join(out, name), *run_extra]
                        wall, proc = _python(*argv)
                        outcomes = _run_outcomes(os.path.join(out, name))
                    else:
                        junit = os.path.join(out, name + ".xml")
                        argv = ["-m", "pytest", "-p", "aoeconform.pytest_plugin", "-p", "no:cacheprovider", "-q",
                                *[a for t in targets for a in ("--aoe-target", t)], "--aoe-seed", str(seed), "-n", str(n),
                                "--aoe-timeout-floor", TIMEOUT_FLOOR,
                                f"--junitxml={junit}", *py_extra]
                        wall, proc = _python(*argv, cwd=tmp)
                        outcomes = _plugin_outcomes(junit, labels)
                    if reference is None:
                        reference = outcomes
                    rows.append({"targets": which, "tool": "aoeconform run" if tool == "run" else "pytest plugin",
                                 "workers": n, "wall": round(wall, 2), "exit": proc.returncode, "cases": len(outcomes),
                                 "same_outcomes": _common(outcomes, reference)})
            finally:
                if vset:
                    vset.close()
    by = {(r["targets"], r["tool"], r["workers"]): float(r["wall"]) for r in rows}
    for r in rows:
        wall = float(r["wall"])
        r["speedup"] = round(by[(r["targets"], r["tool"], 1)] / wall, 2) if wall else 0.0
    return rows


def report(rows: list[dict], as_json: bool) -> str:
    if as_json:
        return json.dumps(rows, indent=1)
    lines = [f"{'targets':<9} {'tool':<15} {'workers':>7} {'wall s':>8} {'speedup':>8} {'cases':>6} {'exit':>5}  outcomes"]
    for r in rows:
        lines.append(f"{r['targets']:<9} {r['tool']:<15} {r['workers']:>7} {r['wall']:>8.2f} {r['speedup']:>7.2f}x "
                     f"{r['cases']:>6} {r['exit']:>5}  {'same as run --workers 1' if r['same_outcomes'] else 'DIFFERENT'}")
    lines.append(f"(machine: {os.cpu_count()} cores; speedup = wall on 1 worker / wall on N, same tool and targets)")
    return "\n".join(lines)

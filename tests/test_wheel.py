"""The built wheel, installed in a fresh venv, is a working aoeconform.

`pip wheel` builds from a copy of the source tree (so the checkout gets no
build/ or egg-info), a new venv installs the wheel with its dependencies from
PyPI (pip's cache makes reruns quick), and from a directory outside the
checkout, with no PYTHONPATH, the installed command runs the shipped suites
against the bundled target in a lab and fuzzes from the shipped corpus.
"""

from __future__ import annotations

import json
import os
import sys
import tarfile
import zipfile

import pytest

from conftest import need_root
from wheelbuild import ROOT, build_sdist, build_wheel, ok, pip_install, run

#: what setuptools says when the configuration uses something on its way out
DEPRECATION_MARKS = ("SetuptoolsDeprecationWarning", "BuildBackendWarning", "is deprecated", "!!\n")


@pytest.fixture(scope="module")
def wheel() -> str:
    built, output = build_wheel()
    marks = [m.strip() for m in DEPRECATION_MARKS if m in output]
    assert not marks, f"the build warns of deprecations ({marks}):\n{output[-4000:]}"
    return built


def test_wheel_ships_suites_corpus_and_types(wheel):
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        metadata = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "aoeconform/py.typed" in names
    suites = sorted(n for n in os.listdir(os.path.join(ROOT, "suites")) if n.endswith(".yaml"))
    corpus = sorted(n for n in os.listdir(os.path.join(ROOT, "corpora")) if n.endswith((".hex", ".bin")))
    assert suites and corpus
    missing_files = [f"aoeconform/suites/{n}" for n in suites if f"aoeconform/suites/{n}" not in names]
    missing_files += [f"aoeconform/corpora/{n}" for n in corpus if f"aoeconform/corpora/{n}" not in names]
    assert not missing_files, f"not in the wheel: {missing_files}"
    assert "aoeconform/suites/expectations/vblade-25.yaml" in names
    assert "License-Expression: MIT" in metadata
    # the MIT licence asks that its text go with every copy
    assert "License-File: LICENSE" in metadata
    (licence,) = [n for n in names if n.endswith(".dist-info/licenses/LICENSE")]
    with zipfile.ZipFile(wheel) as z:
        assert z.read(licence) == open(os.path.join(ROOT, "LICENSE"), "rb").read()


def test_sdist_ships_the_licence_suites_and_corpus():
    sdist = build_sdist()
    with tarfile.open(sdist) as t:
        top = os.path.basename(sdist)[: -len(".tar.gz")]
        names = {n.removeprefix(top + "/") for n in t.getnames()}
        member = t.extractfile(f"{top}/LICENSE")
        assert member is not None
        assert member.read() == open(os.path.join(ROOT, "LICENSE"), "rb").read()
    assert {"LICENSE", "pyproject.toml", "setup.py", "suites/expectations/vblade-25.yaml"} <= names, sorted(names)[:40]
    assert any(n.startswith("corpora/") for n in names)


def test_wheel_in_a_fresh_venv_runs_the_suites_and_the_fuzzer(wheel, tmp_path):
    need_root()
    venv = tmp_path / "venv"
    ok(run([sys.executable, "-m", "venv", str(venv)], tmp_path), "python -m venv")
    python, command = str(venv / "bin" / "python"), str(venv / "bin" / "aoeconform")
    pip_install(python, wheel, tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    # the package, its suites and its corpus come from the venv, not the checkout
    where = ok(run([python, "-c", (
        "import aoeconform, os\n"
        "from aoeconform.scenario.loader import shipped_suites_dir\n"
        "from aoeconform.fuzz.seeds import default_corpus_dir, load_corpus\n"
        "print(os.path.dirname(aoeconform.__file__), shipped_suites_dir(), default_corpus_dir(), len(load_corpus(default_corpus_dir())))"
    )], elsewhere), "locating the installed package").split()
    package, suites_dir, corpus_dir, seeds = where
    assert package.startswith(str(venv)), package
    assert suites_dir == os.path.join(package, "suites") and corpus_dir == os.path.join(package, "corpora")
    assert int(seeds) == len([n for n in os.listdir(os.path.join(ROOT, "corpora")) if n.endswith((".hex", ".bin"))])

    done = run([command, "run", "--bundled", "lab", "--report-dir", "reports", "--seed", "7"], elsewhere)
    ok(done, "aoeconform run (installed)")
    report = json.loads((elsewhere / "reports" / "report.json").read_text())
    summary = report["summary"]
    assert summary["passed"] > 200 and summary["failed"] == 0 and summary["errors"] == 0, summary
    paths = [s["path"] for s in report["manifest"]["suites"]]
    assert paths and all(p.startswith(suites_dir) for p in paths), paths
    for name in ("junit.xml", "report.html", "report.sarif", "manifest.json"):
        assert (elsewhere / "reports" / name).is_file(), name

    # whether a finding turns up (exit 1) is the fuzzer's business, tested
    # elsewhere; here: the installed command fuzzes, from the shipped corpus
    done = run([command, "fuzz", "--in-memory", "--cases", "500", "--seed", "3", "--out", "findings"], elsewhere)
    assert done.returncode in (0, 1) and "500 cases" in done.stdout + done.stderr, f"{done.stdout}\n{done.stderr}"

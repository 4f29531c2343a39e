"""The CI recipes in docs/ci/ run: their shell steps, against the bundled target.

Each recipe is parsed (yaml.safe_load, or the Containerfile's instructions) and
its shell steps run here, as written, in a fresh directory. What cannot run
here is replaced, each in one way only:

- GitHub ``uses:`` steps do not run: the workspace is a fresh directory
  (checkout), this interpreter makes the venv (setup-python), and the paths
  upload-artifact and upload-sarif would upload are checked to exist;
- ``sudo`` and ``apt-get`` are shims on PATH: the tests run as root already,
  and scripts/setup has installed the packages, so the apt-get shim checks that
  each package named is there instead of installing it; ``python`` and
  ``python3`` are this interpreter;
- the variables a vendor sets are given values of this run: AOECONFORM (the
  pip requirement) is the wheel built from this checkout, AOE_LAB a lab name
  of this test process, the CI's run ids are fixed;
- the Containerfile's apt-get RUN is checked like the shim does, not run (it
  would empty this machine's apt lists), /opt/aoec and WORKDIR are temporary
  directories, and the image's entry point runs the documented
  ``run --bundled lab`` with this host's privileges.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import need_root, unique_lab_name
from sarif_check import check_sarif_file
from wheelbuild import ROOT, build_wheel, clean_env

CI_DIR = os.path.join(ROOT, "docs", "ci")
REPORT_FILES = ("report.json", "junit.xml", "report.sarif", "report.html", "manifest.json")

APT_GET_SHIM = r"""#!/bin/sh
# apt-get for tests/test_ci_recipes.py: checks that the packages are there, installs nothing
[ "$1" = update ] && exit 0
for pkg in "$@"; do
    case "$pkg" in
        -*|install) ;;
        python3|python3-venv) python3 -c 'import venv, ensurepip' || { echo "apt-get shim: no venv in python3" >&2; exit 100; } ;;
        *) dpkg -s "$pkg" >/dev/null 2>&1 || { echo "apt-get shim: $pkg is not installed" >&2; exit 100; } ;;
    esac
done
"""


@pytest.fixture(scope="module")
def wheel() -> str:
    return build_wheel()[0]


@pytest.fixture
def shims(tmp_path) -> Path:
    bin_dir = tmp_path / "shims"
    bin_dir.mkdir()
    (bin_dir / "sudo").write_text('#!/bin/sh\nexec "$@"\n')
    (bin_dir / "apt-get").write_text(APT_GET_SHIM)
    for name in ("sudo", "apt-get"):
        (bin_dir / name).chmod(0o755)
    for name in ("python", "python3"):
        (bin_dir / name).symlink_to(sys.executable)
    return bin_dir


@pytest.fixture
def lab_name():
    need_root()
    name = unique_lab_name()
    yield name
    # whatever the recipe did, leave no lab behind
    subprocess.run([sys.executable, "-m", "aoeconform", "lab", "down", "--name", name], capture_output=True, env=clean_env({"PYTHONPATH": ROOT}))


def _env(shims: Path, variables: dict) -> dict:
    env = clean_env({k: str(v) for k, v in variables.items()})
    env["PATH"] = f"{shims}:{env.get('PATH', '/usr/bin:/bin')}:/usr/sbin:/sbin"
    return env


def _bash(script: str, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    # the shell both CIs use for a step: bash, stopping at the first failure
    return subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def _lab_exists(name: str) -> bool:
    return f"{name}-ns" in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()


def _check_reports(directory: Path) -> None:
    for name in REPORT_FILES:
        assert (directory / name).is_file(), f"{directory}/{name} is missing"
    report = json.loads((directory / "report.json").read_text())
    assert report["summary"]["passed"] > 200 and report["summary"]["failed"] == 0, report["summary"]
    check_sarif_file(directory / "report.sarif")  # what upload-sarif would send: valid SARIF 2.1.0


def _load(name: str) -> dict:
    with open(os.path.join(CI_DIR, name)) as f:
        return yaml.safe_load(f)


def _expand(text: str, env: dict) -> str:
    """GitHub's ${{ env.NAME }} in a step's `with:`."""
    return re.sub(r"\$\{\{\s*env\.(\w+)\s*\}\}", lambda m: env[m.group(1)], text)


def test_github_actions_job_runs(wheel, shims, lab_name, tmp_path):
    doc = _load("github-actions.yml")
    assert "pull_request" in (doc.get("on") or doc.get(True))  # YAML 1.1 reads a bare `on` as true
    (job,) = doc["jobs"].values()
    assert job["permissions"]["security-events"] == "write"
    workspace, runner_temp = tmp_path / "workspace", tmp_path / "runner-temp"
    workspace.mkdir()
    runner_temp.mkdir()
    job_env = dict(job["env"], AOECONFORM=wheel, AOE_LAB=lab_name)
    env = _env(shims, dict(job_env, RUNNER_TEMP=runner_temp, GITHUB_WORKSPACE=workspace, GITHUB_RUN_ID=1))
    uploads, failed, ran = [], None, []
    for step in job["steps"]:
        condition = str(step.get("if", "success()"))
        if failed is not None and "always()" not in condition and "failure()" not in condition:
            continue
        if "uses" in step:
            action = step["uses"].split("@")[0]
            if action in ("actions/upload-artifact", "github/codeql-action/upload-sarif"):
                assert "always()" in condition, f"{action} must run when the job fails too"
                path = step["with"].get("path") or step["with"]["sarif_file"]
                uploads.append((action, workspace / _expand(path, job_env)))
            else:
                assert action in ("actions/checkout", "actions/setup-python"), f"unexpected action {action}"
            continue
        done = _bash(step["run"], workspace, dict(env, **{k: str(v) for k, v in step.get("env", {}).items()}))
        ran.append(step.get("name", step["run"][:40]))
        if done.returncode != 0 and failed is None:
            failed = f"step {ran[-1]!r} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert failed is None, failed
    assert {a for a, _ in uploads} == {"actions/upload-artifact", "github/codeql-action/upload-sarif"}
    for action, path in uploads:
        assert path.exists(), f"{action} would upload {path}, which is not there"
    _check_reports(workspace / job_env["REPORTS"])
    assert not _lab_exists(lab_name), "the job left its lab behind"


def test_gitlab_ci_job_runs(wheel, shims, lab_name, tmp_path):
    doc = _load("gitlab-ci.yml")
    (job,) = [v for k, v in doc.items() if not k.startswith(".") and isinstance(v, dict) and "script" in v]
    assert job["artifacts"]["when"] == "always"
    project = tmp_path / "project"
    project.mkdir()
    variables = dict(job["variables"], AOECONFORM=wheel, AOE_LAB=lab_name)
    env = _env(shims, dict(variables, CI_PROJECT_DIR=project, CI_PIPELINE_ID=1))
    # GitLab runs before_script and script in one shell, after_script in another, always
    done = _bash("\n".join(job["before_script"] + job["script"]), project, env)
    after = _bash("\n".join(job["after_script"]), project, env)
    assert done.returncode == 0, f"script exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert after.returncode == 0, f"after_script exited {after.returncode}:\n{after.stderr[-3000:]}"
    for path in job["artifacts"]["paths"] + [job["artifacts"]["reports"]["junit"]]:
        assert (project / path).exists(), f"artifact {path} is not there"
    _check_reports(project / variables["REPORTS"])
    assert not _lab_exists(lab_name), "the job left its lab behind"


def _instructions(path: str) -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", Path(path).read_text())
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def test_containerfile_recipe_runs(wheel, shims, tmp_path):
    need_root()
    prefix, workdir = tmp_path / "opt-aoec", tmp_path / "work"
    env = _env(shims, {})
    args: dict = {}
    entrypoint: list = []
    for keyword, rest in _instructions(os.path.join(CI_DIR, "Containerfile")):
        rest = rest.replace("/opt/aoec", str(prefix))
        if keyword == "FROM":
            assert rest.startswith("debian:")
        elif keyword == "ARG":
            name, _, default = rest.partition("=")
            args[name] = wheel if name == "AOECONFORM" else default
        elif keyword == "ENV":
            name, _, value = rest.partition("=")
            env[name] = value.replace("$PATH", env["PATH"])
        elif keyword == "RUN" and "apt-get" in rest:
            packages = [w for w in shlex.split(rest.split("install", 1)[1].split("&&")[0]) if not w.startswith("-")]
            assert "iproute2" in packages
            done = _bash(f"apt-get install {' '.join(packages)}", tmp_path, env)
            assert done.returncode == 0, done.stderr
        elif keyword == "RUN":
            done = _bash(rest, tmp_path, dict(env, **args))
            assert done.returncode == 0, f"RUN {rest} exited {done.returncode}:\n{done.stderr[-3000:]}"
        elif keyword == "WORKDIR":
            workdir.mkdir()
        elif keyword == "ENTRYPOINT":
            entrypoint = json.loads(rest)
    # the documented `podman run --privileged ... aoeconform run --bundled lab`, reports in /work/reports
    done = subprocess.run(entrypoint + ["run", "--bundled", "lab"], cwd=workdir, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert (shutil.which(entrypoint[0], path=env["PATH"]) or "").startswith(str(prefix)), "the image's aoeconform is not the one on PATH"
    _check_reports(workdir / "reports")


def test_ci_md_shows_each_recipe_as_it_is():
    with open(os.path.join(ROOT, "docs", "ci.md")) as f:
        doc = f.read()
    for name in ("github-actions.yml", "gitlab-ci.yml", "Containerfile"):
        with open(os.path.join(CI_DIR, name)) as f:
            assert f.read() in doc, f"docs/ci.md no longer shows docs/ci/{name} as it is; paste it again"

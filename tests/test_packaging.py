"""The package's declared dependencies match what its code imports.

Every third-party module that ``aoeconform`` imports is either a runtime
dependency in pyproject.toml or belongs to one of the optional modules listed
in ``EXTRA_ONLY`` below, with the extra that provides it; the runtime
dependencies hold nothing the code does not import. The optional pieces are
checked for real: in a fresh interpreter where the extras' modules cannot be
imported, every other module of the package still imports.

The ``test`` extra holds what tests/ imports, pytest plugins and type stubs for
the type check (tests/test_typecheck.py), nothing more (so it does not drag
boofuzz in while no test imports it).
"""

from __future__ import annotations

import ast
import importlib.metadata
import os
import re
import subprocess
import sys
from typing import Dict, Iterator, Set, Tuple

import pytest

tomllib = pytest.importorskip("tomllib")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = "aoeconform"

#: Package modules that need an extra, with the third-party module each brings
#: and the extra that provides it. Anything else in the package must import
#: with only the runtime dependencies installed.
EXTRA_ONLY: Dict[str, Tuple[str, str]] = {
    "aoeconform.wire.scapy_layer": ("scapy", "scapy"),
    "aoeconform.fuzz.boofuzz": ("boofuzz", "fuzz"),
    "aoeconform.fuzz.stateful": ("hypothesis", "fuzz"),
}
#: Third-party modules imported only inside functions that say which extra to
#: install when the import fails (``aoeconform bench fuzz``).
LAZY_OPTIONAL: Dict[str, str] = {
    "boofuzz": "fuzz",
}
#: pytest provides these to a plugin it loads itself (a ``pytest11`` entry point);
#: the ``pytest`` extra declares what the plugin imports (xdist: its scheduler
#: hook, only called by a running pytest-xdist)
PROVIDED_BY_PYTEST = {"pytest", "_pytest", "pluggy", "xdist"}
PLUGIN_EXTRA = ("pytest", ("pytest", "xdist"))


def pyproject() -> dict:
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        return tomllib.load(f)


def dist_name(requirement: str) -> str:
    """The normalised distribution name of a requirement string (PEP 503)."""
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    assert match, f"cannot read a distribution name from {requirement!r}"
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def dists_of(module: str) -> Set[str]:
    """Distributions that provide a top-level module, from the installed metadata
    (a module that is not installed here is taken to share its distribution's name)."""
    found = importlib.metadata.packages_distributions().get(module, [module])
    return {dist_name(d) for d in found}


def module_files(top: str) -> Iterator[Tuple[str, str]]:
    """(dotted module name, path) of every .py file under the directory ``top``."""
    base = os.path.dirname(top)
    for directory, subdirs, files in os.walk(top):
        subdirs[:] = [d for d in subdirs if d != "__pycache__"]
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(directory, name)
                dotted = os.path.relpath(path, base)[:-3].replace(os.sep, ".")
                yield dotted.removesuffix(".__init__"), path


def third_party_imports(path: str) -> Set[str]:
    """Top-level names of the absolute imports in a file that are neither stdlib nor ours."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    names: Set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n != PACKAGE}


def pytest_plugin_modules(project: dict) -> Set[str]:
    return set(project.get("entry-points", {}).get("pytest11", {}).values())


def package_imports(project: dict) -> Dict[str, Set[str]]:
    """Third-party module -> package modules importing it, less what extras or pytest provide."""
    plugins = pytest_plugin_modules(project)
    result: Dict[str, Set[str]] = {}
    for dotted, path in module_files(os.path.join(ROOT, PACKAGE)):
        for name in third_party_imports(path):
            if dotted in EXTRA_ONLY and EXTRA_ONLY[dotted][0] == name:
                continue
            if name in LAZY_OPTIONAL:
                continue
            if name in PROVIDED_BY_PYTEST and any(dotted == p or dotted.startswith(p + ".") for p in plugins):
                continue
            result.setdefault(name, set()).add(dotted)
    return result


def test_runtime_dependencies_are_what_the_package_imports():
    project = pyproject()["project"]
    declared = {dist_name(r) for r in project["dependencies"]}
    imported = package_imports(project)
    needed: Set[str] = set()
    for module, where in sorted(imported.items()):
        dists = dists_of(module)
        assert dists & declared, f"{module} (imported by {', '.join(sorted(where))}) is not a runtime dependency"
        needed |= dists & declared
    assert declared == needed, f"declared but never imported by the package: {sorted(declared - needed)}"


def test_optional_imports_belong_to_declared_extras():
    project = pyproject()["project"]
    extras = {name: {dist_name(r) for r in reqs} for name, reqs in project["optional-dependencies"].items()}
    plugin_extra, plugin_modules = PLUGIN_EXTRA
    for module, extra in [*EXTRA_ONLY.values(), *LAZY_OPTIONAL.items(), *((m, plugin_extra) for m in plugin_modules)]:
        assert extra in extras, f"extra {extra!r} is not declared"
        assert dists_of(module) & extras[extra], f"extra {extra!r} does not provide {module}"
    # each lazily imported optional module is imported nowhere at module level
    for dotted, path in module_files(os.path.join(ROOT, PACKAGE)):
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), path)
        for node in tree.body:
            names = []
            if isinstance(node, ast.Import):
                names = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module.split(".")[0]]
            lazy = set(names) & set(LAZY_OPTIONAL)
            if dotted in EXTRA_ONLY:  # a module that exists for its extra imports it at the top
                lazy -= {EXTRA_ONLY[dotted][0]}
            assert not lazy, f"{path}:{node.lineno} imports {sorted(lazy)} at module level; import it where it is used"


BLOCKER = """
import importlib, importlib.abc, pkgutil, sys
BLOCKED = set(sys.argv[1].split(","))
SKIP = set(sys.argv[2].split(","))

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"No module named {name!r} (blocked: an extra)")
        return None

sys.meta_path.insert(0, Block())
import aoeconform
failed = []
for info in pkgutil.walk_packages(aoeconform.__path__, "aoeconform."):
    if info.name in SKIP or info.name.endswith(".__main__"):  # __main__ would run the CLI
        continue
    try:
        importlib.import_module(info.name)
    except Exception as e:
        failed.append(f"{info.name}: {type(e).__name__}: {e}")
print("\\n".join(failed))
sys.exit(1 if failed else 0)
"""


def test_package_imports_without_its_extras():
    """Every module but the extras' own imports with the extras' modules missing."""
    blocked = {m for m, _ in EXTRA_ONLY.values()} | set(LAZY_OPTIONAL)
    env = dict(os.environ, PYTHONPATH=ROOT)
    done = subprocess.run(
        [sys.executable, "-c", BLOCKER, ",".join(sorted(blocked)), ",".join(sorted(EXTRA_ONLY))],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert done.returncode == 0, f"modules that need an extra they do not declare:\n{done.stdout}{done.stderr}"


def test_test_extra_is_what_the_tests_import():
    project = pyproject()["project"]
    runtime = {dist_name(r) for r in project["dependencies"]}
    test_extra = {dist_name(r) for r in project["optional-dependencies"]["test"]}
    ours = {name for name, _ in module_files(os.path.join(ROOT, "tests"))} | {"conftest"}
    needed: Set[str] = set()
    for _, path in module_files(os.path.join(ROOT, "tests")):
        for module in third_party_imports(path) - {n.split(".")[-1] for n in ours}:
            dists = dists_of(module)
            assert dists & (test_extra | runtime), f"{path} imports {module}, which neither the test extra nor the runtime provides"
            needed |= dists & test_extra
    plugins = {
        dist_name(ep.dist.name)
        for ep in importlib.metadata.entry_points(group="pytest11")
        if ep.dist is not None
    }
    stubs = {d for d in test_extra if d.startswith("types-")}
    unused = test_extra - needed - plugins - stubs
    assert not unused, f"the test extra holds what no test imports: {sorted(unused)}"

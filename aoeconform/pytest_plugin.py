"""aoeconform inside pytest (entry point ``pytest11``).

With ``--aoe-target IF:S.N`` (repeatable; ``bundled`` or ``bundled:QUIRK,...``
names a fresh reference target) or ``--aoe-bundled``, every case of the
YAML suites becomes a pytest item whose name is the case id (``[target]``
appended, except for a lone bundled target): the shipped suites, the files
and directories named with ``--aoe-suite``, and ``.yaml`` suites in the
tree pytest collects. A YAML file is a suite only if its top level has both
``suite:`` and ``cases:``, so other YAML in a test tree is left alone, and
without an ``--aoe-*`` target option nothing YAML is collected at all.

Outcomes map one to one: passed, failed (a FAILED or TIMEOUT case),
error-as-failure (a harness or suite error), skipped with the case's typed
reason (``not_permitted: ...``); ``--aoe-expectations FILE`` marks cases
xfail with their reason, and ``--aoe-strict`` makes an unexpected pass fail.
Levels (MUST, SHOULD, MAY) and tags are markers, so ``-m`` and ``-k`` select
the way they do for Python tests; JUnit XML carries case_id, rule, section,
level and target as properties. ``--aoe-report-dir DIR`` also writes the
reports ``aoeconform run`` writes, for the cases that ran (under xdist the
workers send their results to the controller, which writes them).

Under pytest-xdist the plugin schedules one work unit per target (read from
the ``[target]`` in the item's name), so one worker owns a target at a time.
A lone bundled target is not split that way: each worker starts its own.

Fixtures for hand-written tests: ``aoe_target``, ``aoe_reference_target``,
``aoe_lab``, ``aoe_vblade``, ``aoe_initiator`` (see docs/pytest.md).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fnmatch
import os
import pickle
import re
from typing import Optional

import pytest

from aoeconform.errors import HarnessError

#: markers of pytest and its plugins a suite tag must not turn into
_RESERVED_MARKERS = {"skip", "skipif", "xfail", "parametrize", "usefixtures", "filterwarnings", "timeout",
                     "slow", "root", "vblade", "xdist_group", "tryfirst", "trylast", "aoe", "aoe_case"}
_SUITE_LINE = re.compile(r"^suite\s*:", re.M)
_CASES_LINE = re.compile(r"^cases\s*:", re.M)


def pytest_addoption(parser):
    g = parser.getgroup("aoeconform", "aoeconform: AoE conformance cases as pytest items")
    g.addoption("--aoe-target", action="append", default=[], metavar="IF:S.N",
                help="a target to run the cases against (repeatable); `bundled[:QUIRK,...]` is a fresh reference target")
    g.addoption("--aoe-bundled", action="store_true", help="run against the bundled reference target (same as --aoe-target bundled)")
    g.addoption("--aoe-quirk", action="append", default=[], metavar="NAME", help="give bundled targets this quirk (see docs/quirks.md)")
    g.addoption("--aoe-suite", action="append", default=[], metavar="FILE_OR_DIR",
                help="suite files or directories to collect (default: the shipped suites, unless paths are given)")
    g.addoption("--aoe-expectations", metavar="FILE", help="YAML: case id (or glob) -> reason; those cases are xfail")
    g.addoption("--aoe-strict", action="store_true", help="an expected failure that passes fails (strict xfail)")
    g.addoption("--aoe-allow-write", action="store_true", help="let cases write to targets on interfaces (bundled targets always allow it)")
    g.addoption("--aoe-restart-cmd", action="append", default=[], metavar="CMD",
                help="command that restarts a target on an interface; once for all, or once per --aoe-target in order")
    g.addoption("--aoe-seed", type=int, default=0, metavar="N", help="seed of data patterns (default 0)")
    g.addoption("--aoe-timeout-floor", type=float, default=None, metavar="S",
                help="smallest reply timeout (default as `aoeconform run`: 0.25 s, 0.05 s for bundled and lab targets)")
    g.addoption("--aoe-bundled-mode", default="auto", choices=["auto", "lab", "memory", "loopback"],
                help="where bundled targets run: auto (a lab namespace when root, else in memory)")
    g.addoption("--aoe-report-dir", metavar="DIR",
                help="also write `aoeconform run`'s reports of the cases run here: report.json, junit.xml, report.html, "
                     "report.sarif, manifest.json, a pcap and a replay file per failing case (several targets: one "
                     "directory each in DIR/targets/, the fleet's report.json and report.html in DIR)")


# -- configuration -------------------------------------------------------------------


class AoeConfig:
    """What the plugin knows for this pytest process: targets, expectations, open handles."""

    def __init__(self, config):
        from aoeconform.scenario.targets import parse_targets

        opt = config.option
        texts = list(opt.aoe_target) + (["bundled"] if opt.aoe_bundled else [])
        self.active = bool(texts)
        self.config = config
        self.targets = parse_targets(texts or ["bundled"], opt.aoe_restart_cmd, opt.aoe_quirk, option="--aoe-target", hosts=True)
        self.strict = opt.aoe_strict
        self.expectations_path = opt.aoe_expectations
        self._expectations: Optional[dict] = None
        self.handles: dict = {}
        self.failures: dict = {}
        self.report_dir = opt.aoe_report_dir
        #: what --aoe-report-dir writes, gathered where the cases run
        self.records: Optional[_Records] = _Records() if self.report_dir else None

    @property
    def grouped(self) -> bool:
        """Items are named and scheduled by target (all but a lone bundled target)."""
        return len(self.targets) > 1 or not self.targets[0].bundled

    def expectations_for(self, case_ids: list) -> dict:
        """Case id -> reason for those of ``case_ids`` the expectations file lists."""
        if not self.expectations_path:
            return {}
        from aoeconform.scenario.selection import load_expectations

        return load_expectations(self.expectations_path, case_ids)

    def handle(self, target):
        """The open handle of ``target`` (opened on first use; a failure to open is
        remembered so every later item reports it at once)."""
        if target.label in self.failures:
            raise self.failures[target.label]
        handle = self.handles.get(target.label)
        if handle is None:
            from aoeconform.scenario.handle import TargetHandle, run_options

            opt = self.config.option
            try:
                endpoint = target.open(mode=opt.aoe_bundled_mode)
                handle = TargetHandle(endpoint, run_options(endpoint, seed=opt.aoe_seed, timeout_floor=opt.aoe_timeout_floor,
                                                            allow_write=True if target.bundled else opt.aoe_allow_write),
                                      label=target.label)
            except HarnessError as exc:
                self.failures[target.label] = exc
                if self.records is not None:
                    self.records.errors[target.label] = exc
                raise
            self.handles[target.label] = handle
            if self.records is not None:
                self.records.opened(target.label, handle)
        return handle

    def close(self) -> None:
        for handle in self.handles.values():
            handle.close()
        self.handles.clear()


_KEY = pytest.StashKey[AoeConfig]()


def _aoe(config) -> AoeConfig:
    return config.stash[_KEY]


def pytest_configure(config):
    config.addinivalue_line("markers", "aoe: an aoeconform conformance case")
    config.addinivalue_line("markers", "aoe_case(id): the aoeconform case id of this item")
    for level in ("MUST", "SHOULD", "MAY"):
        config.addinivalue_line("markers", f"{level}: aoeconform cases of requirement level {level}")
    config.addinivalue_line("markers", "aoe_quirks(*names): quirks for the aoe_reference_target fixture")
    try:
        aoe = AoeConfig(config)
    except HarnessError as exc:
        raise pytest.UsageError(f"aoeconform: {exc}") from None
    config.stash[_KEY] = aoe
    if not aoe.active:
        return
    if aoe.report_dir and not hasattr(config, "workerinput"):  # where the reports go: checked before anything runs
        from aoeconform.report.writer import prepare_report_dir

        try:
            prepare_report_dir(aoe.report_dir)
        except HarnessError as exc:
            raise pytest.UsageError(f"aoeconform: {exc}".replace("--report-dir", "--aoe-report-dir")) from None
        aoe.report_dir = os.path.abspath(aoe.report_dir)  # whatever directory the tests move to
    if not config.option.aoe_suite and config.args_source != pytest.Config.ArgsSource.ARGS:
        from aoeconform.scenario.loader import shipped_suites_dir

        where = shipped_suites_dir()
        if where is None:
            raise pytest.UsageError("aoeconform: no shipped suites found; name suites with --aoe-suite")
        config.option.aoe_suite = [where]
    for path in config.option.aoe_suite:
        if not os.path.exists(path):
            raise pytest.UsageError(f"aoeconform: --aoe-suite {path}: no such file or directory")
    _replace_args(config, [os.path.abspath(p) for p in config.option.aoe_suite])


@pytest.hookimpl(optionalhook=True, tryfirst=True)
def pytest_xdist_make_scheduler(config, log):
    """xdist, on the controller: one work unit per target, so one worker owns a target
    at a time (the items' names carry the target's label)."""
    aoe = config.stash.get(_KEY, None)
    if aoe is None or not aoe.active or not aoe.grouped or config.getoption("dist", "no") == "each":
        return None
    return _target_scheduling(config, log, {t.label: t.host for t in aoe.targets})


def target_of(nodeid: str, labels) -> Optional[str]:
    """The label in ``nodeid``'s parameters (``case/id[LABEL]``, ``test_x[LABEL-3]``), longest first."""
    if not nodeid.endswith("]") or "[" not in nodeid:
        return None
    params = nodeid[nodeid.index("[", nodeid.rfind("::") + 2 if "::" in nodeid else 0) + 1:-1]
    for label in sorted(labels, key=len, reverse=True):
        if params == label or params.startswith(label + "-") or params.endswith("-" + label) or f"-{label}-" in params:
            return label
    return None


def _target_scheduling(config, log, hosts: dict):
    """xdist's LoadScope scheduling with one work unit per target.

    xdist's own ``--dist loadgroup`` reads ``xdist_group`` marks from node ids it
    rewrites on the workers, which pytest 9.2's structured node ids no longer
    allow; this reads the target from the ``[...]`` of the item's name instead.
    Items of no known target stay units of their own. A target named
    ``TARGET@HOST`` goes only to the worker of gateway HOST (``--tx ...//id=HOST``):
    the host whose interfaces reach it."""
    from xdist.scheduler import LoadScopeScheduling  # only called by a running xdist

    prefix = "aoe-target:"

    class TargetScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            label = target_of(nodeid, hosts)
            return f"{prefix}{label}" if label is not None else nodeid

        def _fits(self, node, scope: str) -> bool:
            host = hosts.get(scope[len(prefix):]) if scope.startswith(prefix) else None
            return host is None or host == node.gateway.id

        def _has_work_for(self, node) -> bool:
            return any(self._fits(node, scope) for scope in self.workqueue)

        def _assign_work_unit(self, node) -> None:
            scope = next((s for s in self.workqueue if self._fits(node, s)), None)
            if scope is None:
                return
            work_unit = self.workqueue.pop(scope)
            self.assigned_work.setdefault(node, {})[scope] = work_unit
            collection = self.registered_collections[node]
            node.send_runtest_some([collection.index(nodeid) for nodeid, done in work_unit.items() if not done])

        def _reschedule(self, node) -> None:
            if node.shutting_down:
                return
            if not self._has_work_for(node):
                node.shutdown()  # after what it has; units pinned elsewhere are not its
                return
            if self._pending_of(self.assigned_work.get(node, {})) > 2:
                return
            self._assign_work_unit(node)

        def schedule(self) -> None:
            if self.collection is not None or not self._check_nodes_have_same_collection():  # type: ignore[has-type]
                return super().schedule()
            collection = list(next(iter(self.registered_collections.values())))
            self.collection = collection
            for nodeid in collection:
                self.workqueue.setdefault(self._split_scope(nodeid), {})[nodeid] = False
            for node in self.nodes:  # no "more nodes than units" shutdown: a host may own the only unit
                self._reschedule(node)
            for node in self.nodes:
                self._reschedule(node)

    return TargetScheduling(config, log)


def _replace_args(config, suite_paths: list) -> None:
    """Collect the suites as well as (or, when no path was named, instead of) the usual paths."""
    if config.args_source == pytest.Config.ArgsSource.ARGS:
        config.args = list(config.args) + [p for p in suite_paths if p not in config.args]
    else:
        config.args = suite_paths


def pytest_sessionfinish(session):
    aoe = session.config.stash.get(_KEY, None)
    if aoe is None or aoe.records is None or not aoe.active:
        return
    aoe.records.finish(aoe.handles)
    if hasattr(session.config, "workerinput"):  # an xdist worker: the controller writes the reports
        session.config.workeroutput["aoe_records"] = aoe.records.dumps()
    else:
        aoe.records.write(aoe.report_dir, aoe.targets, strict=aoe.strict, seed=session.config.option.aoe_seed)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    """xdist, on the controller: a worker's results for --aoe-report-dir."""
    aoe = node.config.stash.get(_KEY, None)
    data = getattr(node, "workeroutput", {}).get("aoe_records")
    if aoe is not None and aoe.records is not None and data:
        aoe.records.merge(_Records.loads(data))


def pytest_unconfigure(config):
    aoe = config.stash.get(_KEY, None)
    if aoe is not None:
        aoe.close()


class _Records:
    """What ``--aoe-report-dir`` writes: the results of the cases run in this
    process, per target, with what is known of each target. An xdist worker
    sends its records to the controller (pickled: between processes of one
    pytest session, same code), which merges them and writes the reports."""

    def __init__(self) -> None:
        self.results: list = []  # (target label, CaseResult) in the order they ran
        self.manifests: dict = {}  # label -> manifest of the target's first handle
        self.facts: dict = {}  # label -> TargetFacts.as_dict()
        self.exchanges: dict = {}  # label -> exchanges, summed over the processes
        self.elapsed: dict = {}  # label -> seconds of cases, the longest process's
        self.errors: dict = {}  # label -> the HarnessError that kept the target from opening
        self.cases: dict = {}  # case id -> Case (replay files hold the case's source)
        self.order: dict = {}  # case id -> place in the collection (the same in every worker)
        self.suites: dict = {}  # path -> Suite
        self.workers = 0  # xdist workers whose records were merged here

    def collected(self, case) -> None:
        self.cases.setdefault(case.id, case)
        self.order.setdefault(case.id, len(self.order))

    def opened(self, label: str, handle) -> None:
        from aoeconform.report.writer import build_manifest

        if label not in self.manifests:
            self.facts[label] = handle.facts.as_dict()
            self.manifests[label] = build_manifest(suites=sorted(self.suites.values(), key=lambda s: s.path),
                                                   endpoint=handle.endpoint, facts=handle.facts,
                                                   options=handle.engine.options)

    def add(self, label: str, result) -> None:
        self.results.append((label, result))

    def finish(self, handles: dict) -> None:
        """This process's exchanges and time per target, once its cases are done."""
        for label, handle in handles.items():
            self.exchanges[label] = handle.engine.wire.exchanges
            self.elapsed[label] = sum(r.duration for lab, r in self.results if lab == label)

    def merge(self, other: "_Records") -> None:
        self.workers += 1
        self.results += other.results
        for label in other.manifests:
            self.manifests.setdefault(label, other.manifests[label])
            self.facts.setdefault(label, other.facts[label])
        for label, count in other.exchanges.items():
            self.exchanges[label] = self.exchanges.get(label, 0) + count
            self.elapsed[label] = max(self.elapsed.get(label, 0.0), other.elapsed.get(label, 0.0))
        for key in ("errors", "cases", "order", "suites"):
            for k, v in getattr(other, key).items():
                getattr(self, key).setdefault(k, v)

    def dumps(self) -> bytes:
        return pickle.dumps(self)

    @staticmethod
    def loads(data: bytes) -> "_Records":
        return pickle.loads(data)

    def write(self, directory: str, targets, *, strict: bool, seed: int) -> None:
        """``aoeconform run``'s reports in ``directory``; several targets as a fleet."""
        from aoeconform.errors import TargetUnreachable
        from aoeconform.report.fleet import fleet_document, target_dirs, write_fleet
        from aoeconform.report.model import RunInfo
        from aoeconform.report.writer import ReportWriter, build_manifest

        labels = [t.label for t in targets]
        several = len(labels) > 1
        runs, columns = [], []
        for label, where in zip(labels, target_dirs(labels) if several else [""] * len(labels)):
            run = RunInfo(strict=strict)
            run.manifest = dict(self.manifests.get(label) or build_manifest(
                suites=sorted(self.suites.values(), key=lambda s: s.path), endpoint=None, facts=None, options=None,
                start=run.start))
            described = run.manifest["target_description"]
            run.manifest["target_description"] = f"{label}: {described}" if described else label
            writer = ReportWriter(os.path.join(directory, where), run, self.cases,
                                  context={"seed": seed, "target": self.facts.get(label, {})})
            ran = [r for lab, r in self.results if lab == label]
            for result in sorted(ran, key=lambda r: (self.order.get(r.id, 0), r.repeat)):
                writer.case_finished(result)
            run.exchanges, run.elapsed = self.exchanges.get(label, 0), self.elapsed.get(label, 0.0)
            error = self.errors.get(label)
            if isinstance(error, TargetUnreachable):
                run.stop("target_unreachable", str(error))
            writer.close()
            runs.append(run)
            columns.append({"label": label, "report_dir": where, "facts": self.facts.get(label),
                            "description": run.manifest["target_description"],
                            "error": str(error).splitlines()[0] if error else None})
        if several:
            with contextlib.suppress(OSError):  # failures/ are each target's; none at the top
                os.rmdir(os.path.join(directory, "failures"))
            ran_ids = {r.id for _, r in self.results}
            cases = sorted((c for i, c in self.cases.items() if i in ran_ids), key=lambda c: self.order[c.id])
            write_fleet(directory, fleet_document(columns, runs, cases, workers=max(1, self.workers),
                                                  elapsed=max(self.elapsed.values(), default=0.0)))


# -- collection ----------------------------------------------------------------------


def is_suite_file(path) -> bool:
    """A YAML file whose top level has both ``suite:`` and ``cases:``."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError):
        return False
    if not (_SUITE_LINE.search(text) and _CASES_LINE.search(text)):
        return False
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return True  # let the loader name the line
    return isinstance(data, dict) and "suite" in data and "cases" in data


def pytest_collect_file(file_path, parent):
    aoe = parent.config.stash.get(_KEY, None)
    if aoe is None or not aoe.active or file_path.suffix not in (".yaml", ".yml"):
        return None
    if not is_suite_file(file_path):
        return None
    return AoeSuiteFile.from_parent(parent, path=file_path)


class AoeSuiteError(Exception):
    pass


class AoeSuiteFile(pytest.File):
    def collect(self):
        from aoeconform.scenario.loader import SuiteError, load_suites

        aoe = _aoe(self.config)
        try:
            suites = load_suites([str(self.path)])
        except SuiteError as exc:
            raise AoeSuiteError(str(exc)) from None
        labelled = aoe.grouped  # the xdist scheduler reads the target from the name
        try:
            expected = aoe.expectations_for([c.id for s in suites for c in s.cases])
        except HarnessError as exc:
            raise AoeSuiteError(str(exc)) from None
        for suite in suites:
            if aoe.records is not None:
                aoe.records.suites[suite.path] = suite
            for case in suite.cases:
                if aoe.records is not None:
                    aoe.records.collected(case)
                for target in aoe.targets:
                    name = f"{case.id}[{target.label}]" if labelled else case.id
                    item = AoeCaseItem.from_parent(self, name=name, case=case, target=target)
                    _mark(item, aoe, case, target, expected.get(case.id))
                    yield item

    def repr_failure(self, excinfo, style=None):
        if excinfo.errisinstance(AoeSuiteError):
            return str(excinfo.value)
        return super().repr_failure(excinfo)


def _marker_name(tag: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_\-]", "_", tag)
    return f"aoe_{name}" if name in _RESERVED_MARKERS else name


def _mark(item, aoe: AoeConfig, case, target, reason: Optional[str]) -> None:
    config = item.config
    item.add_marker(pytest.mark.aoe)
    item.add_marker(pytest.mark.aoe_case(case.id))
    item.add_marker(getattr(pytest.mark, case.level))
    for tag in case.tags:
        name = _marker_name(tag)
        config.addinivalue_line("markers", f"{name}: aoeconform suite tag {tag}")
        item.add_marker(getattr(pytest.mark, name))
    if reason is not None:
        item.add_marker(pytest.mark.xfail(reason=reason or "listed in the expectations file", strict=aoe.strict,
                                          raises=AoeCaseFailed))


class AoeCaseFailed(AssertionError):
    """The target did not do what the case requires (FAILED or TIMEOUT)."""


class AoeCaseError(Exception):
    """The case could not be judged (a harness or suite error, or the target was gone)."""


class AoeCaseItem(pytest.Item):
    def __init__(self, *, case, target, **kwargs):
        super().__init__(**kwargs)
        self.case = case
        self.target = target
        self.result = None
        for key, value in (("case_id", case.id), ("rule", ",".join(str(r) for r in case.rule)),
                           ("section", case.section), ("level", case.level), ("target", target.label)):
            self.user_properties.append((key, value))

    def runtest(self):
        from aoeconform.scenario import results as R

        aoe = _aoe(self.config)
        handle = aoe.handle(self.target)
        result = self.result = handle.run_case(self.case)
        self.user_properties.append(("outcome", self._outcome_as_run_reports_it(result.outcome)))
        if aoe.records is not None:
            xfail = self.get_closest_marker("xfail")
            aoe.records.add(self.target.label, dataclasses.replace(
                result, outcome=self._outcome_as_run_reports_it(result.outcome),
                expected_failure=xfail.kwargs.get("reason") if xfail is not None else None))
        if result.failed_rule is not None:  # the rule the failing step checks
            self.user_properties += [("failed_rule", str(result.failed_rule)), ("failed_level", result.gating_level)]
        if result.outcome == R.PASSED:
            return
        if result.outcome == R.SKIPPED:
            reason = result.skip_reason or R.UNSUPPORTED
            message = result.message if result.message.startswith(reason) else f"{reason}: {result.message}"
            # reported at the case's line in its suite, not at this line
            raise pytest.skip.Exception(message, _use_item_location=True)
        if result.outcome in (R.FAILED, R.TIMEOUT):
            raise AoeCaseFailed(result.message)
        raise AoeCaseError(result.message)

    def _outcome_as_run_reports_it(self, outcome: str) -> str:
        """The engine's outcome in ``aoeconform run``'s words: a listed expectation makes a
        failure ``xfailed`` and a pass ``xpassed`` (pytest's xfail marker does the same)."""
        if self.get_closest_marker("xfail") is None:
            return outcome
        return {"failed": "xfailed", "timeout": "xfailed", "passed": "xpassed"}.get(outcome, outcome)

    def repr_failure(self, excinfo, style=None):
        if excinfo.errisinstance((AoeCaseFailed, AoeCaseError)):
            return self._describe(excinfo.value)
        if excinfo.errisinstance(HarnessError):
            return f"aoeconform: {excinfo.value}"
        return super().repr_failure(excinfo, style)

    def _describe(self, exc) -> str:
        """The case, its outcome and each field that differed (printed once, here)."""
        result = self.result
        assert result is not None  # runtest sets it before raising these
        kind = "error" if isinstance(exc, AoeCaseError) else result.outcome
        lines = [f"{self.case.describe()}", f"{kind} against {self.target.label}: {result.message}"]
        if result.failed_step is not None and result.failed_step < len(result.steps):
            for verdict in result.steps[result.failed_step].verdicts:
                for check in verdict.get("checks", []):
                    line = f"{check['field']}: expected {check['expected']}, got {check['actual']}"
                    if not check.get("ok", True) and line not in result.message:  # each difference once
                        lines.append(f"  {line}")
        lines += [f"  note: {n}" for n in result.notes]
        lines.append(f"  suite: {self.case.where}")
        return "\n".join(lines)

    def reportinfo(self):
        return self.path, self.case.line - 1, f"aoe case {self.name}"


# -- fixtures -------------------------------------------------------------------------


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def missing(reason: str) -> None:
    """Skip, or fail under CI=true, with a one-line reason (the project's rule
    for tests that need root or a program; the project's own tests use it too)."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true, so this is a failure, not a skip)", pytrace=False)
    pytest.skip(reason)


def need_root() -> None:
    from aoeconform.lab.testbed import root_problem

    problem = root_problem()
    if problem:
        missing(problem)


def _up_or_skip(lab):
    from aoeconform.errors import PermissionDenied

    try:
        return lab.up()
    except PermissionDenied as exc:
        missing(str(exc))


def pytest_generate_tests(metafunc):
    """A test using ``aoe_target`` runs once per target named on the command line
    (its name carries the target, as the YAML cases' names do)."""
    if "aoe_target" not in metafunc.fixturenames:
        return
    aoe = _aoe(metafunc.config)
    if aoe.grouped:
        metafunc.parametrize("aoe_target", aoe.targets, indirect=True, ids=[t.label for t in aoe.targets])


@pytest.fixture
def aoe_target(request):
    """The target under test (``--aoe-target``; the bundled reference target when none
    is named) as a ``TargetHandle``: ``header()``, ``exchange()``, ``check()``,
    ``expect()``. One session per target and worker, shared by the tests."""
    target = getattr(request, "param", None) or _aoe(request.config).targets[0]
    try:
        return _aoe(request.config).handle(target)
    except HarnessError as exc:
        pytest.fail(f"aoeconform: {target.label}: {exc}", pytrace=False)


@pytest.fixture
def aoe_reference_target(request):
    """A fresh bundled reference target for this test (a lab namespace when root,
    else in memory). Quirks: ``@pytest.mark.aoe_quirks("flush-status-zero")`` or
    indirect parametrization with a list of quirk names."""
    from aoeconform.scenario import endpoint as ep
    from aoeconform.scenario.handle import TargetHandle, run_options
    from aoeconform.target.quirks import check_quirks

    quirks = list(getattr(request, "param", None) or [])
    marker = request.node.get_closest_marker("aoe_quirks")
    if marker is not None:
        quirks += list(marker.args)
    try:
        endpoint = ep.bundled(check_quirks(quirks), mode=request.config.option.aoe_bundled_mode)
    except HarnessError as exc:
        pytest.fail(f"aoeconform: {exc}", pytrace=False)
    label = "bundled" + (":" + ",".join(quirks) if quirks else "")
    with TargetHandle(endpoint, run_options(endpoint), label=label) as handle:
        yield handle


@pytest.fixture
def aoe_lab(request):
    """A lab (veth pair, the target's end in its own namespace), torn down after the
    test even when it fails. Needs root. ``lab.start_vblade(...)``, ``lab.start_in_netns(...)``."""
    from aoeconform.lab import Lab
    from aoeconform.lab.testbed import unique_lab_name

    need_root()
    params = getattr(request, "param", None) or {}
    lab = Lab(unique_lab_name(), mtu=params.get("mtu", 1500))
    try:
        yield _up_or_skip(lab)
    finally:
        lab.down()


@pytest.fixture
def aoe_vblade(request, tmp_path):
    """Debian's vblade serving a 64 MiB image (random first MiB) on a fresh lab;
    ``.target`` is its ``--target`` address. Parametrize indirectly with a dict
    of mtu/shelf/slot/extra_args. Needs root and vblade."""
    import shutil

    from aoeconform.lab.testbed import VBLADE_SHELF, VBLADE_SLOT, vblade_lab

    need_root()
    if shutil.which("vblade") is None:
        missing("needs vblade (apt-get install vblade)")
    p = getattr(request, "param", None) or {}
    with vblade_lab(tmp_path, p.get("mtu", 1500), p.get("shelf", VBLADE_SHELF), p.get("slot", VBLADE_SLOT),
                    p.get("extra_args", ()), up=_up_or_skip) as vb:
        yield vb


@pytest.fixture
def aoe_initiator(request):
    """Factory: ``aoe_initiator(target=None, loss=0, dup=0, reorder=0, seed=0)`` gives the
    reference initiator (harness timers), attached to ``target`` (a TargetHandle;
    default: ``aoe_target``) through the harness's fault layer."""
    from aoeconform.initiator.driver import HARNESS_TIMERS, Initiator
    from aoeconform.transport.impair import ImpairedTransport

    def make(target=None, *, loss: float = 0.0, dup: float = 0.0, reorder: float = 0.0, seed: int = 0, **impair):
        handle = target if target is not None else request.getfixturevalue("aoe_target")
        ep = handle.endpoint
        transport = ep.transport
        if loss or dup or reorder or impair:
            transport = ImpairedTransport(transport, seed=seed, loss=loss, dup=dup, reorder=reorder, **impair)
        ini = Initiator(transport, ep.shelf, ep.slot, target_mac=ep.mac, **HARNESS_TIMERS)
        ini.identify()
        handle.engine.wire.drain()  # the initiator's replies are not the engine's
        return ini

    return make

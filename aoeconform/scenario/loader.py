"""Load YAML suites into ``Case`` objects, or refuse them with ``file:line: what``.

Nothing is sent before every suite of a run has loaded: a malformed suite
stops the run with a ``UsageError`` (exit status 2). Three layers of checks:

1. YAML itself (syntax, duplicate keys), with PyYAML's marks for lines;
2. the published JSON Schema (``suite.schema.json``), each error mapped back
   to the line of the offending node;
3. semantic checks the schema cannot express: one action per step, ids
   unique across all files and prefixed by the suite name, expressions that
   parse, quirk names that exist.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from importlib import resources
from typing import Any, Iterable, Optional

import yaml

from aoeconform.errors import UsageError

from .expr import ExprError, check_syntax
from .model import ACTIONS, CAPABILITIES, Case, Step, Suite
from .rules import RULES

SCHEMA_NAME = "suite.schema.json"
#: libyaml's parser when PyYAML has it (ten times faster); marks are the same
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class SuiteError(UsageError):
    """One or more problems in suite files; the message has one line per problem."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        shown = problems[:20]
        more = f"\n... and {len(problems) - 20} more" if len(problems) > 20 else ""
        super().__init__("malformed suite:\n" + "\n".join(shown) + more)


@functools.lru_cache(maxsize=1)
def schema() -> dict:
    return json.loads(resources.files("aoeconform.scenario").joinpath(SCHEMA_NAME).read_text())


@functools.lru_cache(maxsize=1)
def _validator():
    import jsonschema

    return jsonschema.Draft202012Validator(schema())


# -- YAML with line numbers ----------------------------------------------------


class _Lines:
    """Line numbers (1-based) by JSON path, filled while the node tree is converted."""

    def __init__(self):
        self.by_path: dict[tuple, int] = {}

    def line(self, path: Iterable) -> int:
        path = tuple(path)
        while path not in self.by_path and path:
            path = path[:-1]
        return self.by_path.get(path, 1)


def _convert(node, loader, path: tuple, lines: _Lines, problems: list[str], filename: str):
    lines.by_path[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        out = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, (str, int, bool)) or isinstance(key, bool):
                problems.append(f"{filename}:{key_node.start_mark.line + 1}: mapping keys must be names, not {key!r}")
                continue
            key = str(key)
            if key in out:
                problems.append(f"{filename}:{key_node.start_mark.line + 1}: duplicate key {key!r} (first at line {lines.by_path[path + (key,)]})")
                continue
            out[key] = _convert(value_node, loader, path + (key,), lines, problems, filename)
            lines.by_path.setdefault(path + (key,), value_node.start_mark.line + 1)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_convert(item, loader, path + (i,), lines, problems, filename) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def _quoted_scalar_ending_at(text: str, mark) -> Optional[int]:
    """The 1-based line where a quoted string starts that runs on over several
    lines and ends on the line of ``mark``: the sign of a missing closing quote
    (a multi-line quoted string is valid YAML, so only what follows it fails)."""
    last = None
    try:
        for token in yaml.scan(text, Loader=_LOADER):
            if token.start_mark.index >= mark.index:
                break
            last = token
    except yaml.YAMLError:
        pass
    if (isinstance(last, yaml.ScalarToken) and last.style in ('"', "'")
            and last.start_mark.line != last.end_mark.line and last.end_mark.line == mark.line):
        return last.start_mark.line + 1
    return None


def yaml_syntax_problem(exc: yaml.MarkedYAMLError, text: str, filename: str) -> str:
    """``file:line: YAML syntax: what`` with the line where the problem starts.

    PyYAML notices a problem where it gives up, often lines later: an unclosed
    quote at the end of the file, a `[` or `{` at the next key. For scanner
    errors and flow collections its context mark is where the unfinished thing
    began; a quoted string that swallowed lines is found from the tokens."""
    mark = exc.problem_mark or exc.context_mark
    line = mark.line + 1 if mark else 1
    what = exc.problem or str(exc)
    start = exc.context_mark
    context = exc.context or ""
    # (not a plain scalar: there the problem, such as a tab, is what follows it)
    if (start is not None and context.startswith(("while scanning", "while parsing a flow"))
            and context != "while scanning a plain scalar" and start.line + 1 < line):
        what += f" (noticed at line {line})"
        line = start.line + 1
    elif exc.problem_mark is not None:
        opened = _quoted_scalar_ending_at(text, exc.problem_mark)
        if opened is not None and opened < line:
            what += f" at line {line}: the quoted string that starts here runs on to it; is its closing quote missing?"
            line, context = opened, ""
    if context.startswith("while parsing a block"):
        what += " (check this line's indentation)"
    if context:
        what = f"{context}: {what}"
    return f"{filename}:{line}: YAML syntax: {what}"


def _parse_yaml(text: str, filename: str) -> tuple[Any, _Lines, list[str]]:
    lines = _Lines()
    problems: list[str] = []
    loader = _LOADER(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, lines, [f"{filename}:1: the file is empty; a suite needs `suite:` and `cases:`"]
        data = _convert(node, loader, (), lines, problems, filename)
    except yaml.MarkedYAMLError as exc:
        return None, lines, [yaml_syntax_problem(exc, text, filename)]
    except yaml.YAMLError as exc:
        return None, lines, [f"{filename}:1: YAML: {exc}"]
    finally:
        loader.dispose()
    return data, lines, problems


# -- schema errors -------------------------------------------------------------


def _path_text(path) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"


def _schema_message(error) -> str:
    where = _path_text(error.absolute_path)
    v = error.validator
    if v == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        allowed = ", ".join(sorted(error.schema.get("properties", {})))
        return f"{where}: unknown key {', '.join(repr(e) for e in extra)} (allowed here: {allowed})"
    if v == "required":
        return f"{where}: {error.message}"
    if v == "type" and error.absolute_path and error.absolute_path[-1] == "section" and isinstance(error.instance, (int, float)):
        return f"{where}: write the section as a quoted string (\"{error.instance}\"); YAML reads 3.10 as the number 3.1"
    if v == "enum":
        return f"{where}: {error.instance!r} is not one of {', '.join(map(str, error.validator_value))}"
    if v in ("anyOf", "oneOf") and error.context:
        # the alternative that got furthest says the most
        best = max(error.context, key=lambda e: (len(e.absolute_path), -len(e.message)))
        if len(best.absolute_path) > len(error.absolute_path):
            return _schema_message(best)
        return f"{where}: {error.instance!r} is not a valid value here ({best.message})"
    return f"{where}: {error.message}"


def _schema_problems(data, lines: _Lines, filename: str) -> list[str]:
    problems = []
    for error in sorted(_validator().iter_errors(data), key=lambda e: lines.line(e.absolute_path)):
        problems.append(f"{filename}:{lines.line(error.absolute_path)}: {_schema_message(error)}")
    return problems


# Schema validation is most of the time it takes to load the shipped suites
# (about a second). A text that passed once against the same schema passes
# again, so its digest is remembered (in memory, and in the user's cache
# directory when it is writable); the semantic checks below always run.
_validated: set[str] = set()


def _validation_cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "aoeconform", "valid-suites")


def _text_digest(text: str) -> str:
    h = hashlib.sha256(json.dumps(schema(), sort_keys=True).encode())
    h.update(b"\0" + text.encode("utf-8", "surrogatepass"))
    return h.hexdigest()


def _known_valid(digest: str) -> bool:
    if digest in _validated:
        return True
    if os.path.exists(os.path.join(_validation_cache_dir(), digest)):
        _validated.add(digest)
        return True
    return False


def _remember_valid(digest: str) -> None:
    _validated.add(digest)
    try:
        directory = _validation_cache_dir()
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, digest), "w"):
            pass
    except OSError:
        pass  # no cache then


# -- semantic checks -----------------------------------------------------------

_INT_FIELDS = {
    "header": ("ver", "flags", "error", "shelf", "slot", "command", "ethertype", "tag"),
    "ata": ("aflags", "err_feature", "sector_count", "cmd_status", "lba", "reserved"),
    "config": ("bufcnt", "firmware", "sector_count", "ccmd", "version", "config_length"),
    "mask": ("reserved", "mcmd", "merror", "dir_count"),
    "reserve": ("rcmd", "nmacs"),
}
_COMMANDS = ("ata", "config", "mask", "reserve")
_WRITE_OPCODES = (0x30, 0x34)


def _check_send(send: dict, path: tuple, lines: _Lines, filename: str, problems: list[str]):
    command = send.get("command")
    if isinstance(command, str) and command not in _COMMANDS:
        try:
            check_syntax(command)
        except ExprError:
            problems.append(f"{filename}:{lines.line(path + ('command',))}: command {command!r} is not one of {', '.join(_COMMANDS)} or a number")
    for section, names in _INT_FIELDS.items():
        body = send.get(section)
        if not isinstance(body, dict):
            continue
        for name in names:
            value = body.get(name)
            if isinstance(value, str) and not (section == "header" and name == "tag" and value == "auto"):
                try:
                    check_syntax(value)
                except ExprError as exc:
                    problems.append(f"{filename}:{lines.line(path + (section, name))}: {section}.{name}: {exc}")
    for name in ("truncate",):
        value = send.get(name)
        if isinstance(value, str):
            try:
                check_syntax(value)
            except ExprError as exc:
                problems.append(f"{filename}:{lines.line(path + (name,))}: {name}: {exc}")


def _is_write_send(send: dict) -> bool:
    ata = send.get("ata") or {}
    op = ata.get("cmd_status")
    aflags = ata.get("aflags")
    return (isinstance(op, int) and op in _WRITE_OPCODES) or (isinstance(aflags, int) and bool(aflags & 0x01))


def _make_step(raw: dict, path: tuple, lines: _Lines, filename: str, problems: list[str]) -> Optional[Step]:
    actions = [k for k in raw if k in ACTIONS]
    line = lines.line(path)
    if "send" in raw:
        actions = ["send"]  # expect beside send belongs to it
    if len(actions) != 1:
        if not actions:
            problems.append(f"{filename}:{line}: a step needs one action key: {', '.join(ACTIONS)}")
        else:
            problems.append(f"{filename}:{line}: a step has one action, this one has {', '.join(actions)}; split it into several steps")
        return None
    action = actions[0]
    body = raw[action]
    for key in ("send",):
        if action == key and isinstance(body, dict):
            _check_send(body, path + (key,), lines, filename, problems)
    if action == "duplicate" and isinstance(body, dict) and isinstance(body.get("send"), dict):
        _check_send(body["send"], path + ("duplicate", "send"), lines, filename, problems)
    if action == "batch" and isinstance(body, dict):
        for i, item in enumerate(body.get("sends") or []):
            if not isinstance(item, dict):
                continue
            kinds = [k for k in ("send", "write", "read_verify") if k in item]
            if len(kinds) != 1:
                problems.append(f"{filename}:{lines.line(path + ('batch', 'sends', i))}: a batch item needs exactly one of send, write, read_verify")
            elif kinds[0] == "send":
                _check_send(item["send"], path + ("batch", "sends", i, "send"), lines, filename, problems)
        order = body.get("order")
        if isinstance(order, list) and sorted(order) != list(range(len(body.get("sends") or []))):
            problems.append(f"{filename}:{lines.line(path + ('batch', 'order'))}: order {order} must be a permutation of 0..{len(body.get('sends') or []) - 1}")
    rule = raw.get("rule", [])
    rules = [rule] if isinstance(rule, int) else list(rule)
    for number in rules:
        if number not in RULES:
            problems.append(f"{filename}:{lines.line(path + ('rule',))}: step rule {number} is not a rule of the protocol notes (1-{max(RULES)})")
    return Step(action, body, raw, line, raw.get("label", ""), raw.get("timeout"), rules, list(raw.get("requires", [])))


def _implied_requirements(steps: list[Step]) -> set[str]:
    needs = set()
    for step in steps:
        if step.action in ("write", "load"):
            needs.add("writes")
        if step.action == "load":
            needs.add("load")
        if step.action == "linux":
            needs.update(("linux", "writes"))
        if step.action == "restart":
            needs.add("restart")
        sends = []
        if step.action == "send":
            sends.append(step.body)
        elif step.action == "duplicate":
            sends.append(step.body.get("send") or {})
        elif step.action == "batch":
            for item in step.body.get("sends") or []:
                if "write" in item:
                    needs.add("writes")
                elif "send" in item:
                    sends.append(item["send"])
        for send in sends:
            if isinstance(send, dict):
                if _is_write_send(send):
                    needs.add("writes")
                for role in _mac_roles_in(send):
                    if role == "second_mac":
                        needs.add("second_mac")
    return needs


def _mac_roles_in(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from _mac_roles_in(v)
    elif isinstance(value, list):
        for v in value:
            yield from _mac_roles_in(v)
    elif isinstance(value, str) and value in ("second_mac", "$second_mac"):
        yield "second_mac"


def _known_quirks() -> set[str]:
    try:
        from aoeconform.target.quirks import QUIRKS
    except ImportError:  # the target package is optional for loading
        return set()
    return set(QUIRKS)


def is_expectations_document(data) -> bool:
    """An expectations file's top level: case ids (or globs) mapped to reasons,
    no `suite:` key. Such files sit beside suites (suites/expectations/)."""
    return (isinstance(data, dict) and "suite" not in data and bool(data)
            and all(isinstance(v, str) or v is None for v in data.values()))


def load_suite_text(text: str, filename: str, *, skip_expectations: bool = False) -> tuple[Optional[Suite], list[str]]:
    """The suite in ``text``, or the problems found. With ``skip_expectations``
    (files collected from a directory), an expectations document gives (None, [])."""
    data, lines, problems = _parse_yaml(text, filename)
    if data is None:
        return None, problems
    if is_expectations_document(data) and not problems:
        if skip_expectations:
            return None, []
        return None, [f"{filename}:1: an expectations file (case id -> reason), not a suite; give it with --expectations"]
    if not isinstance(data, dict):
        return None, problems + [f"{filename}:1: a suite is a mapping with `suite:` and `cases:`, not a {type(data).__name__}"]
    digest = _text_digest(text)
    if not _known_valid(digest):
        schema_problems = _schema_problems(data, lines, filename)
        if not schema_problems:
            _remember_valid(digest)
        problems += schema_problems
    if problems:
        return None, problems
    name = data["suite"]
    defaults = data.get("defaults") or {}
    quirks = _known_quirks()
    cases = []
    for i, raw in enumerate(data["cases"]):
        path = ("cases", i)
        line = lines.line(path)
        case_id = raw["id"]
        if not case_id.startswith(name + "/"):
            problems.append(f"{filename}:{lines.line(path + ('id',))}: case id {case_id!r} must start with the suite name: {name}/...")
        steps = []
        for j, step_raw in enumerate(raw["steps"]):
            step = _make_step(step_raw, path + ("steps", j), lines, filename, problems)
            if step is not None:
                steps.append(step)
        section = raw.get("section", defaults.get("section"))
        if section is None:
            problems.append(f"{filename}:{line}: case {case_id}: give the spec section (section: \"3.1\"), or a suite-wide defaults.section")
        rule = raw.get("rule", [])
        requires = list(dict.fromkeys(list(defaults.get("requires", [])) + list(raw.get("requires", []))))
        implied = _implied_requirements(steps)
        if "readonly" in requires:
            implied.discard("writes")  # writing to a read-only export is the point of such a case
        for need in sorted(implied - set(requires)):
            requires.append(need)
        for need in requires + [n for s in steps for n in s.requires]:
            if need not in CAPABILITIES:
                problems.append(f"{filename}:{line}: case {case_id}: unknown requirement {need!r}")
        rules = [rule] if isinstance(rule, int) else list(rule)
        for number in rules:
            if number not in RULES:
                problems.append(f"{filename}:{lines.line(path + ('rule',))}: case {case_id}: rule {number} is not a rule of the protocol notes (1-{max(RULES)})")
        # a case is held to its headline rule's level unless it says otherwise
        level = raw.get("level") or defaults.get("level") or (RULES[rules[0]][1] if rules and rules[0] in RULES else "MUST")
        catches = list(raw.get("catches", []))
        if quirks:
            for q in catches:
                if q not in quirks:
                    problems.append(f"{filename}:{lines.line(path + ('catches',))}: case {case_id}: unknown quirk {q!r} in catches (see docs/quirks.md)")
        cases.append(Case(
            id=case_id,
            requirement=raw["requirement"].strip(),
            section=str(section or ""),
            level=level,
            steps=steps,
            file=filename,
            line=line,
            suite=name,
            rule=rules,
            tags=list(dict.fromkeys(list(defaults.get("tags", [])) + list(raw.get("tags", [])))),
            requires=requires,
            note=raw.get("note", ""),
            uncatchable=raw.get("uncatchable", ""),
            catches=catches,
            timeout=raw.get("timeout"),
            source=raw,
        ))
    seen: dict[str, int] = {}
    for case in cases:
        if case.id in seen:
            problems.append(f"{filename}:{case.line}: duplicate case id {case.id!r} (first at line {seen[case.id]})")
        seen.setdefault(case.id, case.line)
    if problems:
        return None, problems
    digest = hashlib.sha256(text.encode()).hexdigest()
    return Suite(name, data.get("description", ""), filename, digest, cases), []


#: directories never searched for suites: expectations files live there
SKIPPED_DIRS = ("expectations",)


def suite_files_in(directory: str) -> list[str]:
    """The .yaml/.yml files under ``directory``, sorted, leaving out hidden
    directories and expectations/ (expectations documents elsewhere are left
    out when loaded, by their content)."""
    found = []
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in SKIPPED_DIRS)
        found += [os.path.join(root, n) for n in sorted(files) if n.endswith((".yaml", ".yml")) and not n.startswith(".")]
    return found


def load_suites(paths: Iterable[str]) -> list[Suite]:
    """Every suite, or SuiteError listing every problem in every file.

    A directory stands for the suites under it (see ``suite_files_in``)."""
    suites, problems = [], []
    files: list[tuple[str, bool]] = []  # (path, collected from a directory)
    for path in paths:
        if os.path.isdir(path):
            inside = suite_files_in(path)
            if not inside:
                problems.append(f"{path}: no .yaml suite files in this directory")
            files += [(f, True) for f in inside]
        else:
            files.append((path, False))
    for path, collected in files:
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except FileNotFoundError:
            problems.append(f"{path}: no such suite file")
            continue
        except UnicodeDecodeError as exc:
            problems.append(f"{path}:1: not UTF-8 text ({exc.reason})")
            continue
        suite, found = load_suite_text(text, os.path.relpath(path) if not os.path.isabs(path) or path.startswith(os.getcwd()) else path,
                                       skip_expectations=collected)
        problems += found
        if suite is not None:
            suites.append(suite)
    first: dict[str, Case] = {}
    names: dict[str, str] = {}
    for suite in suites:
        if suite.name in names and names[suite.name] != suite.path:
            problems.append(f"{suite.path}:1: suite name {suite.name!r} is also used by {names[suite.name]}")
        names.setdefault(suite.name, suite.path)
        for case in suite.cases:
            if case.id in first and first[case.id] is not case:
                problems.append(f"{case.where}: duplicate case id {case.id!r} (also at {first[case.id].where})")
            first.setdefault(case.id, case)
    if problems:
        raise SuiteError(problems)
    return suites


def shipped_suites_dir() -> Optional[str]:
    """Where the shipped suites live (one source of truth: the repository's suites/).

    Looked up as ``$AOECONFORM_SUITES``, then ``suites/`` beside the package
    (a checkout or an editable install), then ``aoeconform/suites`` inside an
    installed package (a wheel build copies them there)."""
    env = os.environ.get("AOECONFORM_SUITES")
    if env:
        return env
    package_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for candidate in (os.path.join(os.path.dirname(package_dir), "suites"), os.path.join(package_dir, "suites")):
        if os.path.isdir(candidate):
            return candidate
    return None


def shipped_suite_paths() -> list[str]:
    where = shipped_suites_dir()
    if where is None:
        raise UsageError("no shipped suites found (looked for suites/ beside the package); name suite files, or set AOECONFORM_SUITES")
    paths = suite_files_in(where)
    if not paths:
        raise UsageError(f"no suites in {where}; name suite files on the command line")
    return paths


def all_cases(suites: list[Suite]) -> list[Case]:
    return [case for suite in suites for case in suite.cases]

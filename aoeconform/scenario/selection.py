"""Choosing cases before anything is sent: globs, -k expressions, expectations files.

``-k`` takes a boolean expression over words: ``and``, ``or``, ``not`` and
parentheses. A word matches a case when it is one of its tags, its level
(MUST, SHOULD, MAY), its suite name, its section (``s3.1`` or ``§3.1``),
``rule<N>``, or, when it holds ``*`` or ``/``, a glob on its id. Words,
globs and the operators match whatever their case (``must``, ``LBA48``, ``AND``).
"""

from __future__ import annotations

import fnmatch
import re
from typing import Iterable, Optional

import yaml

from aoeconform.errors import UsageError

from .model import Case

_WORD = re.compile(r"\s*([()]|[^\s()]+)")


def _words(case: Case) -> set[str]:
    """What -k words a case answers to, folded to lower case."""
    words = set(case.tags) | {case.level, case.suite, f"s{case.section}", f"§{case.section}"}
    words |= {f"rule{r}" for r in case.rule}
    return {w.lower() for w in words}


def _tokens(text: str) -> list[str]:
    out, pos = [], 0
    text = text.strip()
    while pos < len(text):
        m = _WORD.match(text, pos)
        if not m:
            break
        token = m.group(1)
        # case does not matter: operators and words alike are compared lower-cased
        out.append(token.lower())
        pos = m.end()
    return out


class _KParser:
    def __init__(self, text: str):
        self.text = text
        self.tokens = _tokens(text)
        self.pos = 0
        if not self.tokens:
            raise UsageError("-k: empty expression")
        self.tree = self.expr()
        if self.pos != len(self.tokens):
            raise UsageError(f"-k {text!r}: unexpected {self.tokens[self.pos]!r}")

    def peek(self):
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self):
        tok = self.peek()
        if tok is None:
            raise UsageError(f"-k {self.text!r}: ends too early")
        self.pos += 1
        return tok

    def expr(self):
        node = self.conj()
        while self.peek() == "or":
            self.take()
            node = ("or", node, self.conj())
        return node

    def conj(self):
        node = self.neg()
        while self.peek() == "and":
            self.take()
            node = ("and", node, self.neg())
        return node

    def neg(self):
        if self.peek() == "not":
            self.take()
            return ("not", self.neg())
        tok = self.take()
        if tok == "(":
            node = self.expr()
            if self.take() != ")":
                raise UsageError(f"-k {self.text!r}: missing ')'")
            return node
        if tok in (")", "and", "or"):
            raise UsageError(f"-k {self.text!r}: unexpected {tok!r}")
        return ("word", tok)


def _eval(node, case: Case, words: set[str]) -> bool:
    kind = node[0]
    if kind == "word":
        word = node[1]
        if "*" in word or "/" in word or "?" in word:
            return fnmatch.fnmatchcase(case.id.lower(), word)
        return word in words
    if kind == "not":
        return not _eval(node[1], case, words)
    if kind == "and":
        return _eval(node[1], case, words) and _eval(node[2], case, words)
    return _eval(node[1], case, words) or _eval(node[2], case, words)


def check_keyword(text: str) -> None:
    _KParser(text)


def keyword_matches(text: str, case: Case) -> bool:
    return _eval(_KParser(text).tree, case, _words(case))


def select(cases: Iterable[Case], select=(), exclude=(), keyword: Optional[str] = None) -> list[Case]:
    """Cases whose id matches a --select glob (all if none), no --exclude glob, and -k."""
    tree = _KParser(keyword).tree if keyword else None
    out = []
    for case in cases:
        if select and not any(fnmatch.fnmatchcase(case.id, g) for g in select):
            continue
        if any(fnmatch.fnmatchcase(case.id, g) for g in exclude):
            continue
        if tree is not None and not _eval(tree, case, _words(case)):
            continue
        out.append(case)
    return out


def load_expectations(path: str, known_ids: Iterable[str] = ()) -> dict[str, str]:
    """An expectations file: YAML mapping of case id (or glob) to the reason it is
    expected to fail. Globs are expanded against ``known_ids``."""
    known = list(known_ids)
    out: dict[str, str] = {}
    for key, reason in read_expectations(path).items():
        if any(c in key for c in "*?["):
            for case_id in known:
                if fnmatch.fnmatchcase(case_id, key):
                    out.setdefault(case_id, reason)
        else:
            out[key] = reason
    return out


def read_expectations(path: str) -> dict[str, str]:
    """An expectations file's entries as written: id or glob -> reason."""
    from .loader import yaml_syntax_problem

    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        data = yaml.safe_load(text)
    except FileNotFoundError:
        raise UsageError(f"--expectations {path}: no such file") from None
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path}:1: not UTF-8 text ({exc.reason})") from None
    except yaml.MarkedYAMLError as exc:
        raise UsageError(yaml_syntax_problem(exc, text, path)) from None
    except yaml.YAMLError as exc:
        raise UsageError(f"{path}:1: YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UsageError(f"{path}:1: an expectations file maps case ids to reasons, e.g. `ata/flush/status: vblade answers 0x00`")
    return {str(key): "" if reason is None else str(reason) for key, reason in data.items()}


def last_failed_ids(report_dir: str) -> list[str]:
    """The ids of the cases that failed, timed out or errored in the report.json
    of ``report_dir`` (each once, in the order they ran)."""
    import json
    import os

    from .results import FAILING

    path = os.path.join(report_dir, "report.json")
    where = f"--last-failed {report_dir}"
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
        cases = doc["cases"]
        ids = [c["id"] for c in cases if c.get("outcome") in FAILING]
    except FileNotFoundError:
        raise UsageError(f"{where}: no report.json there; give the --report-dir of an earlier run") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"{where}: {path} is not a report of aoeconform run ({type(exc).__name__}: {exc})") from None
    if not ids:
        stopped = (doc.get("run") or {}).get("stopped") or {}
        why = f"; it stopped early ({stopped.get('reason')}: {stopped.get('message', '')[:200]})" if stopped else ""
        raise UsageError(f"{where}: no case failed or errored in that run ({len(cases)} cases){why}; nothing to rerun")
    return list(dict.fromkeys(ids))

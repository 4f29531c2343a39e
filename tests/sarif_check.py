"""Every SARIF file the tests produce is checked here: against the published
SARIF 2.1.0 JSON schema (tests/data/sarif-schema-2.1.0.json, source in
tests/data/README.md), and for what the schema leaves open but code scanning
needs: locations relative to a uriBaseId that the run defines."""

from __future__ import annotations

import functools
import json
import os
from urllib.parse import urlparse

SCHEMA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "sarif-schema-2.1.0.json")


@functools.lru_cache(maxsize=1)
def _validator():
    import jsonschema

    with open(SCHEMA, encoding="utf-8") as f:
        schema = json.load(f)
    cls = jsonschema.validators.validator_for(schema)  # draft-04, as the schema says
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def sarif_problems(doc: dict) -> list[str]:
    """What is wrong with a SARIF document (empty when nothing is)."""
    problems = [f"schema: {'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}"
                for e in sorted(_validator().iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))]
    for run in doc.get("runs", []):
        bases = run.get("originalUriBaseIds", {})
        for name, base in bases.items():
            uri = base.get("uri", "")
            if not (urlparse(uri).scheme == "file" and uri.endswith("/")):
                problems.append(f"originalUriBaseIds.{name}: {uri!r} is not an absolute file: uri ending in /")
        for i, result in enumerate(run.get("results", [])):
            for location in result.get("locations", []):
                artifact = location.get("physicalLocation", {}).get("artifactLocation", {})
                uri, base = artifact.get("uri", ""), artifact.get("uriBaseId")
                if urlparse(uri).scheme or uri.startswith("/"):
                    problems.append(f"results[{i}]: uri {uri!r} is not relative")
                if base not in bases:
                    problems.append(f"results[{i}]: uriBaseId {base!r} is not in originalUriBaseIds {sorted(bases)}")
    return problems


def check_sarif_file(path) -> dict:
    """The document at ``path``; AssertionError naming every problem."""
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    problems = sarif_problems(doc)
    assert not problems, f"{path}: not valid SARIF 2.1.0:\n" + "\n".join(problems[:20])
    return doc


def check_sarif_tree(top) -> int:
    """Check every *.sarif file under ``top``; how many there were."""
    count = 0
    for root, _dirs, files in os.walk(top):
        for name in files:
            if name.endswith(".sarif"):
                check_sarif_file(os.path.join(root, name))
                count += 1
    return count

"""Helpers for the scenario/report tests: run inline YAML suites in memory."""

from __future__ import annotations

import textwrap

from aoeconform.scenario.endpoint import bundled_loopback
from aoeconform.scenario.engine import Engine, RunOptions
from aoeconform.scenario.loader import load_suite_text


def load_text(text: str, filename: str = "inline.yaml"):
    suite, problems = load_suite_text(textwrap.dedent(text), filename)
    assert not problems, problems
    return suite


def run_text(text: str, quirks=(), readonly: bool = False, **options):
    """Run every case of an inline suite against the in-memory reference target."""
    suite = load_text(text)
    endpoint = bundled_loopback(quirks, readonly=readonly)
    try:
        engine = Engine(endpoint, RunOptions(seed=options.pop("seed", 7), timeout_floor=0.05, **options))
        return {r.id: r for r in engine.run(suite.cases)}
    finally:
        endpoint.close()


def one_case(steps: str, quirks=(), requires: str = "[]", **options):
    """A single case 't/c' with the given steps (YAML, indented freely)."""
    body = textwrap.indent(textwrap.dedent(steps).strip(), " " * 6)
    text = f"suite: t\ncases:\n  - id: t/c\n    requirement: r\n    section: \"1\"\n    requires: {requires}\n    steps:\n{body}\n"
    return run_text(text, quirks, **options)["t/c"]

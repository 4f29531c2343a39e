"""The shipped suites against the clean reference target and every quirk
(in memory): nothing fails on the clean target, every quirk is caught."""

import json

from aoeconform.cli import main


def test_shipped_suites_selftest(capsys):
    status = main(["selftest", "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert doc["problems"] == [] and status == 0
    assert all(q["caught_by"] for q in doc["quirks"].values())

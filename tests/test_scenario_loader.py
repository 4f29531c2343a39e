import os
import textwrap

import pytest

from aoeconform.errors import UsageError
from aoeconform.scenario.loader import SuiteError, load_suite_text, load_suites, schema

FIXTURES = os.path.join(os.path.dirname(__file__), "suites")

GOOD = """\
suite: s
cases:
  - id: s/one
    requirement: r
    section: "2.1"
    steps:
      - send: {command: config}
        expect: {reply: {header: {response: true}}}
"""


def problems_of(text: str) -> list[str]:
    suite, problems = load_suite_text(textwrap.dedent(text), "x.yaml")
    assert suite is None
    return problems


def test_fixture_suite_loads():
    [suite] = load_suites([os.path.join(FIXTURES, "basic.yaml")])
    case = {c.id: c for c in suite.cases}["basic/ata/read-one"]
    assert case.section == "3.1" and case.level == "MUST" and "fixture" in case.tags
    assert case.line == 23  # the line of its "- id:"
    # writes are implied by a write step
    assert "writes" in {c.id: c for c in suite.cases}["basic/ata/write-read"].requires
    assert len(suite.sha256) == 64


def test_schema_is_valid_2020_12():
    import jsonschema

    jsonschema.Draft202012Validator.check_schema(schema())


def test_yaml_syntax_error_has_line():
    [p] = problems_of(GOOD + "  - id: [unclosed\n")
    assert p.startswith("x.yaml:9:") and "YAML syntax" in p  # the line with the `[`, not the end of the file


def test_unknown_key_names_line_and_allowed_keys():
    [p] = problems_of(GOOD.replace("      - send: {command: config}", "      - send: {command: config, colour: red}"))
    assert p.startswith("x.yaml:7:") and "'colour'" in p and "allowed here" in p


def test_missing_requirement():
    [p] = problems_of(GOOD.replace("    requirement: r\n", ""))
    assert p.startswith("x.yaml:3:") and "'requirement' is a required property" in p


def test_section_as_number_gets_a_hint():
    [p] = problems_of(GOOD.replace('section: "2.1"', "section: 3.10"))
    assert p.startswith("x.yaml:5:") and "quoted string" in p


def test_two_actions_in_one_step():
    [p] = problems_of(GOOD.replace("      - send: {command: config}\n        expect: {reply: {header: {response: true}}}",
                                   "      - flush: {}\n        liveness: {}"))
    assert p.startswith("x.yaml:7:") and "one action" in p


def test_bad_expression_has_line():
    [p] = problems_of(GOOD.replace("{command: config}", "{command: config, header: {shelf: \"$shelf +\"}}"))
    assert p.startswith("x.yaml:7:") and "header.shelf" in p


def test_id_must_start_with_suite_name():
    [p] = problems_of(GOOD.replace("id: s/one", "id: other/one"))
    assert p.startswith("x.yaml:3:") and "must start with the suite name" in p


def test_duplicate_key():
    ps = problems_of(GOOD.replace("    section: \"2.1\"\n", "    section: \"2.1\"\n    section: \"2.2\"\n"))
    assert any(p.startswith("x.yaml:6:") and "duplicate key 'section'" in p for p in ps)


def test_unknown_capability_and_quirk():
    ps = problems_of(GOOD.replace("    section: \"2.1\"\n", "    section: \"2.1\"\n    requires: [teleport]\n"))
    assert any("x.yaml:6" in p and "teleport" in p for p in ps)
    ps = problems_of(GOOD.replace("    section: \"2.1\"\n", "    section: \"2.1\"\n    catches: [no-such-quirk]\n"))
    assert any("no-such-quirk" in p for p in ps)


def test_duplicate_ids_across_files(tmp_path):
    a = tmp_path / "a.yaml"
    b = tmp_path / "b.yaml"
    a.write_text(GOOD)
    b.write_text(GOOD.replace("suite: s", "suite: s"))
    with pytest.raises(SuiteError) as err:
        load_suites([str(a), str(b)])
    assert "duplicate case id 's/one'" in str(err.value)
    assert err.value.exit_status == 2


def test_missing_file_is_usage_error(tmp_path):
    with pytest.raises(UsageError, match="no such suite file"):
        load_suites([str(tmp_path / "nope.yaml")])


def test_empty_file():
    [p] = problems_of("")
    assert p.startswith("x.yaml:1:") and "empty" in p

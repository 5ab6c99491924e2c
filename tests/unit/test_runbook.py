"""docs/RUNBOOK.md covers every alert rule the code can emit: a rule added without its section fails here.

The names are found in the source, not in a list someone must remember to update: every
``Finding(...)`` built outside the tests names its rule as its first argument, and that
argument must be a string literal (so it can be found).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUNBOOK = ROOT / "docs" / "RUNBOOK.md"
PARTS = ("**Means.**", "**Confirm.**", "**Do.**")


def rule_names_in(source: str, where: str) -> tuple[set[str], list[str]]:
    """Rule names of the ``Finding(...)`` calls in ``source``, and the calls whose rule is not a literal."""
    names: set[str] = set()
    problems: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if not (isinstance(func, ast.Name) and func.id == "Finding"
                or isinstance(func, ast.Attribute) and func.attr == "Finding"):
            continue
        rule = node.args[0] if node.args else next((k.value for k in node.keywords if k.arg == "rule"), None)
        if isinstance(rule, ast.Constant) and isinstance(rule.value, str):
            names.add(rule.value)
        else:
            problems.append(f"{where}:{node.lineno}: the rule of a Finding must be a string literal")
    return names, problems


def emitted_rules() -> tuple[set[str], list[str]]:
    names: set[str] = set()
    problems: list[str] = []
    for path in sorted(ROOT.rglob("*.py")):
        relative = path.relative_to(ROOT)
        if relative.parts[0] in ("tests", ".venv", "bench") or any(p.startswith(".") for p in relative.parts):
            continue
        found, bad = rule_names_in(path.read_text(), str(relative))
        names |= found
        problems += bad
    return names, problems


def runbook_sections() -> dict[str, str]:
    text = RUNBOOK.read_text()
    parts = re.split(r"^## (\S+)\s*$", text, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2]))


def test_every_rule_the_code_can_emit_has_a_runbook_section_saying_what_it_means_and_what_to_do():
    rules, problems = emitted_rules()
    assert not problems, problems
    assert {"storage_unavailable", "kafka_unreachable", "backup_mirror_failed", "job_failing"} <= rules
    sections = runbook_sections()
    missing = sorted(rules - sections.keys())
    assert not missing, f"docs/RUNBOOK.md has no section for {missing}: add '## <rule>' with {', '.join(PARTS)}"
    for rule in sorted(rules):
        absent = [part for part in PARTS if part not in sections[rule]]
        assert not absent, f"docs/RUNBOOK.md, section {rule}: add {absent}"


def test_every_runbook_section_is_a_rule_the_code_emits():
    rules, _ = emitted_rules()
    stale = sorted(runbook_sections().keys() - rules)
    assert not stale, f"docs/RUNBOOK.md describes rules nothing emits any more: {stale}"


def test_the_scan_finds_a_new_rule_anywhere_and_refuses_a_rule_name_it_cannot_read():
    source = (
        "from alerts import lifecycle\n"
        "def a(o, c): return [Finding('brand_new_rule', 's', 'warning', 'x')]\n"
        "def b(o, c): return [lifecycle.Finding(rule='another_rule', subject='s', severity='info', summary='y')]\n"
        "def c(o, c, name): return [Finding(name, 's', 'warning', 'z')]\n"
    )
    names, problems = rule_names_in(source, "x.py")
    assert names == {"brand_new_rule", "another_rule"}
    assert problems == ["x.py:4: the rule of a Finding must be a string literal"]
    assert "brand_new_rule" not in runbook_sections()  # so adding it to alerts/rules.py would fail the test above

"""The layout of DESIGN.md, held: each folder imports only what its row says it may.

Models hold state and import nothing of ours; rules and rendering read models; notifiers
adapt and never orchestrate; flows orchestrate; the API triggers and reads, and of the
notifiers it may use only the providers' status-callback parsers (the anymail pattern).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

MAY_IMPORT = {
    "models": set(),
    "rules": {"models"},
    "rendering": {"models"},
    "notifiers": {"models", "rendering"},
    "flows": {"models", "rules", "rendering", "notifiers"},
    "api": {"models", "rendering", "flows", "notifiers"},
    "cli": {"models", "rendering", "flows", "api"},
}
#: What ``api/`` may take from ``notifiers/``: parsers of providers' status callbacks.
STATUS_PARSERS = ("breachflow.notifiers.twilio.status",)


def _imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
    return found


@pytest.mark.parametrize("folder", sorted(MAY_IMPORT))
def test_each_folder_imports_only_what_the_design_allows(folder: str) -> None:
    wrong = []
    for path in sorted((REPO / folder).rglob("*.py")):
        for line, module in _imports(path):
            parts = module.split(".")
            if parts[0] != "breachflow" or len(parts) < 2 or parts[1] not in MAY_IMPORT:
                continue
            other = parts[1]
            allowed = other == folder or other in MAY_IMPORT[folder]
            if folder == "api" and other == "notifiers":
                allowed = module.startswith(STATUS_PARSERS)
            if not allowed:
                wrong.append(f"{path.relative_to(REPO)}:{line} imports {module}")
    assert not wrong, "\n".join(wrong)


def test_flows_are_grouped_by_stage_with_the_runbook_on_top() -> None:
    """One sub-package per stage, each with its Prefect task in ``step.py`` where it has
    one; on top only the incident's life and what every run shares."""
    flows = REPO / "flows"
    stages = {p.name for p in flows.iterdir() if (p / "__init__.py").exists()}
    assert stages == {
        "assess",
        "approve",
        "notify",
        "announce",
        "report",
        "close",
        "intake",
        "export",
    }
    on_top = {p.name for p in flows.glob("*.py")}
    assert on_top == {
        "__init__.py",
        "incident.py",
        "runs.py",
        "steps.py",
        "deployments.py",
        "watchdog.py",
    }
    for stage in ("assess", "approve", "notify", "announce", "report", "close"):
        assert (flows / stage / "step.py").exists(), stage


def test_the_incident_flow_reads_like_the_runbook() -> None:
    """`flows/incident.py` stays one short function: the life of an incident."""
    source = (REPO / "flows" / "incident.py").read_text(encoding="utf-8")
    functions = [n for n in ast.parse(source).body if isinstance(n, ast.FunctionDef)]
    assert [f.name for f in functions] == ["incident_response"]
    assert functions[0].end_lineno - functions[0].lineno < 25


def test_tests_mirror_the_folders() -> None:
    """Every test file sits under the folder of what it tests (or at the top, for the
    whole: the layout, the package, the docs)."""
    folders = {*MAY_IMPORT, "testkit"}
    for path in (REPO / "tests").rglob("test_*.py"):
        relative = path.relative_to(REPO / "tests")
        if len(relative.parts) == 1:
            assert relative.name in {"test_layout.py", "test_packaging.py", "test_docs.py"}, (
                relative
            )
            continue
        assert relative.parts[0] in folders, relative
        source = REPO.joinpath(*relative.parts[:-1])
        assert source.is_dir(), f"{relative} mirrors no folder"

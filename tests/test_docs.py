"""The documentation: a short README, links that stay inside the repository, and reference
pages generated from the code that cover all of it.

The site itself is built by ``scripts/test`` (``mkdocs build --strict``, which also checks
every anchor); these checks are the fast part, with no build.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
PAGES = sorted([REPO / "README.md", *DOCS.rglob("*.md")])
#: [text](target) and <scheme://…>, outside code spans and fenced blocks.
LINK = re.compile(r"(?<!\\)\[[^\]]*\]\(\s*<?([^)>\s]+)>?(?:\s+\"[^\"]*\")?\s*\)")
AUTOLINK = re.compile(r"<((?:https?|ftp|mailto):[^>\s]+)>")


def _reference() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_reference", DOCS / "hooks/reference.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _prose(path: Path) -> str:
    """The Markdown of ``path`` without fenced blocks and code spans, where a bracket or an
    address is text, not a link."""
    text = re.sub(r"^ *(```|~~~).*?^ *\1", "", path.read_text(encoding="utf-8"), flags=re.M | re.S)
    return re.sub(r"(`+)(?:(?!\1).)+?\1", "", text, flags=re.S)


def _links(path: Path) -> list[str]:
    prose = _prose(path)
    return LINK.findall(prose) + AUTOLINK.findall(prose)


def test_readme_is_the_short_front_door() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(readme.encode("utf-8")) < 12 * 1024
    # CI installs the project and runs the tests exactly as the README says.
    assert "## Quick start" in readme
    assert "pip install .\nbreach demo" in readme
    assert "## Tests" in readme
    assert "```bash\nscripts/test\n```" in readme


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_links_stay_inside_the_repository_and_resolve(page: Path) -> None:
    generated = {DOCS / uri for uri in _reference().PAGES}
    broken = []
    for target in _links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):
            broken.append(f"{target}: links outside the repository (name it, do not link it)")
            continue
        path = target.split("#", 1)[0]
        if not path:
            continue  # an anchor on the same page: mkdocs build --strict checks those
        resolved = (page.parent / path).resolve()
        inside = resolved == REPO or REPO in resolved.parents
        if not inside:
            broken.append(f"{target}: outside the repository")
        elif not resolved.exists() and not (page != REPO / "README.md" and resolved in generated):
            broken.append(f"{target}: no such file")
    assert not broken, f"{page.relative_to(REPO)}:\n" + "\n".join(broken)


def test_the_link_check_finds_links() -> None:
    """The pages do link to each other: a pattern that found nothing would pass anything."""
    assert "docs/guides/security-team.md" in _links(REPO / "README.md")
    assert "../reference/configuration.md" in _links(DOCS / "guides/sre.md")


def test_configuration_reference_lists_every_setting() -> None:
    from breachflow.models.settings import Settings

    page = _reference().configuration_page()
    missing = [name for name in Settings.model_fields if f"`BREACH_{name.upper()}`" not in page]
    assert not missing, missing


def test_rules_catalogue_lists_every_regime() -> None:
    page = _reference().rules_page()
    data = {"groups", "timezones"}
    regimes = sorted(p.stem for p in (REPO / "rules").glob("*.yaml") if p.stem not in data)
    assert len(regimes) > 20
    missing = [regime for regime in regimes if f"\n## {regime} {{#{regime}}}\n" not in page]
    assert not missing, missing
    for field in ("who is told", "deadline", "content", "citation", "substitute notice"):
        assert f"| {field} |" in page
    for mark in ("[✓]", "[~]", "[U]"):
        assert mark in page

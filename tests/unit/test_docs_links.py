"""The README is a front door: every page it links exists, and every link inside the
documentation lands on a file that exists and, with an anchor, on one of its headings."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"

# The reference moved out of the README into these pages.
MOVED_PAGES = [
    "configuration.md",
    "api.md",
    "client-and-backups.md",
    "operations.md",
    "security.md",
    "development.md",
    "decisions.md",
    "console.md",
]

LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def markdown_files() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


def links(page: Path) -> list[str]:
    text = FENCE.sub("", page.read_text())
    return [m.group(1) for m in LINK.finditer(text)]


def anchors(page: Path) -> set[str]:
    """GitHub's anchors of a page's headings (lower case, punctuation dropped, - for space)."""
    found = set()
    for line in FENCE.sub("", page.read_text()).splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            found.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return found


def local_target(page: Path, link: str) -> tuple[Path, str] | None:
    if re.match(r"^[a-z]+:", link):
        return None
    path, _, anchor = link.partition("#")
    return ((page.parent / path).resolve() if path else page), anchor


def test_the_readme_links_every_docs_page_and_each_exists() -> None:
    linked = {link.partition("#")[0] for link in links(README)}
    for name in MOVED_PAGES:
        assert f"docs/{name}" in linked, f"README.md does not link docs/{name}"
        assert (DOCS / name).is_file()
    for page in DOCS.glob("*.md"):
        assert f"docs/{page.name}" in linked, f"README.md does not link docs/{page.name}"


@pytest.mark.parametrize("page", markdown_files(), ids=lambda p: p.name)
def test_every_local_link_lands_on_a_file_and_heading(page: Path) -> None:
    for link in links(page):
        target = local_target(page, link)
        if target is None:
            continue
        path, anchor = target
        assert path.exists(), f"{page.name}: {link} points at a file that does not exist"
        if anchor and path.suffix == ".md":
            assert anchor in anchors(path), f"{page.name}: {link}: no such heading"


def test_the_readme_stays_a_front_door() -> None:
    text = README.read_text()
    assert len(text.splitlines()) < 150
    for command in [
        ".venv/bin/pip install -e . && .venv/bin/chatferry serve",
        '.venv/bin/pip install -e ".[dev]" && .venv/bin/pytest -n 2',
    ]:
        assert command in text
    assert "## Try it" in text

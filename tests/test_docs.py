"""What the docs promise a newcomer: every example listed, and no link to a file that is not
in the repository."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
_LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
_FILE_NAMED = re.compile(r"`([\w./-]+\.md)`")


def test_examples_readme_lists_every_example() -> None:
    text = (REPO / "examples" / "README.md").read_text(encoding="utf-8")
    examples = sorted(
        p.name for p in (REPO / "examples").iterdir() if (p / "Pulumi.yaml").is_file()
    )
    assert [name for name in examples if f"[{name}]({name}/)" not in text] == []


def test_docs_point_only_to_files_in_the_repository() -> None:
    pages = [REPO / "README.md", *(REPO / "docs").glob("*.md"), REPO / "examples" / "README.md"]
    missing = []
    for page in pages:
        text = page.read_text(encoding="utf-8")
        for target in _LINK.findall(text):
            if "://" not in target and not (page.parent / target).exists():
                missing.append(f"{page.relative_to(REPO)} -> {target}")
        for name in _FILE_NAMED.findall(text):
            found = (
                (page.parent / name).exists()
                or (REPO / name).exists()
                or any(REPO.glob(f"**/{Path(name).name}"))
            )
            if not found:
                missing.append(f"{page.relative_to(REPO)} names {name}")
    assert missing == []

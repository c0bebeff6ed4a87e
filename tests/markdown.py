"""The code blocks of the README and the documentation pages, as the tests read them.

A page is ``README.md``, ``CHANGELOG.md`` or ``docs/*.md``. A fenced block is opened with
```` ```LANG ```` and closed with ```` ``` ````. Two kinds of block are not run as written, and say
so on their first line (a comment the reader sees):

* a ``bash`` block starting with ``# clone-only:``, ``# accelerator:`` or ``# network:`` (it needs a
  clone of the repository, an accelerator or the network); each of its commands must be mapped to
  the test that runs it (``tests/test_readme.py``'s ``WHERE_EXERCISED``);
* a ``python`` block starting with ``# excerpt of PATH``: a part of the repository's file PATH
  (``...`` stands for what is left out); the test checks that its lines appear there in order.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
MARKERS = ("# clone-only:", "# accelerator:", "# network:")
EXCERPT = re.compile(r"# excerpt of (\S+)")
PROGRAMS = ("converse-jax", "python", "make", "pip", "tensorboard")


@dataclass(frozen=True)
class Block:
    """One fenced block: the page (relative path), its first line number, language and text."""

    page: str
    line: int
    lang: str
    text: str

    @property
    def marked(self) -> bool:
        """Whether the block says on its first line that the tests do not run it as written."""
        return self.text.startswith(MARKERS)

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"


def pages() -> list[Path]:
    """The Markdown files of the documentation (README first)."""
    return [REPO_ROOT / "README.md", REPO_ROOT / "CHANGELOG.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]


def blocks(lang: str | None = None, page: Path | None = None) -> list[Block]:
    """The fenced blocks of ``page`` (default: every page), in order, of language ``lang`` (default: all)."""
    found = []
    for path in [page] if page else pages():
        opened, start, current = None, 0, []
        for number, line in enumerate(path.read_text().splitlines(keepends=True), 1):
            stripped = line.strip()
            if stripped.startswith("```"):
                if opened is None:
                    opened, start, current = stripped[3:].strip(), number, []
                else:
                    found.append(
                        Block(str(path.relative_to(REPO_ROOT)), start, opened, textwrap.dedent("".join(current)))
                    )
                    opened = None
            elif opened is not None:
                current.append(line)
        assert opened is None, f"{path}: the block opened on line {start} is never closed"
    return [b for b in found if lang is None or b.lang == lang]


def block_commands(block: Block) -> list[str]:
    """The commands of a shell block: continuation lines joined, comments and blank lines dropped."""
    commands = []
    for line in block.text.replace("\\\n", " ").splitlines():
        line = re.sub(r"\s+#.*$", "", line).strip()
        if line and not line.startswith("#"):
            commands.append(re.sub(r"\s+", " ", line))
    return commands


def commands() -> list[str]:
    """Every command the tests do not run as written: those of the marked ``bash`` blocks, and the
    inline code spans of every page that start with a program name and have an argument."""
    found = [c for b in blocks("bash") if b.marked for c in block_commands(b)]
    for path in pages():
        text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)
        for span in re.findall(r"`([^`\n]+)`", text):
            if span.split(" ", 1)[0] in PROGRAMS and " " in span:
                found.append(span.strip())
    return found

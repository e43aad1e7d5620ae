"""The README and the documentation site's pages: the README fits a screen and links only to pages that exist,
and every command they show is one the parser accepts (the site's build itself runs in make docs)."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from resnet_cifar.cli import build_parser

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]


def _commands(page: Path) -> list[str]:
    """The ``resnet-cifar ...`` lines of the page's bash blocks, continuation lines joined, comments dropped."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", page.read_text(), re.S):
        for line in block.replace("\\\n", " ").splitlines():
            segment: list[str] = []
            for word in [*shlex.split(line, comments=True), "&&"]:
                if word not in ("&&", "||", ";", "|", "&"):
                    segment.append(word)
                    continue
                if segment[:1] == ["resnet-cifar"]:
                    commands.append(segment)
                segment = []
    return commands


def test_the_readme_fits_on_a_screen_or_two() -> None:
    assert len((REPO / "README.md").read_text().splitlines()) <= 150


def test_the_readme_links_only_to_what_exists() -> None:
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", (REPO / "README.md").read_text()):
        if not target.startswith("http"):
            assert (REPO / target).exists(), target


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(REPO)))
def test_every_command_shown_is_one_the_parser_accepts(page, capsys) -> None:
    parser = build_parser()
    for words in _commands(page):
        try:
            parser.parse_args(words[1:])
        except SystemExit:
            pytest.fail(f"{page.name}: {shlex.join(words)}: {capsys.readouterr().err.strip()}")


def test_the_pages_show_commands_at_all() -> None:
    assert sum(len(_commands(page)) for page in PAGES) > 80  # the check above is not vacuous

"""The README and docs/ stay true to the code: their links resolve, and every option of every command is documented."""

import re
from pathlib import Path

import click
import pytest

from dinogen.cli import main

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
LINK = re.compile(r"\]\(([^)#\s]+)(#[^)]*)?\)")  # [text](target) or [text](target#anchor)


def local_links(page: Path) -> list[str]:
    return [target for target, _ in LINK.findall(page.read_text()) if "://" not in target]


@pytest.mark.parametrize("page", [ROOT / "README.md", *sorted(DOCS.glob("*.md"))], ids=lambda p: p.name)
def test_every_local_link_resolves(page):
    missing = [target for target in local_links(page) if not (page.parent / target).exists()]
    assert not missing


def test_the_readme_links_every_docs_page():
    linked = {Path(target).name for target in local_links(ROOT / "README.md") if target.startswith("docs/")}
    assert linked == {page.name for page in DOCS.glob("*.md")}


@pytest.mark.parametrize("command", sorted(main.commands))
def test_every_option_of_every_command_is_in_the_commands_page(command):
    page = (DOCS / "commands.md").read_text()
    options = [opt for param in main.commands[command].params if isinstance(param, click.Option)
               for opt in param.opts if opt.startswith("--") and opt != "--help"]
    assert f"dinogen {command}" in page
    assert [opt for opt in options if not re.search(rf"(?<![\w-]){opt}(?![\w-])", page)] == []

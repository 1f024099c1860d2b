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


def quoted_runs(page: Path, commands=("sample", "score")) -> list[tuple[list[str], list[str]]]:
    """The `$ dinogen sample|score ...` examples of a page that quote their output and use the bundled
    model: (args, output lines)."""
    runs, lines = [], page.read_text().splitlines()
    for i, line in enumerate(lines):
        command = line.strip()
        if not command.startswith("$ dinogen ") or command.split()[2] not in commands or "|" in command:
            continue
        if " -c " in command:  # another model's transcript (docs/categories.md): not the bundled one's
            continue
        output = []
        for following in lines[i + 1:]:
            if not following.startswith("    ") or following.strip().startswith("$"):
                break
            output.append(following.strip())
        if output:
            runs.append((command.split("#")[0].split()[2:], output))
    return runs


def same_result(quoted: str, got: str) -> bool:
    """The same names and flags, and numbers equal to 1e-5 (another BLAS may round the last digits)."""
    import json
    import math

    if quoted.startswith("{"):
        a, b = json.loads(quoted), json.loads(got)
        return a.keys() == b.keys() and all(
            math.isclose(a[k], b[k], rel_tol=1e-5) if isinstance(a[k], float) else a[k] == b[k] for k in a)
    if "\t" not in quoted:  # an aligned table (score --explain): the same words and figures
        return quoted.split() == got.split()
    a, b = quoted.split("\t"), got.split("\t")
    return len(a) == len(b) and all(
        math.isclose(float(x), float(y), rel_tol=1e-4) if x[:1] in "-0123456789" else x == y for x, y in zip(a, b))


@pytest.mark.parametrize("page", [ROOT / "README.md", DOCS / "commands.md", DOCS / "sampling.md"], ids=lambda p: p.name)
def test_quoted_sample_and_score_output_is_what_the_bundled_model_prints(page, tmp_path, monkeypatch):
    from click.testing import CliRunner

    monkeypatch.chdir(tmp_path)  # no ./dinogen.npz here: the bundled model answers
    runs = quoted_runs(page)
    assert runs
    for args, quoted in runs:
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, args
        got = result.stdout.splitlines()
        assert len(got) == len(quoted) and all(same_result(q, g) for q, g in zip(quoted, got)), args


def test_the_quoted_bug_list_is_what_gradcheck_prints():
    from click.testing import CliRunner

    [(args, quoted)] = [run for run in quoted_runs(DOCS / "commands.md", ("gradcheck",)) if run[0][1:] == ["--bug", "list"]]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0 and [line.strip() for line in result.stdout.splitlines()] == quoted


@pytest.mark.parametrize("page", [ROOT / "README.md", DOCS / "commands.md"], ids=lambda p: p.name)
def test_quoted_gradcheck_bug_rows_are_rows_the_check_prints(page):
    """Each quoted `gradcheck --bug` transcript: every row it shows (the page may leave rows
    out) is a row of the table the command prints, and its last line is the verdict."""
    from click.testing import CliRunner

    runs = [run for run in quoted_runs(page, ("gradcheck",)) if run[0][1] == "--bug" and run[0][2] != "list"]
    assert runs
    for args, quoted in runs:
        result = CliRunner().invoke(main, args, env={"COLUMNS": "200"})
        assert result.exit_code == 1, args
        printed = [cells(line) for line in result.stdout.splitlines() if line.startswith("│")]
        rows = [cells(line) for line in quoted if line.startswith("│")]
        assert rows and all(any(same_row(row, got) for got in printed) for row in rows), args
        assert quoted[-1] == result.stderr.strip().splitlines()[-1], args


def cells(row: str) -> list[str]:
    return [cell.strip() for cell in row.strip().strip("│").split("│")]


def same_row(quoted: list[str], got: list[str]) -> bool:
    """The same cells, a passing error to within the finite difference's rounding (another BLAS
    rounds the last digits differently), a failing one to 1%."""
    import math

    if len(quoted) != len(got) or quoted[-1] != got[-1]:
        return False
    *words_q, error_q, _ = quoted
    *words_g, error_g, _ = got
    if words_q != words_g:
        return False
    return quoted[-1] == "pass" or math.isclose(float(error_q), float(error_g), rel_tol=0.01)

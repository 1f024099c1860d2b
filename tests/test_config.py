"""One home for settings: the table of rules agrees with the code that uses it, and needs no NumPy."""

import dataclasses
import subprocess
import sys

import pytest

from dinogen.cells import CELLS
from dinogen.config import CELL_NAMES, OPTIMIZER_NAMES, RULES, SCHEDULES, ModelConfig, TrainConfig
from dinogen.errors import DinogenError
from dinogen.optim import OPTIMIZERS


def test_the_names_of_cells_and_optimizers_are_those_the_code_has():
    assert set(CELL_NAMES) == set(CELLS) and set(OPTIMIZER_NAMES) == set(OPTIMIZERS)
    assert RULES["cell"].choices == CELL_NAMES and RULES["schedule"].choices == SCHEDULES


def test_every_setting_of_both_configs_has_a_rule():
    names = {f.name for f in dataclasses.fields(TrainConfig)} | {f.name for f in dataclasses.fields(ModelConfig)}
    assert names <= RULES.keys()


def test_every_default_keeps_its_rule():
    for f in dataclasses.fields(TrainConfig):
        assert RULES[f.name].problem(f.default) is None, f.name


@pytest.mark.parametrize("name, value, words", [
    ("layers", 4, "a whole number at least 1 and at most 3"), ("dropout", 1.0, "a finite number at least 0 and below 1"),
    ("lr", 0.0, "a finite number above 0"), ("seed", -5, "a whole number"), ("cell", "transformer", "one of rnn, gru, lstm"),
    ("steps", 2.5, "a whole number or null"),
])
def test_a_value_outside_its_rule_is_one_sentence_saying_what_it_may_be(name, value, words):
    with pytest.raises(DinogenError, match=words):
        RULES[name].check(value)


def test_the_settings_module_imports_no_numpy():
    code = "import sys, dinogen.config, dinogen.recipe, dinogen.threads, dinogen.cli; print('numpy' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


def dinogen_imports(path) -> set[str]:
    """The dinogen modules a module imports, at its top or inside a function, but not under TYPE_CHECKING."""
    import ast

    found = set()

    def visit(node) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue  # read by type checkers only, never run
            if isinstance(child, ast.ImportFrom) and child.module == "dinogen":
                found.update(alias.name for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and (child.module or "").startswith("dinogen."):
                found.add(child.module.split(".")[1])
            elif isinstance(child, ast.Import):
                found.update(alias.name.split(".")[1] for alias in child.names if alias.name.startswith("dinogen."))
            visit(child)

    visit(ast.parse(path.read_text()))
    return found - {path.stem, "__version__"}


def test_no_module_imports_another_in_a_cycle():
    from pathlib import Path

    package = Path(__file__).resolve().parent.parent / "dinogen"
    graph = {path.stem: dinogen_imports(path) for path in package.glob("*.py")}

    def cycle_from(module, path):
        if module in path:
            return path[path.index(module):] + [module]
        for imported in sorted(graph.get(module, ())):
            found = cycle_from(imported, path + [module])
            if found:
                return found
        return None

    assert [cycle for cycle in (cycle_from(m, []) for m in sorted(graph)) if cycle] == []

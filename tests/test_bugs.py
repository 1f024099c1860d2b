"""`dinogen gradcheck --bug`: every classic mistake is caught, by exactly the rows it breaks, and by no others."""

import dataclasses

import pytest
from click.testing import CliRunner

from dinogen import bugs, cells, gradcheck, model, reference
from dinogen.cli import main
from dinogen.config import BUG_NAMES, CELL_NAMES

INJECTIONS = [(name, cell) for name, bug in bugs.BUGS.items() for cell in bug.cells]


def small(cell: str, embed_dim: int = 0) -> model.ModelConfig:
    return model.ModelConfig(vocab_size=7, cell=cell, hidden=5, layers=1, embed_dim=embed_dim)


def failing_rows(cfg: model.ModelConfig, bug: bugs.Bug) -> set[str]:
    return {r.name for r in gradcheck.check_model(cfg, implementation=bug.implementation()) if not r.passed}


def gradcheck_cli(*args: str):
    return CliRunner().invoke(main, ["gradcheck", *args])


@pytest.mark.parametrize("name, cell", INJECTIONS, ids=[f"{name}-{cell}" for name, cell in INJECTIONS])
def test_every_bug_is_caught_by_exactly_the_rows_it_breaks(name, cell):
    bug = bugs.BUGS[name]
    cfg = small(cell)
    assert bug.expected_failures(cfg)
    assert failing_rows(cfg, bug) == bug.expected_failures(cfg)


@pytest.mark.parametrize("name", ["padding-counted", "target-axis"])
def test_a_mistake_made_alike_in_the_loss_and_its_gradient_is_caught_by_the_padding_row_alone(name):
    results = gradcheck.check_model(small("rnn", embed_dim=4), implementation=bugs.BUGS[name].implementation())
    assert [r.name for r in results if not r.passed] == ["padding"]
    assert max(r.rel_error for r in results[:-1]) < 1e-3 * gradcheck.TOLERANCE  # every finite difference agrees


def test_a_bug_in_the_recurrence_fails_every_layer():
    cfg = dataclasses.replace(small("rnn"), layers=2)
    assert failing_rows(cfg, bugs.BUGS["dwhh-from-dh"]) == {"W_hh.0", "W_hh.1", "padding"}


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_the_reference_path_without_a_bug_passes_the_same_check(cell):
    results = gradcheck.check_model(small(cell, embed_dim=4), implementation=gradcheck.reference_implementation())
    assert all(r.passed for r in results)


def test_each_bug_changes_one_part_of_the_reference_path():
    for bug in bugs.BUGS.values():
        changed = [f.name for f in dataclasses.fields(reference.Parts)
                   if getattr(bug.parts, f.name) is not getattr(reference.CORRECT, f.name)]
        assert len(changed) == 1, bug.name
        if changed == ["steps"]:
            assert [c for c in CELL_NAMES if bug.parts.steps[c] != reference.STEPS[c]] == list(bug.cells)


def test_injecting_a_bug_leaves_the_correct_path_and_the_fast_path_as_they_were():
    steps = dict(reference.STEPS)
    failing_rows(small("rnn"), bugs.BUGS["dwhh-from-dh"])
    assert reference.STEPS == steps and reference.CORRECT.steps is reference.STEPS
    assert cells.CELLS["rnn"].backward is cells.rnn_backward
    assert all(r.passed for r in gradcheck.check_model(small("rnn")))


def test_a_model_with_dropout_cannot_be_checked_on_a_path_without_it():
    cfg = dataclasses.replace(small("rnn"), dropout=0.3)
    with pytest.raises(ValueError, match="dropout"):
        gradcheck.check_model(cfg, implementation=gradcheck.reference_implementation())


def test_the_bug_names_the_command_line_offers_are_the_catalogue():
    assert BUG_NAMES == tuple(bugs.BUGS)


def test_bug_list_names_every_bug_with_its_sentence_and_exits_0():
    result = gradcheck_cli("--bug", "list")
    assert result.exit_code == 0
    for bug in bugs.BUGS.values():
        assert bug.name in result.stdout and bug.sentence in result.stdout


def test_a_bug_prints_its_sentence_fails_its_rows_and_exits_1():
    result = gradcheck_cli("--bug", "dwhh-from-dh", "--layers", "1")
    assert result.exit_code == 1
    assert bugs.BUGS["dwhh-from-dh"].sentence in result.stdout
    rows = [line.split() for line in result.stdout.splitlines() if line.startswith("│ rnn")]
    assert {row[11] for row in rows if row[-2] == "FAIL"} == {"W_hh.0", "padding"}
    assert "caught: 6 rows failed, exactly the ones dwhh-from-dh breaks" in result.stderr


def test_the_padding_bug_on_the_command_line_fails_the_padding_rows_only():
    result = gradcheck_cli("--bug", "padding-counted", "--cell", "lstm", "--layers", "1")
    assert result.exit_code == 1
    failed = [line.split()[11] for line in result.stdout.splitlines() if "FAIL" in line]
    assert failed == ["padding", "padding", "padding"]  # plain, with an embedding, and with categories too


def test_a_bug_the_check_does_not_catch_exits_3_and_says_so(monkeypatch):
    harmless = dataclasses.replace(bugs.BUGS["dwhh-from-dh"], parts=reference.CORRECT)
    monkeypatch.setitem(bugs.BUGS, "dwhh-from-dh", harmless)
    result = gradcheck_cli("--bug", "dwhh-from-dh", "--layers", "1")
    assert result.exit_code == 3
    assert "did not catch dwhh-from-dh" in result.stderr and "W_hh.0 (rnn, 1 layer, embed 0)" in result.stderr


def test_an_unknown_bug_is_a_usage_error_naming_the_bugs():
    result = gradcheck_cli("--bug", "typo")
    assert result.exit_code == 2
    assert all(name in result.stderr for name in ["list", *BUG_NAMES])


def test_a_bug_of_the_rnn_cell_asked_of_another_cell_is_a_usage_error():
    result = gradcheck_cli("--bug", "tanh-from-preactivation", "--cell", "gru")
    assert result.exit_code == 2
    assert "--cell rnn" in result.stderr and result.stdout == ""

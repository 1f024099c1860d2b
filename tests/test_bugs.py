"""`dinogen gradcheck --bug`: every classic mistake is caught, by exactly the rows it breaks, and by no others."""

import dataclasses

import pytest

from dinogen import bugs, cells, gradcheck, model, reference
from dinogen.config import BUG_NAMES, CELL_NAMES

INJECTIONS = [(name, cell) for name, bug in bugs.BUGS.items() for cell in bug.cells]


def small(cell: str, embed_dim: int = 0) -> model.ModelConfig:
    return model.ModelConfig(vocab_size=7, cell=cell, hidden=5, layers=1, embed_dim=embed_dim)


def failing_rows(cfg: model.ModelConfig, bug: bugs.Bug) -> set[str]:
    return {r.name for r in gradcheck.check_model(cfg, implementation=bug.implementation()) if not r.passed}


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

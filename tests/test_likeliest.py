"""The likeliest names: the beam search against every name a tiny model can write, and `sample --likeliest`.

The tiny model writes names over the letters a, b, c of at most MAX_LEN
characters, so every name it can write is enumerated, scored by `score`'s own
code, and ranked: the true top n that the search must find.
"""

import itertools
import json

import numpy as np
import pytest
from click.testing import CliRunner

from dinogen import likeliest, model
from dinogen.cli import main
from dinogen.config import ModelConfig
from dinogen.data import Vocab
from dinogen.errors import DinogenError
from dinogen.sampling import SampleSpec
from dinogen.scoring import score_names

MAX_LEN = 5
VOCAB = Vocab(("a", "b", "c"))
CFG = ModelConfig(vocab_size=VOCAB.size, cell="lstm", hidden=6)
WIDE = 3**MAX_LEN  # room for every name of MAX_LEN characters: the search is exact
KNOWN = ["a", "ab", "ba", "bab", "cab", "abab"]  # the tiny model's "training names", for novel


@pytest.fixture(scope="module")
def params():
    """Random float64 parameters, the output layer large enough that the names' probabilities spread out."""
    params = model.init_params(CFG, np.random.default_rng(5), dtype=np.float64)
    params["W_hy"] = 3.0 * np.random.default_rng(6).standard_normal(params["W_hy"].shape)
    params["b_y"] = np.random.default_rng(7).standard_normal(params["b_y"].shape)
    return params


@pytest.fixture(scope="module")
def every_name(params):
    """Every name of 1 to MAX_LEN characters and its log-probability as `score` reports it, likeliest first."""
    names = ["".join(chars) for length in range(1, MAX_LEN + 1) for chars in itertools.product(VOCAB.chars, repeat=length)]
    scored = score_names(params, CFG, VOCAB, names).scored
    order = np.argsort(-scored.logprob, kind="stable")
    return [(names[i], float(scored.logprob[i])) for i in order]


def true_top(every_name, n, spec, known=KNOWN):
    """The n likeliest names meeting spec, by enumeration: (names, logprobs)."""
    passing = [(name, logprob) for name, logprob in every_name
               if name.startswith(spec.prefix) and len(name) > len(spec.prefix) and name.endswith(spec.suffix)
               and spec.contains in name and spec.min_len <= len(name) <= spec.max_len
               and not (spec.novel and name in known)][:n]
    return [name for name, _ in passing], [logprob for _, logprob in passing]


def search(params, n, width=WIDE, **spec):
    return likeliest.likeliest(params, CFG, VOCAB, n, SampleSpec(**{"max_len": MAX_LEN, **spec}), width, KNOWN)


def test_a_wide_beam_finds_the_true_top_n_in_order(params, every_name):
    found = search(params, 20)
    assert found.scored.names == true_top(every_name, 20, SampleSpec(max_len=MAX_LEN))[0]
    assert found.exact


def test_each_log_probability_is_what_score_reports(params, every_name):
    found = search(params, 20)
    assert found.scored.logprob == pytest.approx(true_top(every_name, 20, SampleSpec(max_len=MAX_LEN))[1], rel=1e-10)


@pytest.mark.parametrize("spec", [
    dict(prefix="b"),
    dict(prefix="cab"),
    dict(suffix="ca"),
    dict(contains="bb"),
    dict(min_len=4),
    dict(max_len=3),
    dict(novel=True),
    dict(prefix="a", suffix="b", contains="ca", min_len=4, novel=True),
], ids=lambda spec: ",".join(f"{k}={v}" for k, v in spec.items()))
def test_the_true_top_n_under_each_constraint(params, every_name, spec):
    found = search(params, 12, **spec)
    names, logprobs = true_top(every_name, 12, SampleSpec(**{"max_len": MAX_LEN, **spec}))
    assert found.scored.names == names
    assert found.scored.logprob == pytest.approx(logprobs, rel=1e-10)
    assert found.exact


def test_names_are_marked_novel_or_known(params):
    found = search(params, 40)
    assert found.scored.novel.tolist() == [name not in KNOWN for name in found.scored.names]
    assert not found.scored.novel.all()


@pytest.mark.parametrize("width", [1, 2, 5])
def test_a_narrow_beam_gives_valid_distinct_names_likeliest_first_with_their_scores(params, every_name, width):
    found = search(params, 15, width, suffix="a", min_len=2)
    scores = dict(every_name)
    assert len(found.scored.names) == len(set(found.scored.names)) > 0
    assert all(name.endswith("a") and 2 <= len(name) <= MAX_LEN for name in found.scored.names)
    assert found.scored.logprob == pytest.approx([scores[name] for name in found.scored.names], rel=1e-10)
    assert (np.diff(found.scored.logprob) <= 0).all()


def test_a_narrow_beam_that_misses_a_likelier_name_does_not_claim_to_be_exact(params, every_name):
    found = search(params, 10, width=2)
    assert found.scored.names != true_top(every_name, 10, SampleSpec(max_len=MAX_LEN))[0]
    assert not found.exact


@pytest.mark.parametrize("n", [1, 3, 10, 30])
def test_an_answer_marked_exact_is_the_true_top_n_whatever_the_width(params, every_name, n):
    proven = 0
    for width in range(1, 40):
        found = search(params, n, width)
        if found.exact:
            proven += 1
            assert found.scored.names == true_top(every_name, n, SampleSpec(max_len=MAX_LEN))[0], width
    assert proven > 0


@pytest.mark.parametrize("constraint", ["suffix", "contains"])
def test_a_suffix_or_text_to_contain_steers_even_a_beam_of_one_to_a_name_that_has_it(params, constraint):
    for text in map("".join, itertools.product(VOCAB.chars, repeat=3)):
        found = search(params, 1, width=1, max_len=4, **{constraint: text})
        assert len(found.scored.names) == 1, text
        assert found.scored.names[0].endswith(text) if constraint == "suffix" else text in found.scored.names[0]


def test_when_fewer_names_exist_those_that_do_come_back_and_the_search_says_so(params):
    spec = SampleSpec(prefix="ab", max_len=3)
    found = likeliest.likeliest(params, CFG, VOCAB, 5, spec, WIDE, KNOWN)
    assert sorted(found.scored.names) == ["aba", "abb", "abc"] and found.exact
    assert likeliest.shortfall(found, 5, spec, WIDE) == (
        "only 3 of 5 names starting with 'ab', of 1 to 3 characters exist; loosen the constraints.")


def test_a_shortfall_after_a_narrow_beam_suggests_a_wider_one(params):
    spec = SampleSpec(prefix="a", max_len=3)  # 12 names exist; a beam of 1 keeps one of each length
    found = likeliest.likeliest(params, CFG, VOCAB, 12, spec, 1, KNOWN)
    assert len(found.scored.names) < 12 and not found.exact
    assert "turned up in a beam of width 1; a wider --beam-width may find more" in likeliest.shortfall(found, 12, spec, 1)


def test_all_n_found_is_no_shortfall(params):
    assert likeliest.shortfall(search(params, 4), 4, SampleSpec(), WIDE) is None


def test_no_step_advances_more_rows_than_the_beam_width(params, monkeypatch):
    rows = []
    step = model.step
    monkeypatch.setattr(model, "step", lambda params, cfg, x, *rest: rows.append(len(x)) or step(params, cfg, x, *rest))
    search(params, 10, width=7)
    assert max(rows) == 7


def test_the_search_stops_once_no_live_name_can_beat_the_nth_found(params, monkeypatch):
    steps = []
    step = model.step
    monkeypatch.setattr(model, "step", lambda *args: steps.append(1) or step(*args))
    found = search(params, 5, max_len=60)
    assert found.exact and len(steps) < 20  # each character costs probability: long names cannot compete


@pytest.mark.parametrize("spec", [dict(temperature=0.5), dict(top_k=2), dict(top_p=0.5)])
def test_sampling_settings_do_not_apply_and_are_refused(params, spec):
    with pytest.raises(DinogenError, match="ranked by the model's own probability"):
        search(params, 3, **spec)


def test_novel_without_the_training_names_is_a_clear_error(params):
    with pytest.raises(DinogenError, match="does not store the names it was trained on"):
        likeliest.likeliest(params, CFG, VOCAB, 3, SampleSpec(novel=True), WIDE, None)


@pytest.mark.parametrize("n, width", [(0, 5), (5, 0)])
def test_no_names_or_no_beam_is_refused(params, n, width):
    with pytest.raises(DinogenError, match="at least 1"):
        likeliest.likeliest(params, CFG, VOCAB, n, SampleSpec(), width)


# The command line, with the bundled model.

@pytest.fixture
def bundled(tmp_path, monkeypatch):
    """Run `dinogen sample` with the bundled model: (exit code, stdout lines, stderr)."""
    monkeypatch.chdir(tmp_path)  # no ./dinogen.npz here: the bundled model answers

    def run(*args):
        result = CliRunner().invoke(main, ["sample", *args])
        return result.exit_code, result.stdout.splitlines(), result.stderr

    return run


def test_cli_prints_the_n_likeliest_likeliest_first_with_samples_json_fields(bundled):
    code, lines, _ = bundled("--likeliest", "5", "--beam-width", "256", "--json")
    records = [json.loads(line) for line in lines]
    assert code == 0 and len(records) == 5
    assert [r["logprob"] for r in records] == sorted((r["logprob"] for r in records), reverse=True)
    assert records[0].keys() == json.loads(bundled("--n", "1", "--json")[1][0]).keys()


def test_cli_log_probabilities_are_what_score_reports(bundled):
    code, lines, _ = bundled("--likeliest", "5", "--prefix", "Tyr", "--json")
    records = [json.loads(line) for line in lines]
    scored = CliRunner().invoke(main, ["score", "--json", *[r["name"] for r in records]])
    assert code == 0 and scored.exit_code == 0
    assert [r["logprob"] for r in records] == pytest.approx(
        [json.loads(line)["logprob"] for line in scored.stdout.splitlines()], rel=1e-6)


def test_cli_a_proven_answer_prints_names_only(bundled):
    code, lines, stderr = bundled("--likeliest", "3", "--prefix", "Tyr", "--beam-width", "64")
    assert code == 0 and len(lines) == 3 and all(line.startswith("Tyr") for line in lines)
    assert stderr == ""


def test_cli_an_unproven_answer_says_so_on_stderr(bundled):
    code, lines, stderr = bundled("--likeliest", "10", "--beam-width", "4")
    assert code == 0 and len(lines) == 10
    assert "the beam of width 4 dropped a candidate likelier than the last name" in stderr


def test_cli_fewer_names_than_asked_prints_them_and_fails_in_one_sentence(bundled):
    code, lines, stderr = bundled("--likeliest", "60", "--prefix", "Ty", "--max-len", "3")
    assert code == 1 and len(lines) == 52 and all(len(line) == 3 for line in lines)
    assert stderr.strip() == "Error: only 52 of 60 names starting with 'Ty', of 1 to 3 characters exist; loosen the constraints."


@pytest.mark.parametrize("flag", [["--n", "3"], ["--seed", "1"], ["-t", "0.5"], ["--top-k", "2"], ["--top-p", "0.9"],
                                  ["--max-attempts", "5"]])
def test_cli_sampling_flags_cannot_go_with_likeliest(bundled, flag):
    code, lines, stderr = bundled("--likeliest", "3", *flag)
    assert code == 2 and lines == []
    assert "cannot go with --likeliest" in stderr


def test_cli_beam_width_without_likeliest_is_a_usage_error(bundled):
    code, _, stderr = bundled("--beam-width", "8")
    assert code == 2 and "--beam-width applies only with --likeliest" in stderr

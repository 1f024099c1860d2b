"""Scoring names: per-name likelihoods that agree with eval and with sampling."""

import math

import numpy as np
import pytest

from dinogen import checkpoint, model, sampling, scoring
from dinogen.data import encode_names

NAMES = ["Tyrannosaurus", "Rex", "Stegosaurus", "Aa", "Brachiosaurus"]


def model_of(trainer):
    ckpt = trainer.checkpoint()
    return ckpt.inference_params(), ckpt.model_config, ckpt.vocab


def test_each_name_scores_what_the_model_gives_it_alone(small_trainer):
    params, cfg, vocab = model_of(small_trainer)
    together = model.nll_per_name(params, cfg, encode_names(NAMES, vocab), np.arange(len(NAMES)))
    for name, nll in zip(NAMES, together):
        alone, count = model.total_nll(params, cfg, encode_names([name], vocab), np.arange(1))
        assert count == len(name) + 1
        assert nll == pytest.approx(alone, rel=1e-6)


def test_the_names_of_a_file_add_up_to_its_eval(small_trainer):
    params, cfg, vocab = model_of(small_trainer)
    data = encode_names(NAMES, vocab)
    total, count = model.total_nll(params, cfg, data, np.arange(len(data)))
    assert scoring.evaluate(params, cfg, data)["nll"] == pytest.approx(total / count, rel=1e-6)
    assert scoring.evaluate(params, cfg, data)["predictions"] == count


def test_score_of_a_name_equals_eval_of_a_file_holding_only_it(small_trainer):
    params, cfg, vocab = model_of(small_trainer)
    scored = scoring.score_names(params, cfg, vocab, NAMES).scored
    for name, nll in zip(scored.names, scored.nll):
        assert nll == pytest.approx(scoring.evaluate(params, cfg, encode_names([name], vocab))["nll"], rel=1e-6)


def test_sampled_names_carry_the_logprob_score_gives_them(small_trainer):
    params, cfg, vocab = model_of(small_trainer)
    spec = sampling.SampleSpec(prefix="Ste", temperature=1.7, top_k=5)
    drawn = next(sampling.generate(params, cfg, vocab, 20, spec, seed=0))
    scored = scoring.score_names(params, cfg, vocab, drawn.names).scored
    assert scored.logprob == pytest.approx(drawn.logprob, rel=1e-4)


def test_names_with_unknown_characters_are_skipped_and_named(small_trainer):
    params, cfg, vocab = model_of(small_trainer)
    scores = scoring.score_names(params, cfg, vocab, ["Rex", "T-rex", "Tyrannosaurus", "Ÿ"])
    assert scores.scored.names == ["Rex", "Tyrannosaurus"]
    assert [(s.name, s.char) for s in scores.skipped] == [("T-rex", "-"), ("Ÿ", "Ÿ")]


def test_names_are_marked_novel_only_when_the_training_names_are_known(small_trainer):
    params, cfg, vocab = model_of(small_trainer)
    assert scoring.score_names(params, cfg, vocab, ["Rex"]).scored.novel is None
    training = set(small_trainer.names.names)
    known = next(iter(training))
    scored = scoring.score_names(params, cfg, vocab, [known, "Zzzq"], training).scored
    assert scored.novel.tolist() == [False, True]


def test_nll_is_per_prediction_and_logprob_is_the_total():
    scored = scoring.Scored(["ab", "abcd"], np.array([-3.0, -10.0]), np.array([True, False]))
    assert scored.nll.tolist() == [1.0, 2.0]
    assert scored.records() == [
        {"name": "ab", "nll": 1.0, "logprob": -3.0, "novel": True},
        {"name": "abcd", "nll": 2.0, "logprob": -10.0, "novel": False},
    ]


def test_scoring_no_names_gives_an_empty_result(small_trainer):
    scores = scoring.score_names(*model_of(small_trainer), [])
    assert scores.scored.names == [] and len(scores.scored.logprob) == 0 and scores.skipped == []


def test_an_explanation_adds_up_to_the_score_of_the_name_position_by_position(small_checkpoint):
    from dinogen.explain import END, explain

    ckpt = checkpoint.load(small_checkpoint)
    params, cfg, vocab = ckpt.inference_params(), ckpt.model_config, ckpt.vocab
    found = explain(params, cfg, vocab, "Stegosaurus")
    scored = scoring.score_names(params, cfg, vocab, ["Stegosaurus"]).scored
    assert [p.char for p in found.positions] == list("Stegosaurus") + [END]
    assert found.logprob == scored.logprob[0]  # the same forward pass, added in the same order
    for p in found.positions:
        assert p.prob == pytest.approx(math.exp(-p.nats)) and p.bits == pytest.approx(p.nats / math.log(2))
        assert len(p.top) == 3 and p.top[0][1] >= p.top[1][1] >= p.top[2][1] and p.top[0][1] >= p.prob - 1e-7

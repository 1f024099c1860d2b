"""Sampling names from a trained model."""

import numpy as np
import pytest

from dinogen import sampling
from dinogen.data import Vocab
from dinogen.errors import DinogenError


def draw(trainer, n, seed, **kwargs):
    ckpt = trainer.checkpoint()
    return sampling.sample(ckpt.inference_params(), ckpt.model_config, ckpt.vocab, n, np.random.default_rng(seed), **kwargs)


def test_samples_n_names_from_the_vocabulary(small_trainer):
    names = draw(small_trainer, 50, seed=0)
    assert len(names) == 50
    assert all(names) and set("".join(names)) <= set(small_trainer.vocab.chars)


def test_the_same_seed_gives_the_same_names(small_trainer):
    assert draw(small_trainer, 20, seed=4) == draw(small_trainer, 20, seed=4)
    assert draw(small_trainer, 20, seed=4) != draw(small_trainer, 20, seed=5)


def test_max_len_caps_name_length(small_trainer):
    assert max(len(name) for name in draw(small_trainer, 200, seed=1, max_len=3)) <= 3


def test_low_temperature_repeats_the_most_likely_names(small_trainer):
    cold = draw(small_trainer, 200, seed=2, temperature=0.05)
    warm = draw(small_trainer, 200, seed=2, temperature=1.0)
    assert len(set(cold)) < len(set(warm))


def test_a_certain_model_always_draws_its_only_choice():
    logits = np.array([[0.0, 50.0, 0.0], [60.0, 0.0, 0.0]])
    assert sampling._draw(logits, np.random.default_rng(0)).tolist() == [1, 0]


def test_decoding_strips_the_boundary_padding():
    vocab = Vocab(("a", "b"))
    tokens = np.array([[1, 2, 0, 0], [2, 0, 0, 0]])
    assert sampling.decode_tokens(tokens, vocab) == ["ab", "b"]


def test_zero_temperature_is_refused(small_trainer):
    with pytest.raises(DinogenError, match="temperature"):
        draw(small_trainer, 1, seed=0, temperature=0.0)

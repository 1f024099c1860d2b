"""Sampling names from a trained model: steering, constraints, seeds."""

import numpy as np
import pytest

from dinogen import model, sampling
from dinogen.data import Dataset, Vocab, make_batch
from dinogen.errors import DinogenError
from dinogen.sampling import SampleSpec, reach


def generate(trainer, n, seed=0, known=True, **spec):
    """All chunks of one request, concatenated: (names, logprob, novel)."""
    ckpt = trainer.checkpoint()
    chunks = list(sampling.generate(ckpt.inference_params(), ckpt.model_config, ckpt.vocab, n, SampleSpec(**spec), seed,
                                    ckpt.training_names() if known else None))
    return ([name for c in chunks for name in c.names], np.concatenate([c.logprob for c in chunks]),
            np.concatenate([c.novel for c in chunks]) if known else None)


def names(trainer, n, seed=0, **spec):
    return generate(trainer, n, seed, **spec)[0]


def drawn_in(blocks):
    """Candidates in the first `blocks` blocks of a request."""
    return sum(sampling.block_size(k) for k in range(blocks))


def test_samples_n_names_from_the_vocabulary(small_trainer):
    drawn = names(small_trainer, 50)
    assert len(drawn) == 50
    assert all(drawn) and set("".join(drawn)) <= set(small_trainer.vocab.chars)


def test_the_same_seed_gives_the_same_names(small_trainer):
    assert names(small_trainer, 20, seed=4) == names(small_trainer, 20, seed=4)
    assert names(small_trainer, 20, seed=4) != names(small_trainer, 20, seed=5)


def test_the_first_names_do_not_depend_on_how_many_are_asked_for(small_trainer):
    many = names(small_trainer, drawn_in(5) + 5, seed=8)  # at least six blocks of candidates
    assert names(small_trainer, 10, seed=8) == many[:10]


def test_constrained_names_do_not_depend_on_how_many_are_asked_for(small_trainer):
    spec = dict(suffix="us", min_len=6, unique=True, novel=True, temperature=1.3, top_p=0.95)
    many = names(small_trainer, 300, seed=2, **spec)
    assert names(small_trainer, 7, seed=2, **spec) == many[:7]


def test_names_arrive_in_chunks_as_they_are_drawn(small_trainer):
    ckpt = small_trainer.checkpoint()
    chunks = sampling.generate(ckpt.inference_params(), ckpt.model_config, ckpt.vocab, 10**9, seed=0)
    first = next(chunks)
    assert 0 < len(first.names) <= sampling.block_size(0)


def test_a_few_names_cost_only_a_small_first_block(small_trainer, monkeypatch):
    sizes = []
    draw_block = sampling.draw_block
    monkeypatch.setattr(sampling, "draw_block", lambda *args: sizes.append(args[2]) or draw_block(*args))
    assert len(names(small_trainer, 10, seed=3)) == 10
    assert sizes == [sampling.block_size(0)] and sampling.block_size(0) < sampling.BLOCK


def test_blocks_grow_to_full_size_and_stay_there():
    sizes = [sampling.block_size(k) for k in range(10)]
    assert sizes == sorted(sizes) and sizes[-1] == sizes[len(sampling.FIRST_BLOCKS)] == sampling.BLOCK


def test_every_name_continues_the_prefix(small_trainer):
    drawn = names(small_trainer, 100, prefix="Tyr")
    assert all(name.startswith("Tyr") for name in drawn)
    assert len(set(name[3:] for name in drawn)) > 10  # the continuations are drawn, not fixed


def test_a_prefix_is_never_a_whole_name_alone(parrot_trainer):
    drawn = names(parrot_trainer, 20, prefix="Stegosaurus")  # the parrot would mostly end right there
    assert all(name.startswith("Stegosaurus") and len(name) > len("Stegosaurus") for name in drawn)


@pytest.mark.parametrize("spec", [
    dict(suffix="saurus"),
    dict(contains="ra"),
    dict(min_len=12),
    dict(max_len=6),
    dict(min_len=7, max_len=8, prefix="A", suffix="s", contains="o"),
])
def test_constraints_always_hold(small_trainer, spec):
    drawn = names(small_trainer, 60, seed=1, **spec)
    assert len(drawn) == 60
    for name in drawn:
        assert name.startswith(spec.get("prefix", "")) and name.endswith(spec.get("suffix", ""))
        assert spec.get("contains", "") in name
        assert spec.get("min_len", 1) <= len(name) <= spec.get("max_len", sampling.DEFAULT_MAX_LEN)


def test_novel_names_are_never_training_names(parrot_trainer):
    drawn, _, novel = generate(parrot_trainer, 30, seed=3, novel=True)
    assert len(drawn) == 30 and not set(parrot_trainer.names.names) & set(drawn)
    assert novel.all()


def test_every_name_is_marked_novel_or_not(parrot_trainer):
    training = set(parrot_trainer.names.names)
    drawn, _, novel = generate(parrot_trainer, 100, seed=3)
    assert novel.tolist() == [name not in training for name in drawn]
    assert 0 < novel.sum() < 10  # the parrot mostly repeats its training names


def test_unique_names_never_repeat(parrot_trainer):
    drawn = names(parrot_trainer, 12, seed=0, unique=True)
    assert len(drawn) == len(set(drawn)) == 12


def test_without_unique_names_repeat(parrot_trainer):
    drawn = names(parrot_trainer, 12, seed=0)
    assert len(set(drawn)) < 12


def test_novel_and_unique_compose_with_constraints(parrot_trainer):
    drawn = names(parrot_trainer, 5, seed=5, prefix="S", suffix="us", novel=True, unique=True, temperature=1.5)
    assert len(drawn) == len(set(drawn)) == 5
    assert all(n.startswith("S") and n.endswith("us") for n in drawn)
    assert not set(drawn) & set(parrot_trainer.names.names)


def greedy_name(trainer) -> str:
    """The argmax continuation, step by step, straight from the README's RNN equations."""
    params = trainer.checkpoint().inference_params()
    h, x, name = np.zeros((1, trainer.model_cfg.hidden), np.float32), 0, ""
    for _ in range(sampling.DEFAULT_MAX_LEN):
        h = np.tanh(params["W_xh.0"][[x]] + params["b_h.0"] + h @ params["W_hh.0"])
        x = int(np.argmax(h @ params["W_hy"] + params["b_y"]))
        if x == 0:
            return name
        name += trainer.vocab.chars[x - 1]
    raise AssertionError("the greedy name never ends")


def test_top_k_1_gives_the_greedy_name(small_trainer):
    assert set(names(small_trainer, 30, seed=9, top_k=1)) == {greedy_name(small_trainer)}


def test_top_k_keeps_only_the_k_likeliest():
    logits = np.log(np.array([[0.1, 0.4, 0.2, 0.3]], np.float32))
    weights = sampling._filter(logits, logits.max(axis=1, keepdims=True), SampleSpec(top_k=2))
    assert np.flatnonzero(weights[0]).tolist() == [1, 3]


@pytest.mark.parametrize("p, kept", [(0.3, [0]), (0.7, [0, 1]), (0.79, [0, 1]), (0.81, [0, 1, 2]), (1.0, [0, 1, 2, 3])])
def test_top_p_keeps_the_smallest_set_holding_p(p, kept):
    logits = np.log(np.array([[0.5, 0.3, 0.15, 0.05]], np.float64))
    weights = sampling._filter(logits, logits.max(axis=1, keepdims=True), SampleSpec(top_p=p))
    assert np.flatnonzero(weights[0]).tolist() == kept


def test_temperature_sharpens_the_distribution():
    logits = np.log(np.array([[0.2, 0.8]]))
    weights = sampling._filter(logits, logits.max(axis=1, keepdims=True), SampleSpec(temperature=0.5))
    assert weights[0] / weights[0].sum() == pytest.approx([1 / 17, 16 / 17])


def test_low_temperature_repeats_the_most_likely_names(small_trainer):
    cold = names(small_trainer, 200, seed=2, temperature=0.05)
    warm = names(small_trainer, 200, seed=2, temperature=1.0)
    assert len(set(cold)) < len(set(warm))


def test_impossible_constraints_end_with_the_names_found_and_a_clear_error(small_trainer):
    ckpt = small_trainer.checkpoint()
    spec = SampleSpec(top_k=1, unique=True, max_attempts=drawn_in(4))
    chunks = sampling.generate(ckpt.inference_params(), ckpt.model_config, ckpt.vocab, 3, spec, seed=0)
    assert next(chunks).names == [greedy_name(small_trainer)]
    with pytest.raises(DinogenError, match=f"only 1 of 3 names each different from the others turned up in {drawn_in(4)} attempts"):
        next(chunks)


def test_without_max_attempts_a_drought_ends_the_search(small_trainer, monkeypatch):
    monkeypatch.setattr(sampling, "DROUGHT", 1000)
    with pytest.raises(DinogenError, match="only 0 of 2 names"):
        names(small_trainer, 2, suffix="qqq")


def names_until_giving_up(trainer, n, **spec):
    """The names a request yields, and whether it gave up."""
    ckpt = trainer.checkpoint()
    drawn = []
    try:
        for chunk in sampling.generate(ckpt.inference_params(), ckpt.model_config, ckpt.vocab, n, SampleSpec(**spec), 5):
            drawn += chunk.names
    except DinogenError:
        return drawn, True
    return drawn, False


def test_giving_up_keeps_the_first_names_the_same_however_many_are_asked_for(small_trainer, monkeypatch):
    monkeypatch.setattr(sampling, "DROUGHT", 400)  # a rare suffix then runs dry after a few names
    found, gave_up = names_until_giving_up(small_trainer, 10**6, suffix="ia")
    assert gave_up and len(found) >= 2
    assert names_until_giving_up(small_trainer, len(found), suffix="ia") == (found, False)
    assert names_until_giving_up(small_trainer, len(found) + 1, suffix="ia") == (found, True)
    assert names_until_giving_up(small_trainer, len(found) - 1, suffix="ia") == (found[:-1], False)


def test_max_attempts_counts_candidates_exactly_not_whole_blocks(small_trainer):
    drawn, gave_up = names_until_giving_up(small_trainer, 10, max_attempts=3)
    assert gave_up and len(drawn) <= 3
    assert drawn == names(small_trainer, 10, seed=5)[: len(drawn)]
    with pytest.raises(DinogenError, match="turned up in 20 attempts"):
        names(small_trainer, 1, suffix="qqq", max_attempts=20)


def test_novel_without_known_training_names_is_a_clear_error(small_trainer):
    with pytest.raises(DinogenError, match="does not store the names it was trained on"):
        generate(small_trainer, 5, known=False, novel=True)


@pytest.mark.parametrize("field", ["prefix", "suffix", "contains"])
def test_a_string_with_a_character_the_model_never_saw_is_refused(small_trainer, field):
    with pytest.raises(DinogenError, match=f"the {field} 'x#' has the character '#' that the model never saw"):
        names(small_trainer, 5, **{field: "x#"})


@pytest.mark.parametrize("spec, message", [
    (dict(temperature=0.0), "temperature"),
    (dict(top_k=0), "top-k"),
    (dict(top_p=1.5), "top-p"),
    (dict(top_p=0.0), "top-p"),
    (dict(min_len=5, max_len=4), "below the minimum"),
    (dict(prefix="Abcdef", max_len=4), "prefix leaves no room"),
    (dict(prefix="Abcd", max_len=4), "prefix leaves no room"),
    (dict(suffix="saurus", max_len=3), "longer than the maximum length"),
    (dict(contains="saurus", max_len=3), "longer than the maximum length"),
    (dict(prefix="Tyr", suffix="saurus", max_len=8), "the shortest has 9"),
])
def test_impossible_settings_are_refused(small_trainer, spec, message):
    with pytest.raises(DinogenError, match=message):
        names(small_trainer, 1, **spec)


@pytest.mark.parametrize("prefix, suffix, shortest", [
    ("Tyr", "saurus", 9),  # Tyrsaurus
    ("Tyrs", "saurus", 9),  # Tyrsaurus, overlapping by the s
    ("ab", "bc", 3),  # abc
    ("ab", "b", 3),  # abb: a name continues its prefix, so it cannot be ab itself
    ("Tyrannosaurus", "saurus", 18),  # Tyrannosaurusaurus
])
def test_the_shortest_name_holding_a_prefix_and_a_suffix(prefix, suffix, shortest):
    assert sampling.shortest_with(prefix, suffix) == shortest


def test_a_certain_model_always_draws_its_only_choice():
    weights = np.exp(np.array([[0.0, 50.0, 0.0], [60.0, 0.0, 0.0]]) - [[50.0], [60.0]])
    assert sampling._draw(weights, np.array([0.3, 1.0])).tolist() == [1, 0]


def test_a_character_of_weight_zero_is_never_drawn():
    weights = np.array([[0.0, 1.0, 0.0, 2.0, 0.0]] * 4, np.float32)
    u = np.array([1e-9, 1 / 3, 0.34, 1.0], np.float32)
    assert sampling._draw(weights, u).tolist() == [1, 1, 3, 3]


def test_draws_follow_the_weights():
    u = 1 - np.random.default_rng(0).random(100_000)
    counts = np.bincount(sampling._draw(np.tile([1.0, 2.0, 7.0], (len(u), 1)), u), minlength=3)
    assert counts / len(u) == pytest.approx([0.1, 0.2, 0.7], abs=0.01)


def test_decoding_strips_the_boundary_padding():
    vocab = Vocab(("a", "b"))
    tokens = np.array([[1, 2, 0, 0], [2, 0, 0, 0]])
    assert vocab.decode_rows(tokens) == ["ab", "b"]


def test_sample_also_takes_a_generator_for_its_seed(small_trainer):
    ckpt = small_trainer.checkpoint()
    params, cfg, vocab = ckpt.inference_params(), ckpt.model_config, ckpt.vocab
    first = sampling.sample(params, cfg, vocab, 5, np.random.default_rng(3))
    assert first == sampling.sample(params, cfg, vocab, 5, np.random.default_rng(3))
    assert len(first) == 5


def test_sample_collects_plain_names(small_trainer):
    ckpt = small_trainer.checkpoint()
    drawn = sampling.sample(ckpt.inference_params(), ckpt.model_config, ckpt.vocab, 5, seed=1)
    assert drawn == names(small_trainer, 5, seed=1)


def test_constraint_strings_are_written_as_the_model_writes_names():
    spec = SampleSpec(prefix="Sa\u0301", suffix="US", contains="Ö").for_model(lowercase=True)
    assert (spec.prefix, spec.suffix, spec.contains) == ("sá", "us", "ö")
    assert SampleSpec(suffix="US").for_model(lowercase=False).suffix == "US"


def test_hopeless_constraints_give_up_early_however_many_names_are_asked_for(small_trainer, monkeypatch):
    monkeypatch.setattr(sampling, "DROUGHT", drawn_in(4))
    with pytest.raises(DinogenError, match=f"only 0 of 1,000,000 names ending with 'qqq' turned up in {drawn_in(4)} "):
        names(small_trainer, 10**6, suffix="qqq")


def reach_of(trainer, min_len, drafts=sampling.REACH_DRAFTS, seed=0, **spec):
    """reach() for min_len on the trainer's model, read after an empty prefix."""
    ckpt = trainer.checkpoint()
    params, cfg = ckpt.inference_params(), ckpt.model_config
    spec = SampleSpec(min_len=min_len, **spec)
    prefix = sampling.read_prefix(params, cfg, ckpt.vocab.encode(""), None)
    return sampling.reach(params, cfg, spec, prefix, np.random.default_rng(seed), drafts=drafts)


def test_reach_agrees_with_exact_enumeration_of_two_characters(small_trainer):
    ckpt = small_trainer.checkpoint()
    params, cfg = ckpt.inference_params(), ckpt.model_config
    prefix = sampling.read_prefix(params, cfg, ckpt.vocab.encode(""), None)
    first = softmax(prefix.logits[0])  # (V,) P(first token)
    tokens = np.arange(1, cfg.vocab_size)  # every first character, the end token aside
    states = [tuple(np.repeat(s, len(tokens), axis=0) for s in state) for state in prefix.states]
    logits, _ = model.step(params, cfg, tokens, states, prefix.table)
    exact = np.sum(first[tokens] * (1 - softmax(logits)[:, 0]))  # P(neither of the first two tokens ends)
    estimates = [reach_of(small_trainer, 2, drafts=4096, seed=s) for s in range(3)]
    assert np.allclose(np.exp(estimates), exact, rtol=0.03)


def test_reach_of_a_length_rejection_never_finds_is_estimated(small_trainer):
    assert -60 < reach_of(small_trainer, 100) < np.log(1e-8)  # a number, where rejection finds nothing
    assert reach_of(small_trainer, 3) > np.log(0.5)


def test_reach_is_never_where_the_filter_leaves_only_the_end(small_trainer):
    ckpt = small_trainer.checkpoint()
    params, cfg = dict(ckpt.inference_params()), ckpt.model_config
    params["b_y"] = params["b_y"].copy()
    params["b_y"][0] += 100.0  # the end token now outscores every character, everywhere
    prefix = sampling.read_prefix(params, cfg, ckpt.vocab.encode(""), None)
    spec = SampleSpec(min_len=2, top_k=1)
    assert sampling.reach(params, cfg, spec, prefix, np.random.default_rng(0)) == -np.inf


def test_a_min_len_out_of_reach_is_refused_after_a_thousand_candidates(small_trainer):
    k = next(k for k in range(100) if drawn_in(k) >= sampling.LOOK_AFTER)  # blocks drawn before the estimate
    with pytest.raises(DinogenError, match=f"only 0 of 10 names of exactly 100 characters turned up in {drawn_in(k):,} "
                       r"attempts, and more are out of reach: this model goes on to 100 characters about once in "
                       r"10\^\d+ candidates"):
        names(small_trainer, 10, min_len=100)


def test_max_attempts_insists_past_a_min_len_out_of_reach(small_trainer):
    with pytest.raises(DinogenError, match="turned up in 3,000 attempts; loosen the constraints"):
        names(small_trainer, 10, min_len=100, max_attempts=3000)


def test_a_reachable_min_len_is_estimated_and_not_refused(small_trainer, monkeypatch):
    estimates = []
    monkeypatch.setattr(sampling, "LOOK_AFTER", 1)  # the estimate runs after the first block without a name
    monkeypatch.setattr(sampling, "reach", lambda *args, **kw: estimates.append(reach(*args, **kw)) or estimates[-1])
    drawn = names(small_trainer, 5, suffix="xus", min_len=10)  # blocks without a name: the suffix is rare
    assert len(estimates) == 1 and estimates[0] > np.log(0.1)
    assert len(drawn) == 5 and all(len(name) >= 10 and name.endswith("xus") for name in drawn)


def test_the_first_names_are_the_same_once_reach_has_run(small_trainer, monkeypatch):
    monkeypatch.setattr(sampling, "LOOK_AFTER", 1)
    assert names(small_trainer, 3, suffix="xus", min_len=10) == names(small_trainer, 12, suffix="xus", min_len=10)[:3]


def test_a_prefix_the_model_never_continues_is_refused_for_what_it_is(small_trainer, monkeypatch):
    monkeypatch.setattr(sampling, "LOOK_AFTER", 1)
    greedy = greedy_name(small_trainer)  # with top_k=1 the model ends right after it
    with pytest.raises(DinogenError, match=f"this model writes a character after '{greedy}' never .*; change --prefix "
                       "or loosen --top-k, --top-p or --temperature"):
        names(small_trainer, 1, prefix=greedy, top_k=1)


def softmax(logits):
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def test_names_that_never_end_within_max_len_are_dropped_not_cut(small_trainer):
    shorter = len(greedy_name(small_trainer)) - 1
    with pytest.raises(DinogenError, match=f"only 0 of 1 name of 1 to {shorter} characters turned up in 1 attempt;"):
        names(small_trainer, 1, top_k=1, max_len=shorter, max_attempts=1)



@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_sampling_steps_give_the_logits_of_the_training_forward_pass(cell):
    """model.step, with the embedding folded into the input table, against model.forward."""
    cfg = model.ModelConfig(vocab_size=8, cell=cell, hidden=6, layers=2, embed_dim=3)
    params = model.init_params(cfg, np.random.default_rng(0), dtype=np.float64)
    params["W_hy"] = np.random.default_rng(1).standard_normal(params["W_hy"].shape)
    codes = np.array([3, 1, 4, 1, 5, 2, 6], dtype=np.int32)
    batch = make_batch(Dataset(codes, np.array([0, len(codes)])), np.array([0]))
    nll, _ = model.forward(params, cfg, batch)  # (T,) one name: every position is real
    states, table = model.initial_states(cfg, 1, np.float64), model.input_table(params, cfg)
    for t, (x, y) in enumerate(zip(batch.x[:, 0], batch.y[:, 0])):
        logits, states = model.step(params, cfg, np.array([x]), states, table)
        log_probs = logits[0] - np.log(np.exp(logits[0]).sum())
        assert -log_probs[y] == pytest.approx(nll[t], rel=1e-10)


@pytest.mark.parametrize("spec", [dict(temperature=1e-300), dict(top_p=1e-300), dict(temperature=1e-46, top_p=1e-50)])
def test_a_vanishing_temperature_or_top_p_still_draws_the_likeliest_name(small_trainer, spec):
    with np.errstate(divide="raise", invalid="raise"):  # and without the warnings float32 gave
        assert names(small_trainer, 3, **spec) == [greedy_name(small_trainer)] * 3

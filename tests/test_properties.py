"""Properties over many generated inputs (hypothesis): names round-trip through encoding, and any
damaged or truncated checkpoint is refused."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dinogen import checkpoint, model
from dinogen.data import Vocab, encode_names
from dinogen.errors import DinogenError


names_strategy = st.lists(
    st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=12), min_size=1, max_size=8
)


@given(names_strategy)
def test_encode_decode_round_trips_any_unicode(names):
    vocab = Vocab.from_names(names)
    data = encode_names(names, vocab)
    decoded = vocab.decode_names(data.codes, data.offsets)
    assert decoded == names


@pytest.fixture(scope="module")
def sealed(small_checkpoint):
    return small_checkpoint.read_bytes()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(position=st.floats(0, 1, exclude_max=True), flip=st.integers(1, 255))
def test_any_corrupted_byte_is_rejected(sealed, tmp_path, position, flip):
    damaged = bytearray(sealed)
    damaged[int(position * len(damaged))] ^= flip
    path = tmp_path / "damaged.npz"
    path.write_bytes(bytes(damaged))
    with pytest.raises(DinogenError):
        checkpoint.load(path)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(keep=st.floats(0, 1, exclude_max=True))
def test_any_truncation_is_rejected(sealed, tmp_path, keep):
    path = tmp_path / "cut.npz"
    path.write_bytes(sealed[: int(keep * len(sealed))])
    with pytest.raises(DinogenError):
        checkpoint.load(path)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cell=st.sampled_from(["rnn", "gru", "lstm"]), layers=st.integers(1, 3), hidden=st.integers(1, 6),
       embed=st.integers(0, 3), names=names_strategy)
def test_checkpoint_save_load_round_trips(tmp_path, cell, layers, hidden, embed, names):
    vocab = Vocab.from_names(names)
    cfg = model.ModelConfig(vocab.size, cell, hidden, layers, embed)
    params = model.init_params(cfg, np.random.default_rng(0))
    meta = {"model": cfg.to_dict(), "vocab": list(vocab.chars), "step": 1}
    path = tmp_path / "rt.npz"
    checkpoint.save(path, checkpoint.Checkpoint(params, meta))
    loaded = checkpoint.load(path)
    assert loaded.vocab == vocab and loaded.model_config == cfg
    for key in params:
        assert np.array_equal(loaded.params[key], params[key])

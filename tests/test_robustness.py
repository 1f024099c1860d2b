"""Interrupts, divergence, hostile input and odd flags: a clear message, a
documented exit code, no traceback and never a damaged checkpoint."""

import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dinogen import checkpoint, model
from dinogen.cli import main
from dinogen.data import Vocab, encode_names, read_names
from dinogen.errors import DinogenError
from dinogen.config import TrainConfig
from dinogen.train import Diverged, Trainer
from dinogen.workspace import FRESH

from conftest import BUNDLED_NAMES

TINY = ["--steps", "3", "--hidden", "8", "-q"]


def train(tmp_path, content: bytes | None, *flags, name="names.txt"):
    """Run `dinogen train` on a file holding content (None: no file at all)."""
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    out = tmp_path / "out.npz"
    result = CliRunner().invoke(main, ["train", str(path), "-o", str(out), *flags])
    return result, out


@pytest.mark.parametrize(
    "content, flags, code, message",
    [
        (None, [], 1, "does not exist"),
        (b"", [], 1, "holds no names"),
        (b"\n  \n\r\n\t\n", [], 1, "holds no names"),
        (bytes(range(256)) * 4, [], 1, "NUL byte"),
        (b"Rex\n\xff\xfeBad\n", [], 1, "line 2 is not valid utf-8"),
        (b"Rex\nAnna\x00\n", [], 1, "NUL byte"),
        (b"Bront\xeb\nZo\xe9\n", ["--encoding", "no-such-codec"], 2, "not a text encoding"),
        (b"Rex\n", ["--encoding", "base64"], 1, "not a text encoding"),
        (b"Ann\xffa\n", ["--encoding", "punycode"], 1, "not valid punycode"),
        (b"Bartholomew\nMaximilian\n", ["--max-name-length", "5"], 1, "2 longer than the maximum name length"),
        (b"Abc\rDef\rG\xffh\r", [], 1, "line 3 is not valid utf-8"),
        (b"Abc\n\\ud800d\n", ["--encoding", "unicode_escape"], 1, "line 2 holds U+D800, which is not a character"),
        (b"Abc\nD\\x00ef\n", ["--encoding", "unicode_escape"], 1, "line 2 holds U+0000"),
    ],
    ids=["missing", "empty", "blank-lines", "binary", "not-utf8", "nul", "bad-encoding", "binary-codec", "punycode",
         "all-too-long", "cr-line-number", "decoded-surrogate", "decoded-nul"],
)
def test_unreadable_data_is_one_clear_error(tmp_path, content, flags, code, message):
    result, out = train(tmp_path, content, *TINY, *flags)
    assert result.exit_code == code
    assert message in result.stderr and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and result.stdout == ""
    assert not out.exists()


@pytest.mark.parametrize(
    "content, flags, names",
    [
        (b"Bront\xeb\nZo\xe9\n", ["--encoding", "latin-1"], ["Bront\u00eb", "Zo\u00e9"]),
        ("\ufeffAnna\nBert\n".encode(), [], ["Anna", "Bert"]),
        ("\ufeffAnna\nBert\n".encode(), ["--encoding", "u8"], ["Anna", "Bert"]),
        (b"Anna\r\nBert\r\n", [], ["Anna", "Bert"]),
        (b"Anna\rBert\rCarla\r", [], ["Anna", "Bert", "Carla"]),
        ("Anna\nBert\n".encode("utf-32"), ["--encoding", "utf-32"], ["Anna", "Bert"]),
        ("Anna\nBert\n".encode("utf-16"), ["--encoding", "utf_16"], ["Anna", "Bert"]),
        ("S\u00e3o Paulo\no'brien\nmary-jane\nRex \U0001F996\n".encode(), [], None),
        (b"Solo\n", [], ["Solo"]),
        (b"aaa\naa\na\n", [], ["aaa", "aa", "a"]),
        ("Bronte\u0308\n".encode(), [], ["Bront\u00eb"]),
    ],
    ids=["latin-1", "bom", "bom-u8", "crlf", "cr", "utf-32", "utf_16", "spaces-apostrophes-emoji", "one-name", "one-character",
         "nfc"],
)
def test_odd_but_valid_data_trains(tmp_path, content, flags, names):
    result, out = train(tmp_path, content, *TINY, *flags)
    assert result.exit_code == 0, result.stderr
    ckpt = checkpoint.load(out)
    if names is not None:
        assert ckpt.meta["data"]["names"] == len(names)
        assert set(ckpt.vocab.chars) == set("".join(names))


def test_a_megabyte_line_is_skipped_with_a_warning(tmp_path):
    result, out = train(tmp_path, b"Anna\n" + b"x" * 1_000_000 + b"\nBert\n", "--steps", "3", "--hidden", "8")
    assert result.exit_code == 0
    assert "skipped 1 names longer than 64" in result.stderr
    assert checkpoint.load(out).meta["data"]["names"] == 2


def test_max_name_length_is_a_setting(tmp_path):
    result, out = train(tmp_path, b"Anna\nBartholomew\n", *TINY, "--max-name-length", "5")
    assert result.exit_code == 0
    assert checkpoint.load(out).meta["data"]["names"] == 1


@pytest.mark.parametrize(
    "flags", [["--steps", "0"], ["--batch-size", "0"], ["--hidden", "0"], ["--lr", "-1"], ["--val-fraction", "1"],
              ["--dropout", "1"], ["--layers", "4"], ["--cell", "transformer"], ["--preset", "fastest"],
              ["--seed", "-1"], ["--lr", "nan"], ["--dropout", "nan"], ["--max-seconds", "inf"],
              ["--weight-decay", "inf"], ["--clip", "nan"], ["--patience", "3", "--val-fraction", "0"]],
)
def test_impossible_flags_are_usage_errors(tmp_path, flags):
    result, out = train(tmp_path, b"Anna\nBert\n", *flags)
    assert result.exit_code == 2
    assert "Traceback" not in result.stderr and flags[0] in result.stderr
    assert not out.exists()


@pytest.mark.parametrize("out_name", ["missing/dir/out.npz", "a-file/out.npz", "."])
def test_an_unwritable_out_fails_before_training(tmp_path, out_name):
    (tmp_path / "a-file").write_text("not a folder")
    result = CliRunner().invoke(main, ["train", str(BUNDLED_NAMES), "-o", str(tmp_path / out_name), *TINY[:-1]])
    assert result.exit_code == 2  # a bad --out is a usage error
    assert "cannot write" in result.stderr and "trained" not in result.stderr


def test_a_diverging_run_stops_with_a_message_and_writes_no_nan(tmp_path, monkeypatch):
    real_forward = model.forward
    calls = {"n": 0}

    def poisoned(params, cfg, batch, rng=None, ws=FRESH):
        nll, cache = real_forward(params, cfg, batch, rng, ws)
        if rng is None:  # evaluation stays finite
            return nll, cache
        calls["n"] += 1
        return (nll * np.nan if calls["n"] > 12 else nll), cache

    monkeypatch.setattr(model, "forward", poisoned)
    out = tmp_path / "d.npz"
    result = CliRunner().invoke(main, ["train", str(BUNDLED_NAMES), "-o", str(out), "--steps", "50", "--hidden", "8",
                                       "--eval-every", "5", "--dropout", "0.1", "-q"])
    assert result.exit_code == 1
    assert "diverged at step 13" in result.stderr and "keeps the last good state" in result.stderr
    ckpt = checkpoint.load(out)  # load checks that every weight is finite
    assert ckpt.meta["step"] == 10


def test_a_checkpoint_is_never_written_over_the_data(tmp_path):
    data = tmp_path / "names.txt"
    data.write_bytes(b"Anna\nBert\n")
    result = CliRunner().invoke(main, ["train", str(data), "-o", str(tmp_path / "." / "names.txt"), *TINY])
    assert result.exit_code == 2 and "destroy" in result.stderr
    assert data.read_bytes() == b"Anna\nBert\n"


def test_a_validation_loss_that_is_not_finite_is_never_saved(tmp_path):
    out = tmp_path / "decayed.npz"
    result = CliRunner().invoke(main, ["train", str(BUNDLED_NAMES), "-o", str(out), "--steps", "300", "--hidden", "16",
                                       "--eval-every", "1", "--weight-decay", "5000", "-q"])
    assert result.exit_code == 1 and "diverged" in result.stderr
    if out.exists():  # the last good state, which must load
        assert all(math.isfinite(loss) for _, loss in checkpoint.load(out).meta["history"]["val"])


def test_an_interrupted_run_never_saves_weights_that_are_not_finite():
    trainer = Trainer(read_names(BUNDLED_NAMES), TrainConfig(optimizer="sgd", lr=1e300, clip=0.0, hidden=8, steps=5))
    trainer.run(should_stop=lambda: trainer.step >= 1)
    with pytest.raises(Diverged, match="weights are no longer finite"):
        trainer.checkpoint()


def test_running_out_of_memory_is_one_sentence(tmp_path, monkeypatch):
    def no_memory(*args, **kwargs):
        raise MemoryError  # what NumPy raises for --hidden 200000

    monkeypatch.setattr(model, "init_params", no_memory)
    result, out = train(tmp_path, b"Anna\nBert\n", *TINY)
    assert result.exit_code == 1
    assert "not enough memory" in result.stderr and "Traceback" not in result.stderr and not out.exists()


def test_an_existing_file_that_is_not_a_checkpoint_is_never_written_over(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    result = CliRunner().invoke(main, ["train", str(BUNDLED_NAMES), "-o", str(notes), *TINY])
    assert result.exit_code == 2 and "is not a checkpoint" in result.stderr
    assert notes.read_text() == "my notes\n"


def test_a_checkpoint_given_as_names_or_names_as_a_checkpoint_is_named_for_what_it_is(tmp_path):
    model = tmp_path / "model.npz"
    assert CliRunner().invoke(main, ["train", str(BUNDLED_NAMES), "-o", str(model), *TINY]).exit_code == 0
    as_names = CliRunner().invoke(main, ["train", str(model), "-o", str(tmp_path / "x.npz"), *TINY])
    assert as_names.exit_code == 1 and "a zip archive (a dinogen checkpoint?)" in as_names.stderr
    as_model = CliRunner().invoke(main, ["sample", "-c", str(BUNDLED_NAMES)])
    assert as_model.exit_code == 1 and "not even a zip archive" in as_model.stderr


def test_weights_that_stop_being_finite_are_never_saved(tmp_path):
    out = tmp_path / "huge-lr.npz"
    result = CliRunner().invoke(main, ["train", str(BUNDLED_NAMES), "-o", str(out), "--steps", "5", "--hidden", "8",
                                       "--eval-every", "1", "--lr", "1e39", "-q"])
    assert result.exit_code == 1
    assert "weights are no longer finite" in result.stderr and "no checkpoint was written" in result.stderr
    assert "Warning" not in result.stderr and not out.exists()


def start_training(tmp_path):
    out = tmp_path / "sig.npz"
    command = [sys.executable, "-m", "dinogen", "train", str(BUNDLED_NAMES), "-o", str(out),
               "--steps", "10000000", "--hidden", "16", "--eval-every", "20"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not out.exists() and time.monotonic() < deadline:  # wait until training is under way
        time.sleep(0.05)
    return process, out


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_saves_a_checkpoint_and_exits_with_its_code(tmp_path, sig, code):
    process, out = start_training(tmp_path)
    process.send_signal(sig)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == code
    assert "interrupted at step" in stderr and "--resume" in stderr and "Traceback" not in stderr
    ckpt = checkpoint.load(out)
    assert ckpt.meta["step"] > 0


def test_a_second_ctrl_c_aborts_at_once_and_leaves_the_last_checkpoint(tmp_path, monkeypatch):
    process, out = start_training(tmp_path)
    os.kill(process.pid, signal.SIGINT)
    os.kill(process.pid, signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130
    assert "Traceback" not in stderr
    checkpoint.load(out)


def test_a_second_interrupt_during_the_final_save_aborts_like_one_during_training(tmp_path, monkeypatch):
    def interrupted_save(path, ckpt):
        raise KeyboardInterrupt  # what the signal handler raises at a second Ctrl-C

    monkeypatch.setattr(checkpoint, "save", interrupted_save)
    result = CliRunner().invoke(main, ["train", str(BUNDLED_NAMES), "-o", str(tmp_path / "x.npz"), "--steps", "3",
                                       "--hidden", "8", "--eval-every", "100", "-q"])
    assert result.exit_code == 130
    assert "aborted at once" in result.stderr


names_strategy = st.lists(
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12), min_size=1, max_size=8
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

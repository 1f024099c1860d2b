"""Divergence, running out of memory and signals: one sentence, the documented exit code, and
never a checkpoint holding weights that are not finite."""

import math
import os
import shlex
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from click.testing import CliRunner

from dinogen import checkpoint, model
from dinogen.cli import main
from dinogen.data import read_names
from dinogen.config import WEIGHT_LIMIT, TrainConfig
from dinogen.train import Diverged, Trainer
from dinogen.workspace import FRESH

from conftest import BUNDLED_NAMES, TINY, train

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


def test_a_divergence_before_any_save_names_the_settings_to_lower_in_one_sentence(tmp_path):
    result, _ = train(tmp_path, b"Ann\nBo\nCy\nDee\n", "--weight-decay", "1e300", "--steps", "5", "--hidden", "8", "-q")
    assert result.exit_code == 1
    assert "lower --lr or --weight-decay; no checkpoint was written." in result.stderr
    assert "--clip" not in result.stderr  # clipping is on: not the cause


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


def test_weights_beyond_what_a_checkpoint_may_hold_are_a_divergence_not_saved(tmp_path):
    trainer = Trainer(read_names(BUNDLED_NAMES), TrainConfig(hidden=8, steps=5, workers=1))
    trainer.params["W_hy"][0, 0] = 2 * WEIGHT_LIMIT  # finite, but a checkpoint holding it would not load
    with pytest.raises(Diverged, match="beyond 10,000"):
        trainer.checkpoint()


def test_running_out_of_memory_is_one_sentence(tmp_path, monkeypatch):
    def no_memory(*args, **kwargs):
        raise MemoryError  # what NumPy raises for --hidden 200000

    monkeypatch.setattr(model, "init_params", no_memory)
    result, out = train(tmp_path, b"Anna\nBert\n", *TINY)
    assert result.exit_code == 1
    assert "not enough memory" in result.stderr and "Traceback" not in result.stderr and not out.exists()


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


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_second_signal_aborts_at_once_and_leaves_the_last_checkpoint(tmp_path, sig, code):
    process, out = start_training(tmp_path)
    os.kill(process.pid, sig)
    os.kill(process.pid, sig)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == code
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


def test_ctrl_c_while_sampling_ends_quietly_with_130_and_the_names_printed_so_far():
    process = subprocess.Popen([sys.executable, "-m", "dinogen", "sample", "--n", "100000000", "--seed", "1"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = process.stdout.readline()  # names are coming
    process.send_signal(signal.SIGINT)
    rest, stderr = process.communicate(timeout=60)
    assert process.returncode == 130
    assert first.strip() and stderr == ""
    assert all(line for line in rest.splitlines()[:-1])  # whole lines; only the last may be cut by the signal


@pytest.mark.parametrize("command, flag", [(["score", "Rex"], "--max-name-length"), (["sample", "--n", "2"], "--n"),
                                           (["info"], "for this command; free some memory")])
def test_running_out_of_memory_names_options_of_the_command_that_ran(monkeypatch, command, flag):
    from dinogen import checkpoint as checkpoints

    def no_memory(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(checkpoints, "load", no_memory)
    result = CliRunner().invoke(main, command)
    assert result.exit_code == 1 and "not enough memory" in result.stderr and flag in result.stderr
    assert "--hidden" not in result.stderr


def test_the_command_to_continue_quotes_paths_and_reads_the_names_the_same_way():
    from dinogen.cli import _resume_command
    command = _resume_command(("my  names.txt", "-x.txt"), None, "latin-1", 10, "my model.npz")
    assert shlex.split(command) == ["dinogen", "train", "--encoding", "latin-1", "--max-name-length", "10",
                                    "--resume", "my model.npz", "-o", "my model.npz", "--", "my  names.txt", "-x.txt"]


def test_the_command_to_continue_leaves_out_the_reading_defaults():
    from dinogen.cli import _resume_command
    from dinogen.config import ENCODING, MAX_NAME_LENGTH
    assert _resume_command(("a.txt", "b.txt"), "files", ENCODING, MAX_NAME_LENGTH, "m.npz") == (
        "dinogen train --categories files --resume m.npz -o m.npz -- a.txt b.txt")


def test_a_signal_between_the_first_run_and_the_refit_keeps_the_first_run_and_the_refit_resumes(tmp_path, monkeypatch):
    import dinogen.train

    def refit_config_then_ctrl_c(trainer):  # the signal lands after the first run, before the refit trains
        os.kill(os.getpid(), signal.SIGINT)
        return original(trainer)

    original = dinogen.train.refit_config
    monkeypatch.setattr(dinogen.train, "refit_config", refit_config_then_ctrl_c)
    out = tmp_path / "best.npz"
    flags = ["--preset", "best", "--hidden", "8", "--embed-dim", "4", "--steps", "20", "--eval-every", "10", "-q"]
    result = CliRunner().invoke(main, ["train", str(BUNDLED_NAMES), "-o", str(out), *flags])
    assert result.exit_code == 130
    assert "interrupted before the refit" in result.stderr and "continue with" in result.stderr
    first = checkpoint.load(out)
    assert first.meta["step"] == 20 and first.best is not None  # the first run, kept whole
    monkeypatch.setattr(dinogen.train, "refit_config", original)
    resumed = CliRunner().invoke(main, ["train", str(BUNDLED_NAMES), "--resume", str(out), "-q"])
    assert resumed.exit_code == 0
    assert checkpoint.load(out).meta["step"] == 22  # the refit run to its end: 20 steps of 9/10 of the names, in epochs


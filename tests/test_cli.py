"""The command line through CliRunner, and a few real processes through pipes."""

import json
import math
import subprocess
import sys

import pytest
from click.testing import CliRunner

from dinogen import __version__, checkpoint
from dinogen.cli import main

from conftest import BUNDLED_NAMES


@pytest.fixture
def runner():
    return CliRunner()


def test_sample_prints_exactly_n_names_from_the_vocabulary(runner, small_checkpoint):
    result = runner.invoke(main, ["sample", "--n", "7", "-c", str(small_checkpoint)])
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert len(lines) == 7
    vocab = set(checkpoint.load(small_checkpoint).vocab.chars)
    assert all(line and set(line) <= vocab for line in lines)
    assert result.stderr == ""


def test_sample_seed_reproduces_names(runner, small_checkpoint):
    args = ["sample", "--n", "20", "--seed", "11", "-c", str(small_checkpoint)]
    assert runner.invoke(main, args).stdout == runner.invoke(main, args).stdout


def test_sample_verbose_names_the_checkpoint_on_stderr_only(runner, small_checkpoint):
    result = runner.invoke(main, ["sample", "--n", "2", "-v", "-c", str(small_checkpoint)])
    assert result.exit_code == 0
    assert str(small_checkpoint) in result.stderr
    assert str(small_checkpoint) not in result.stdout


def test_sample_without_checkpoint_uses_dinogen_npz_in_the_current_folder(runner, small_checkpoint, tmp_path,
                                                                           monkeypatch):
    (tmp_path / "dinogen.npz").write_bytes(small_checkpoint.read_bytes())
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(main, ["sample", "--n", "3", "-v"])
    assert result.exit_code == 0
    assert "./dinogen.npz" in result.stderr


def test_train_writes_a_checkpoint_and_a_json_summary(runner, tmp_path):
    out = tmp_path / "m.npz"
    result = runner.invoke(
        main, ["train", str(BUNDLED_NAMES), "--steps", "30", "--hidden", "16", "--out", str(out), "--json"]
    )
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert {"steps", "seconds", "chars_per_sec", "train_loss", "val_loss", "checkpoint"} <= summary.keys()
    assert summary["steps"] == 30 and summary["checkpoint"] == str(out)
    assert checkpoint.load(out).meta["step"] == 30
    assert "checkpoint:" in result.stderr


def test_train_reads_names_from_stdin(runner, tmp_path):
    out = tmp_path / "stdin.npz"
    result = runner.invoke(main, ["train", "-", "--steps", "5", "--hidden", "8", "-q", "-o", str(out)],
                           input="Anna\nBert\nCarla\nDieter\n")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "" and result.stderr == ""
    assert checkpoint.load(out).meta["data"]["source"] == "<stdin>"


def test_train_quiet_without_json_prints_nothing(runner, tmp_path):
    result = runner.invoke(main, ["train", str(BUNDLED_NAMES), "--steps", "3", "--hidden", "8", "-q",
                                  "-o", str(tmp_path / "q.npz")])
    assert result.exit_code == 0
    assert result.stdout == "" and result.stderr == ""


@pytest.mark.parametrize("flag", [["--steps", "0"], ["--batch-size", "0"], ["--hidden", "0"], ["--lr", "-1"],
                                  ["--val-fraction", "1"], ["--optimizer", "rmsprop"]])
def test_bad_train_flags_are_usage_errors(runner, tmp_path, flag):
    result = runner.invoke(main, ["train", str(BUNDLED_NAMES), "-o", str(tmp_path / "x.npz"), *flag])
    assert result.exit_code == 2
    assert "Traceback" not in result.stderr and flag[0] in result.stderr
    assert not (tmp_path / "x.npz").exists()


@pytest.mark.parametrize("flag", [["--n", "0"], ["--n", "-3"], ["--temperature", "0"], ["--max-len", "0"]])
def test_bad_sample_flags_are_usage_errors(runner, small_checkpoint, flag):
    result = runner.invoke(main, ["sample", "-c", str(small_checkpoint), *flag])
    assert result.exit_code == 2
    assert result.stdout == ""


def test_missing_checkpoint_is_one_clear_line_and_exit_1(runner, tmp_path):
    result = runner.invoke(main, ["sample", "-c", str(tmp_path / "none.npz")])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.strip().startswith("Error: checkpoint") and len(result.stderr.strip().splitlines()) == 1


def test_missing_data_file_is_exit_1_and_writes_no_checkpoint(runner, tmp_path):
    out = tmp_path / "x.npz"
    result = runner.invoke(main, ["train", str(tmp_path / "none.txt"), "-o", str(out)])
    assert result.exit_code == 1
    assert "does not exist" in result.stderr
    assert not out.exists()


def test_eval_reports_nll_bits_and_perplexity(runner, small_checkpoint, tmp_path):
    names = tmp_path / "held.txt"
    names.write_text("Tyrannosaurus\nStegosaurus\n")
    result = runner.invoke(main, ["eval", str(names), "-c", str(small_checkpoint), "--json"])
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["names"] == 2 and report["predictions"] == 14 + 12
    assert report["bits_per_char"] == pytest.approx(report["nll"] / math.log(2))
    assert report["perplexity"] == pytest.approx(math.exp(report["nll"]))


def test_eval_names_an_unknown_character_and_its_line(runner, small_checkpoint, tmp_path):
    names = tmp_path / "odd.txt"
    names.write_text("Rex\nT-rex\n")
    result = runner.invoke(main, ["eval", str(names), "-c", str(small_checkpoint)])
    assert result.exit_code == 1
    assert "line 2" in result.stderr and "'-'" in result.stderr


def test_gradcheck_prints_a_table_and_exits_0(runner):
    result = runner.invoke(main, ["gradcheck", "--layers", "1"])
    assert result.exit_code == 0, result.stdout
    assert "W_hh.0" in result.stdout and "pass" in result.stdout and "FAIL" not in result.stdout


def test_version_and_help_with_examples(runner):
    assert runner.invoke(main, ["--version"]).stdout.strip().endswith(__version__)
    for command in ("train", "sample", "eval", "gradcheck"):
        result = runner.invoke(main, [command, "-h"])
        assert result.exit_code == 0 and "Examples:" in result.stdout and "Exit codes" in result.stdout


def run(command: str, **kwargs):
    return subprocess.run(command, shell=True, executable="/bin/bash", capture_output=True, text=True, timeout=120, **kwargs)


def test_sample_through_a_closed_pipe_ends_quietly(small_checkpoint):
    result = run(f"set -o pipefail; {sys.executable} -m dinogen sample --n 50000 -c {small_checkpoint} | head -n 2")
    assert result.returncode == 0
    assert len(result.stdout.splitlines()) == 2
    assert result.stderr == ""


def test_python_m_dinogen_help_runs():
    result = run(f"{sys.executable} -m dinogen --help")
    assert result.returncode == 0 and "sample" in result.stdout


def test_bad_checkpoint_in_a_real_process_has_no_traceback(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"\x00garbage")
    result = run(f"{sys.executable} -m dinogen sample -c {bad}")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and result.stderr.startswith("Error:")


def test_train_help_states_the_real_defaults():
    import dataclasses
    import re

    from dinogen.cli import train
    from dinogen.train import TrainConfig

    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    checked = 0
    for param in train.params:
        stated = re.search(r"\(default ([^,)]+)", param.help or "")
        if param.name in defaults and stated:
            value = stated.group(1).split()[0]
            expected = defaults[param.name]
            assert value == str(expected) or float(value) == float(expected), param.name
            checked += 1
    assert checked >= 15

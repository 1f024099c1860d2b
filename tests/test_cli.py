"""The command line through CliRunner, and a few real processes through pipes."""

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import click
import pytest
from click.testing import CliRunner

from dinogen import __version__, checkpoint
from dinogen.cli import main

from conftest import BUNDLED_NAMES, TINY


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
    first, second = runner.invoke(main, args), runner.invoke(main, args)
    assert first.exit_code == second.exit_code == 0
    assert first.stdout == second.stdout and len(first.stdout.splitlines()) == 20


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


@pytest.mark.parametrize("make, message", [
    (lambda path: path.mkdir(), "dinogen.npz is a folder"),
    (lambda path: path.symlink_to("gone.npz"), "dinogen.npz is a symbolic link to gone.npz, which does not exist"),
])
def test_a_dinogen_npz_that_is_not_a_file_is_said_not_passed_over_for_the_bundled_model(runner, tmp_path,
                                                                                       monkeypatch, make, message):
    make(tmp_path / "dinogen.npz")
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(main, ["sample", "--n", "1"])
    assert result.exit_code == 1 and result.stdout == ""
    assert message in result.stderr


def test_a_fifo_at_dinogen_npz_is_refused_not_waited_on(runner, tmp_path, monkeypatch):
    os.mkfifo(tmp_path / "dinogen.npz")
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(main, ["sample", "--n", "1"])
    assert result.exit_code == 1 and "is not a regular file" in result.stderr


def test_info_of_an_empty_checkpoint_path_is_refused_not_the_bundled_model(runner):
    result = runner.invoke(main, ["info", "-c", ""])
    assert result.exit_code == 1 and result.stdout == ""
    assert "is a folder" in result.stderr


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


def test_a_file_written_over_the_checkpoint_during_training_is_kept_and_the_run_moves(runner, tmp_path, monkeypatch):
    out, real_save = tmp_path / "y.npz", checkpoint.save

    def save_after_a_user_wrote_there(path, ckpt):
        if Path(path) == out and out.is_file() and checkpoint.is_sealed(out):  # from the second save on
            out.write_text("notes\n")
        real_save(path, ckpt)

    monkeypatch.setattr(checkpoint, "save", save_after_a_user_wrote_there)
    result = runner.invoke(main, ["train", str(BUNDLED_NAMES), "-o", str(out), "--steps", "30", "--hidden", "8",
                                  "--eval-every", "10"])
    assert result.exit_code == 0, result.stderr
    assert out.read_text() == "notes\n"
    rescue = tmp_path / "y.rescued.npz"
    assert f"the run goes on in {rescue}" in result.stderr and f"checkpoint: {rescue}" in result.stderr
    assert checkpoint.load(rescue).meta["step"] == 30


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


def test_gradcheck_refuses_a_negative_seed_as_a_usage_error(runner):
    result = runner.invoke(main, ["gradcheck", "--seed", "-1"])
    assert result.exit_code == 2 and "--seed" in result.stderr


@pytest.mark.parametrize("flag", [["--n", "0"], ["--n", "-3"], ["--temperature", "0"], ["--max-len", "0"],
                                  ["--temperature", "nan"], ["--temperature", "inf"], ["--top-p", "nan"]])
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
    for command in ("train", "sample", "eval", "gradcheck", "score", "info"):
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


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
@pytest.mark.parametrize("command", ["sample --n 5 -c", "score Tyrannosaurus -c", "info"])
def test_results_that_cannot_be_written_are_one_sentence_and_exit_1(small_checkpoint, command):
    result = run(f"{sys.executable} -m dinogen {command} {small_checkpoint} > /dev/full")
    assert result.returncode == 1
    assert result.stderr == "Error: cannot write the results: No space left on device.\n"


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
@pytest.mark.parametrize("option", ["--version", "--help", "sample --help", "gradcheck --help"])
def test_help_and_version_that_cannot_write_are_one_sentence_and_exit_1(option):
    result = run(f"{sys.executable} -m dinogen {option} > /dev/full")
    assert result.returncode == 1
    assert result.stderr == "Error: cannot write the results: No space left on device.\n"


@pytest.mark.parametrize("command", [["info"], ["gradcheck", "--cell", "rnn", "--layers", "1"], ["--version"],
                                     ["--help"], ["sample", "--help"]])
def test_a_pipe_closed_before_a_table_or_the_version_is_written_ends_quietly_with_0(command):
    process = subprocess.Popen([sys.executable, "-m", "dinogen", *command], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    process.stdout.close()  # before the process can start up and write: its first write finds no reader
    stderr = process.stderr.read()
    assert process.wait(timeout=120) == 0 and stderr == b""


@pytest.mark.parametrize("command, message", [
    ("sample --n 2 >&-", "standard output is closed"),
    ("score <&-", "standard input is closed"),
])
def test_a_closed_stdin_or_stdout_is_one_sentence_and_exit_1(small_checkpoint, command, message):
    verb, rest = command.split(" ", 1)
    result = run(f"{sys.executable} -m dinogen {verb} -c {small_checkpoint} {rest}")
    assert result.returncode == 1 and message in result.stderr and "Traceback" not in result.stderr


def with_stderr_reader_gone(args: list[str], stdin: bytes = b""):
    """Run dinogen with stderr a pipe whose reader closed before it started: every write there fails."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run([sys.executable, "-m", "dinogen", *args], input=stdin, stdout=subprocess.PIPE,
                              stderr=write_end, timeout=120)
    finally:
        os.close(write_end)


def test_training_whose_stderr_reader_has_gone_still_writes_its_checkpoint(tmp_path):
    names = tmp_path / "names.txt"
    names.write_text("Anna\nBert\n" + "C" * 100 + "\nDora\n")  # the long name is warned about, first of all
    result = with_stderr_reader_gone(["train", str(names), "--steps", "3", "--hidden", "8", "-o", str(tmp_path / "m.npz")])
    assert result.returncode == 0
    assert (tmp_path / "m.npz").is_file()


def test_scores_whose_stderr_reader_has_gone_are_still_written_and_the_skip_still_exits_1(small_checkpoint):
    result = with_stderr_reader_gone(["score", "-c", str(small_checkpoint)], stdin=b"Rex\nZ#rg\nAnna\n")
    assert result.returncode == 1
    assert [line.split(b"\t")[0] for line in result.stdout.splitlines()] == [b"Rex", b"Anna"]


def test_the_command_line_leaves_sys_stderr_as_it_found_it():
    before = sys.stderr
    with pytest.raises(SystemExit):
        main(["--version"])
    assert sys.stderr is before


def test_with_stderr_closed_a_checkpoint_never_takes_its_descriptor(tmp_path):
    script = ("import os, sys; from dinogen.diagnostics import guarded_stderr\n"
              "with guarded_stderr():\n"
              "    fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT)\n"
              "print(fd)")
    result = run(f"{sys.executable} -c '{script}' {tmp_path / 'x'} 2>&-")
    assert result.returncode == 0 and int(result.stdout) > 2


@pytest.mark.parametrize("command, code", [("sample -c nothere.npz", 1), ("sample --n 0", 2)])
def test_with_stderr_closed_an_error_never_reaches_stdout(command, code):
    result = run(f"{sys.executable} -m dinogen {command} 2>&-")
    assert result.returncode == code
    assert result.stdout == ""


def test_train_json_with_stdout_closed_is_refused_before_training(tmp_path):
    out = tmp_path / "m.npz"
    result = run(f"{sys.executable} -m dinogen train {BUNDLED_NAMES} --steps 3 --hidden 8 --json -o {out} >&-")
    assert result.returncode == 1 and "standard output is closed" in result.stderr
    assert not out.exists()


@pytest.mark.parametrize("command", ["info {long}.npz", "eval {long}.txt", "train {long}.txt", "train -o {long}.npz"])
def test_a_file_name_too_long_is_an_input_error_not_a_write_error(runner, command):
    result = runner.invoke(main, command.format(long="a" * 300).split())
    assert result.exit_code == (2 if "-o" in command else 1)  # a bad --out is a usage error
    assert "File name too long" in result.stderr and "cannot write the results" not in result.stderr


def test_names_the_output_encoding_cannot_hold_are_one_sentence_and_exit_1(tmp_path):
    names = tmp_path / "accents.txt"
    names.write_text("Zoë\nJosé\nAnaïs\nRenée\nChloé\nBjörn\n", encoding="utf-8")
    ckpt = tmp_path / "accents.npz"
    assert run(f"{sys.executable} -m dinogen train {names} -o {ckpt} --steps 5 --hidden 8 -q").returncode == 0
    result = run(f"{sys.executable} -m dinogen score Zoë -c {ckpt}", env=dict(os.environ, PYTHONIOENCODING="ascii"))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and "PYTHONIOENCODING=utf-8" in result.stderr


# sample: steering, constraints, JSON, report


def lines_of(result):
    return result.stdout.splitlines()


def test_sample_prefix_names_continue_it_and_json_lines_carry_scores(runner, small_checkpoint):
    result = runner.invoke(main, ["sample", "-c", str(small_checkpoint), "--n", "8", "--prefix", "Tyr", "--json"])
    assert result.exit_code == 0, result.stderr
    records = [json.loads(line) for line in lines_of(result)]
    assert len(records) == 8 and all(r.keys() >= {"name", "logprob", "nll", "novel"} for r in records)
    for r in records:
        assert r["name"].startswith("Tyr") and r["logprob"] < 0 and isinstance(r["novel"], bool)
        assert r["nll"] == pytest.approx(-r["logprob"] / (len(r["name"]) + 1))


@pytest.mark.parametrize("flags, holds", [
    (["--suffix", "saurus"], lambda name: name.endswith("saurus")),
    (["--contains", "ra"], lambda name: "ra" in name),
    (["--min-len", "9", "--max-len", "11"], lambda name: 9 <= len(name) <= 11),
    (["--prefix", "S", "--suffix", "s", "--max-len", "9"], lambda name: name[0] + name[-1] == "Ss" and len(name) <= 9),
])
def test_sample_constraints_hold_for_every_printed_name(runner, small_checkpoint, flags, holds):
    result = runner.invoke(main, ["sample", "-c", str(small_checkpoint), "--n", "40", "--seed", "1", *flags])
    assert result.exit_code == 0, result.stderr
    assert len(lines_of(result)) == 40 and all(holds(name) for name in lines_of(result))


def test_sample_novel_never_prints_a_training_name(runner, parrot_checkpoint, parrot_trainer):
    result = runner.invoke(main, ["sample", "-c", str(parrot_checkpoint), "--n", "10", "--novel"])
    assert result.exit_code == 0, result.stderr
    assert len(lines_of(result)) == 10 and not set(lines_of(result)) & set(parrot_trainer.names.names)


def test_sample_unique_prints_no_name_twice(runner, parrot_checkpoint):
    result = runner.invoke(main, ["sample", "-c", str(parrot_checkpoint), "--n", "12", "--unique"])
    assert result.exit_code == 0, result.stderr
    assert len(lines_of(result)) == len(set(lines_of(result))) == 12


def test_sample_top_k_1_repeats_the_greedy_name(runner, small_checkpoint):
    result = runner.invoke(main, ["sample", "-c", str(small_checkpoint), "--n", "5", "--top-k", "1"])
    assert result.exit_code == 0 and len(set(lines_of(result))) == 1


def test_sample_unmet_constraints_print_the_names_found_then_fail(runner, small_checkpoint):
    result = runner.invoke(main, ["sample", "-c", str(small_checkpoint), "--n", "3", "--top-k", "1", "--unique",
                                  "--max-attempts", "300"])
    assert result.exit_code == 1
    assert len(lines_of(result)) == 1
    assert result.stderr.startswith("Error: only 1 of 3 names") and len(result.stderr.strip().splitlines()) == 1


def without_training_names(path, tmp_path):
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files if not k.startswith("data/")}
    checkpoint.write_arrays(tmp_path / "old.npz", arrays)
    return tmp_path / "old.npz"


def test_sample_novel_with_an_old_checkpoint_says_why_it_cannot(runner, small_checkpoint, tmp_path):
    old = without_training_names(small_checkpoint, tmp_path)
    assert runner.invoke(main, ["sample", "-c", str(old), "--n", "3"]).exit_code == 0
    result = runner.invoke(main, ["sample", "-c", str(old), "--novel"])
    assert result.exit_code == 1 and result.stdout == ""
    assert "does not store the names it was trained on" in result.stderr


def test_sample_report_is_a_table_on_stderr(runner, small_checkpoint):
    result = runner.invoke(main, ["sample", "-c", str(small_checkpoint), "--n", "300", "--report"])
    assert result.exit_code == 0
    assert len(lines_of(result)) == 300
    for row in ("300 sampled names", "unique", "novel", "mean length", "ends in -"):
        assert row in result.stderr


@pytest.mark.parametrize("flag", [["--top-p", "1.5"], ["--top-p", "0"], ["--top-k", "0"], ["--seed", "-1"],
                                  ["--min-len", "0"], ["--max-len", "5000"], ["--max-attempts", "0"],
                                  ["--min-len", "5", "--max-len", "4"], ["--prefix", "Tyrannosaurus", "--max-len", "5"],
                                  ["--prefix", "T#"], ["--suffix", "é"], ["--contains", "_"]])
def test_bad_steering_flags_are_usage_errors_in_one_sentence(runner, small_checkpoint, flag):
    result = runner.invoke(main, ["sample", "-c", str(small_checkpoint), *flag])
    assert result.exit_code == 2
    assert result.stdout == "" and "Traceback" not in result.stderr
    assert len([line for line in result.stderr.splitlines() if line.startswith("Error:")]) == 1


def test_a_prefix_with_an_unseen_character_names_it(runner, small_checkpoint):
    result = runner.invoke(main, ["sample", "-c", str(small_checkpoint), "--prefix", "T#"])
    assert result.exit_code == 2
    assert "the prefix 'T#' has the character '#' that the model never saw" in result.stderr


def test_sample_seed_reproduces_names_with_constraints(runner, small_checkpoint):
    args = ["sample", "--n", "30", "--seed", "3", "-c", str(small_checkpoint), "--suffix", "us", "--unique", "--top-p",
            "0.9", "--json"]
    first, second = runner.invoke(main, args), runner.invoke(main, args)
    assert first.exit_code == second.exit_code == 0 and first.stdout == second.stdout


# score


def test_score_of_a_file_name_points_to_scoring_its_names(runner, small_checkpoint, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("names.txt").write_text("Rex\n")
    result = runner.invoke(main, ["score", "names.txt", "-c", str(small_checkpoint)])
    assert result.exit_code == 1  # "names.txt" was scored as a name, and it has characters the model never saw
    assert "dinogen score < names.txt" in result.stderr


def test_score_prints_name_nll_logprob_and_novelty_separated_by_tabs(runner, small_checkpoint, small_trainer):
    known = small_trainer.names.names[0]
    result = runner.invoke(main, ["score", "-c", str(small_checkpoint), known, "Zorgblat"])
    assert result.exit_code == 0 and result.stderr == ""
    rows = [line.split("\t") for line in lines_of(result)]
    assert [row[0] for row in rows] == [known, "Zorgblat"]
    assert [row[3] for row in rows] == ["known", "novel"]
    for name, nll, logprob, _ in rows:
        assert float(nll) == pytest.approx(-float(logprob) / (len(name) + 1), abs=1e-3)


def test_score_reads_one_name_per_line_from_stdin_when_given_none(runner, small_checkpoint):
    result = runner.invoke(main, ["score", "-c", str(small_checkpoint), "--json"], input="Rex\n\nStegosaurus\n")
    assert result.exit_code == 0
    assert [json.loads(line)["name"] for line in lines_of(result)] == ["Rex", "Stegosaurus"]


def test_score_of_a_name_equals_eval_of_a_file_holding_only_it(runner, small_checkpoint, tmp_path):
    names = ["Tyrannosaurus", "Rex", "Brachiosaurus"]
    scored = runner.invoke(main, ["score", "-c", str(small_checkpoint), "--json", *names])
    assert scored.exit_code == 0 and len(lines_of(scored)) == len(names)
    for name, line in zip(names, lines_of(scored)):
        (tmp_path / "one.txt").write_text(name + "\n")
        evaluated = json.loads(runner.invoke(main, ["eval", str(tmp_path / "one.txt"), "-c", str(small_checkpoint),
                                                    "--json"]).stdout)
        assert json.loads(line)["nll"] == pytest.approx(evaluated["nll"], rel=1e-6)


def test_sampled_json_logprob_is_what_score_gives(runner, small_checkpoint):
    sampled = [json.loads(line) for line in lines_of(runner.invoke(
        main, ["sample", "-c", str(small_checkpoint), "--n", "5", "--json", "--temperature", "1.5"]))]
    scored = runner.invoke(main, ["score", "-c", str(small_checkpoint), "--json"],
                           input="".join(r["name"] + "\n" for r in sampled))
    assert scored.exit_code == 0 and len(sampled) == len(lines_of(scored)) == 5
    for s, r in zip(sampled, map(json.loads, lines_of(scored))):
        assert s["logprob"] == pytest.approx(r["logprob"], rel=1e-4)


def test_score_skips_names_with_unseen_characters_and_exits_1(runner, small_checkpoint):
    result = runner.invoke(main, ["score", "-c", str(small_checkpoint), "Rex", "T-rex", "Stegosaurus"])
    assert result.exit_code == 1
    assert [line.split("\t")[0] for line in lines_of(result)] == ["Rex", "Stegosaurus"]
    assert "skipped 'T-rex': the model never saw the character '-'" in result.stderr
    assert "Error: 1 of 3 names were skipped" in result.stderr


@pytest.mark.parametrize("argument, flags, said", [
    ("", [], "skipped argument 2: it is empty"),
    ("a" * 30_000, [], "skipped argument 2: it is longer than 1,000 characters"),
    ("Tyrannosaurus", ["--max-name-length", "5"], "skipped argument 2: it is longer than 5 characters"),
])
def test_score_refuses_an_argument_as_it_refuses_a_line_of_stdin(runner, small_checkpoint, argument, flags, said):
    result = runner.invoke(main, ["score", "-c", str(small_checkpoint), *flags, "Rex", argument, "Anna"])
    assert result.exit_code == 1
    assert [line.split("\t")[0] for line in lines_of(result)] == ["Rex", "Anna"]
    assert said in result.stderr


def test_score_says_an_argument_that_is_not_text_in_the_locale_s_encoding(small_checkpoint):
    result = subprocess.run([sys.executable.encode(), b"-m", b"dinogen", b"score", b"-c", bytes(small_checkpoint),
                             b"\xff\xfeRex"], capture_output=True, text=True, timeout=120,
                            env=dict(os.environ, PYTHONUTF8="1"))
    assert result.returncode == 1 and result.stdout == ""
    assert "skipped argument 1: it is not valid utf-8 text" in result.stderr


def test_score_without_stored_training_names_leaves_novelty_out(runner, small_checkpoint, tmp_path):
    old = without_training_names(small_checkpoint, tmp_path)
    result = runner.invoke(main, ["score", "-c", str(old), "Rex"])
    assert result.exit_code == 0 and len(result.stdout.strip().split("\t")) == 3
    assert json.loads(runner.invoke(main, ["score", "-c", str(old), "Rex", "--json"]).stdout)["novel"] is None


# info


def test_info_shows_a_table_of_the_checkpoint(runner, small_checkpoint):
    result = runner.invoke(main, ["info", str(small_checkpoint)])
    assert result.exit_code == 0 and result.stderr == ""
    for text in ("dinogen-checkpoint version 1", "rnn, 1 layer of 32 hidden units", "parameters", "1,424 names",
                 "300 steps", "best validation loss", "validation loss", "▁"):
        assert text in result.stdout


def test_info_shows_paths_and_characters_as_they_are_not_as_markup(runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # short relative paths, so no table cell wraps
    Path("a[", "b]").mkdir(parents=True)
    Path("a[", "b]", "[bold]n.txt").write_text("[Rex]\n[Anna]\n", encoding="utf-8")  # "[/b]", "[bold]": rich markup
    assert runner.invoke(main, ["train", "a[/b]/[bold]n.txt", "-o", "m[i].npz", "--steps", "3", "--hidden", "8",
                                "-q"]).exit_code == 0
    result = runner.invoke(main, ["info", "m[i].npz"])
    assert result.exit_code == 0, result.stderr
    for text in ("m[i].npz", "a[/b]/[bold]n.txt: 2 names", "AR[]aenx"):
        assert text in result.stdout


def test_info_takes_the_checkpoint_as_an_argument_or_as_c_like_the_other_commands(runner, small_checkpoint):
    as_argument = runner.invoke(main, ["info", str(small_checkpoint), "--json"])
    as_option = runner.invoke(main, ["info", "-c", str(small_checkpoint), "--json"])
    assert as_argument.exit_code == as_option.exit_code == 0 and as_argument.stdout == as_option.stdout


def test_info_json_prints_the_metadata(runner, small_checkpoint):
    result = runner.invoke(main, ["info", str(small_checkpoint), "--json"])
    assert result.exit_code == 0
    meta = json.loads(result.stdout)
    assert meta["format_version"] == 1 and meta["model"]["hidden"] == 32 and meta["data"]["names"] == 1424
    assert meta["parameters"] > 0 and meta["training_names_stored"] is True
    assert len(meta["history"]["val"]) == 3


@pytest.mark.parametrize("command", [["info"], ["score", "Rex", "-c"], ["sample", "-c"], ["eval", "names.txt", "-c"]])
def test_a_missing_checkpoint_is_one_sentence_and_exit_1(runner, tmp_path, monkeypatch, command):
    (tmp_path / "names.txt").write_text("Rex\n")
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(main, [*command, "none.npz"])
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.startswith("Error: checkpoint none.npz does not exist;")
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_an_unreadable_checkpoint_is_one_sentence_and_exit_1(runner, small_checkpoint, tmp_path):
    locked = tmp_path / "locked.npz"
    locked.write_bytes(small_checkpoint.read_bytes())
    locked.chmod(0)
    result = runner.invoke(main, ["info", str(locked)])
    assert result.exit_code == 1 and "permission denied" in result.stderr


# colours


@pytest.mark.parametrize("command", [["info"], ["sample", "--report", "-c"], ["gradcheck", "--cell", "rnn", "--layers", "1"]],
                         ids=["info", "sample-report", "gradcheck"])
def test_no_color_means_no_escape_codes_even_when_colour_is_forced(runner, small_checkpoint, command):
    args = [*command, str(small_checkpoint)] if command[0] != "gradcheck" else command
    forced = runner.invoke(main, args, env={"FORCE_COLOR": "1", "NO_COLOR": None})
    assert "\x1b[" in forced.stdout + forced.stderr  # rich styles when it believes it is on a terminal
    plain = runner.invoke(main, args, env={"FORCE_COLOR": "1", "NO_COLOR": "1"})
    assert plain.exit_code == 0 and "\x1b" not in plain.stdout + plain.stderr


# real processes: pipes and terminals


def test_a_huge_sample_into_head_returns_at_once_and_quietly(small_checkpoint):
    started = time.perf_counter()
    result = run(f"set -o pipefail; {sys.executable} -m dinogen sample --n 10000000 -c {small_checkpoint} | head -n 3")
    assert result.returncode == 0 and result.stderr == ""
    assert len(result.stdout.splitlines()) == 3
    assert time.perf_counter() - started < 20  # all ten million would take minutes


def test_json_lines_into_head_end_quietly(small_checkpoint):
    result = run(f"set -o pipefail; {sys.executable} -m dinogen sample --n 100000 --json --novel "
                 f"-c {small_checkpoint} | head -n 1")
    assert result.returncode == 0 and result.stderr == ""
    assert json.loads(result.stdout)["novel"] is True


def test_sample_into_score_through_a_pipe(small_checkpoint):
    result = run(f"{sys.executable} -m dinogen sample --n 5 --seed 1 -c {small_checkpoint} | "
                 f"{sys.executable} -m dinogen score -c {small_checkpoint}")
    assert result.returncode == 0 and result.stderr == ""
    assert [len(line.split("\t")) for line in result.stdout.splitlines()] == [4] * 5


def run_in_terminal(args: list[str], env: dict) -> bytes:
    """Everything a command writes to a pseudo-terminal attached to its stdout and stderr."""
    import pty

    leader, follower = pty.openpty()
    process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=follower, stderr=follower, env=env)
    os.close(follower)
    output = b""
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:  # the terminal closes when the process ends
            break
        if not data:
            break
        output += data
    os.close(leader)
    assert process.wait(timeout=60) == 0
    return output


@pytest.mark.parametrize("command", [["info"], ["sample", "--report", "-c"]])
def test_colours_on_a_terminal_but_none_with_no_color(small_checkpoint, command):
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR", "TERM")}
    args = [sys.executable, "-m", "dinogen", *command, str(small_checkpoint)]
    assert b"\x1b[" in run_in_terminal(args, dict(env, TERM="xterm-256color"))
    assert b"\x1b" not in run_in_terminal(args, dict(env, TERM="xterm-256color", NO_COLOR="1"))


def test_train_help_states_the_real_defaults():
    import dataclasses
    import re

    from dinogen.cli import train
    from dinogen.config import TrainConfig

    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    checked = 0
    for param in train.params:
        stated = re.search(r"\(default ([^,)]+)", param.help or "")
        chosen = re.search(r"\(default: ", param.help or "")  # a setting chosen for the data: None in the config
        if param.name in defaults and stated:
            value = stated.group(1).split()[0]
            expected = defaults[param.name]
            assert value == str(expected) or float(value) == float(expected), param.name
            checked += 1
        elif param.name in defaults and chosen:
            assert defaults[param.name] is None, param.name
            checked += 1
    assert checked >= 15


def test_eval_uses_the_best_parameters_unless_latest_is_asked(runner, small_trainer, small_checkpoint, tmp_path):
    held = tmp_path / "held.txt"
    held.write_text("\n".join(small_trainer.names.names[i] for i in small_trainer.val_idx) + "\n")
    best_run = runner.invoke(main, ["eval", str(held), "-c", str(small_checkpoint), "--json"])
    latest_run = runner.invoke(main, ["eval", str(held), "-c", str(small_checkpoint), "--json", "--latest"])
    assert best_run.exit_code == 0 and latest_run.exit_code == 0
    best, latest = json.loads(best_run.stdout), json.loads(latest_run.stdout)
    assert best["nll"] == pytest.approx(small_trainer.best_val[1], rel=1e-5)
    assert latest["nll"] == pytest.approx(small_trainer.loss_on(small_trainer.val_idx), rel=1e-5)


@pytest.fixture(scope="module")
def two_sets(small_checkpoint, tmp_path_factory):
    """The small checkpoint with best parameters that differ from its latest ones."""
    ckpt = checkpoint.load(small_checkpoint)
    ckpt.best = {name: value * np.float32(0.5) for name, value in ckpt.params.items()}
    path = tmp_path_factory.mktemp("two-sets") / "two.npz"
    checkpoint.save(path, ckpt)
    return path


@pytest.mark.parametrize("command", [["score", "Stegosaurus"], ["sample", "--seed", "3", "--n", "3"],
                                     ["eval", str(BUNDLED_NAMES)]])
def test_latest_chooses_the_latest_parameters_over_the_best(runner, two_sets, small_checkpoint, command):
    best = runner.invoke(main, [*command, "-c", str(two_sets)])
    latest = runner.invoke(main, [*command, "-c", str(two_sets), "--latest"])
    as_trained = runner.invoke(main, [*command, "-c", str(small_checkpoint), "--latest"])
    assert best.exit_code == latest.exit_code == as_trained.exit_code == 0
    assert latest.stdout == as_trained.stdout != best.stdout


def test_train_applies_a_preset_and_explicit_flags_override_it(runner, tmp_path):
    out = tmp_path / "course.npz"
    result = runner.invoke(main, ["train", str(BUNDLED_NAMES), "--preset", "course", "--hidden", "20", "--steps", "2",
                                  "-o", str(out), "-q"])
    assert result.exit_code == 0
    train = checkpoint.load(out).meta["train"]
    assert (train["cell"], train["optimizer"], train["batch_size"], train["clip_mode"]) == ("rnn", "sgd", 1, "value")
    assert train["hidden"] == 20 and train["lowercase"] is True


def test_constraints_are_folded_to_a_lowercase_model(runner, tmp_path):
    out = tmp_path / "lower.npz"
    assert runner.invoke(main, ["train", str(BUNDLED_NAMES), "--lowercase", "--steps", "60", "--hidden", "16",
                                "-o", str(out), "-q"]).exit_code == 0
    result = runner.invoke(main, ["sample", "-c", str(out), "--prefix", "TYR", "--contains", "O", "--n", "3",
                                  "--seed", "1"])
    assert result.exit_code == 0, result.stderr
    assert all(name.startswith("tyr") and "o" in name for name in lines_of(result))


def test_sample_report_shows_the_shares_of_the_names_printed(runner, small_checkpoint):
    from dinogen.batch_report import batch_summary

    result = runner.invoke(main, ["sample", "-c", str(small_checkpoint), "--n", "200", "--seed", "4", "--report"])
    assert result.exit_code == 0, result.stderr
    summary = batch_summary(lines_of(result), checkpoint.load(small_checkpoint).training_names())
    rows = {line.split("│")[1].strip(): line.split("│")[2].strip() for line in result.stderr.splitlines()
            if line.count("│") >= 3}
    assert rows["unique"] == f"{summary.unique_share:.1%}" and rows["novel"] == f"{summary.novel_share:.1%}"
    assert rows["mean length"] == f"{summary.mean_length:.1f}"


def test_a_resumed_run_says_how_many_steps_it_trained_and_to_which_step(runner, tmp_path):
    out, tiny = tmp_path / "r.npz", ["--hidden", "8", "-o", str(tmp_path / "r.npz")]
    assert runner.invoke(main, ["train", str(BUNDLED_NAMES), "--steps", "6", *tiny, "-q"]).exit_code == 0
    result = runner.invoke(main, ["train", str(BUNDLED_NAMES), "--resume", str(out), "--steps", "10", *tiny])
    assert result.exit_code == 0, result.stderr
    assert "trained 4 steps (to step 10) in" in result.stderr


def test_the_train_summary_gives_bits_as_nats_over_ln_2(runner, tmp_path):
    result = runner.invoke(main, ["train", str(BUNDLED_NAMES), "--steps", "5", "--hidden", "8",
                                  "-o", str(tmp_path / "b.npz")])
    assert result.exit_code == 0
    line = next(line for line in result.stderr.splitlines() if line.startswith("validation loss"))
    nats, bits = float(line.split()[2]), float(line.split("(")[1].split()[0])
    assert bits == pytest.approx(nats / math.log(2), abs=1e-4)


def test_training_without_validation_keeps_the_last_parameters_and_says_so(runner, tmp_path):
    out = tmp_path / "all.npz"
    result = runner.invoke(main, ["train", str(BUNDLED_NAMES), "--val-fraction", "0", "--steps", "20",
                                  "--hidden", "8", "--embed-dim", "0", "-o", str(out)])
    assert result.exit_code == 0
    assert "none held out" in result.stderr and "the last parameters are kept" in result.stderr
    assert "best validation" not in result.stderr
    ckpt = checkpoint.load(out)
    assert ckpt.best is None and ckpt.meta["step"] == 20


SMALL_LIST = "\n".join(f"{a}{b}{c}" for a in "abcdefgh" for b in "aeiou" for c in "klmnprst") + "\n"  # 320 names
QUICK_MODEL = ["--cell", "rnn", "--hidden", "32", "--embed-dim", "0", "--dropout", "0", "--lr", "3e-2",
               "--batch-size", "16", "--eval-every", "10"]


def test_the_summary_says_why_training_stopped_and_what_was_chosen_for_the_list(runner, tmp_path):
    data = tmp_path / "names.txt"
    data.write_text(SMALL_LIST)
    result = runner.invoke(main, ["train", str(data), *QUICK_MODEL, "--weight-decay", "0", "-o", str(tmp_path / "m.npz")])
    assert result.exit_code == 0, result.stderr
    stopped = next(line for line in result.stderr.splitlines() if line.startswith("stopped"))
    assert "early" in stopped and "no better validation loss in" in stopped and "(--patience)" in stopped
    chosen = next(line for line in result.stderr.splitlines() if line.startswith("chosen for the list"))
    assert "320 names" in chosen and "steps" in chosen and "time limit 600 s" in chosen
    assert "--steps" in chosen and "--patience" in chosen and "--dropout" not in chosen  # given flags are not chosen
    assert result.stderr.count("model                rnn 32, dropout 0,") == 1


def test_preset_best_trains_again_on_every_name_for_the_length_it_found(runner, tmp_path):
    data, out = tmp_path / "names.txt", tmp_path / "best.npz"
    data.write_text(SMALL_LIST)
    result = runner.invoke(main, ["train", str(data), "--preset", "best", *QUICK_MODEL, "-o", str(out), "--json"])
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)  # one summary, of the run that made the checkpoint
    assert summary["val_names"] == 0 and summary["train_names"] == 320
    assert summary["steps"] == round(summary["first_run"]["best_step"] * 320 / 288)
    assert "refit: training again on all 320 names" in result.stderr
    assert checkpoint.load(out).meta["step"] == summary["steps"]


def test_a_run_interrupted_before_its_first_evaluation_says_its_names_are_held_out_not_missing(runner, tmp_path,
                                                                                                 monkeypatch):
    from dinogen import cli

    start = cli._StopSignals.__init__

    def interrupted_at_once(self):
        start(self)
        self.signum = 2  # as if Ctrl-C came before the first step

    monkeypatch.setattr(cli._StopSignals, "__init__", interrupted_at_once)
    result = runner.invoke(main, ["train", str(BUNDLED_NAMES), "--steps", "50", "--hidden", "8",
                                  "--eval-every", "100000", "-o", str(tmp_path / "i.npz")])
    assert result.exit_code == 130
    assert "not evaluated yet (142 names held out)" in result.stderr and "none held out" not in result.stderr


def test_score_dash_reads_names_from_stdin_as_train_and_eval_do(runner, small_checkpoint):
    piped = runner.invoke(main, ["score", "-", "-c", str(small_checkpoint)], input="Rex\nAnna\n")
    plain = runner.invoke(main, ["score", "-c", str(small_checkpoint)], input="Rex\nAnna\n")
    assert piped.exit_code == plain.exit_code == 0
    assert piped.stdout == plain.stdout and [line.split("\t")[0] for line in lines_of(piped)] == ["Rex", "Anna"]


def test_a_dash_among_names_given_as_arguments_is_a_usage_error(runner, small_checkpoint):
    result = runner.invoke(main, ["score", "Rex", "-", "-c", str(small_checkpoint)], input="Anna\n")
    assert result.exit_code == 2 and result.stdout == ""
    assert "`-` (standard input) cannot go with names given as arguments" in result.stderr


def test_score_answers_each_name_typed_at_a_terminal_before_the_next(small_checkpoint):
    import pty
    import select

    leader, follower = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "dinogen", "score", "-c", str(small_checkpoint)],
                               stdin=follower, stdout=follower, stderr=subprocess.DEVNULL)
    os.close(follower)
    try:
        os.write(leader, b"Rex\n")  # one name, and the input stays open
        seen = b""
        while b"Rex\t" not in seen.replace(b"\r", b""):
            ready, _, _ = select.select([leader], [], [], 30)
            assert ready, f"no answer to one typed name within 30 s: {seen!r}"
            seen += os.read(leader, 4096)
        os.write(leader, b"\x04")  # Ctrl-D ends the input
        assert process.wait(timeout=30) == 0
    finally:
        process.kill()
        os.close(leader)


def test_a_terminal_that_reports_no_size_still_gets_a_progress_bar(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    args = [sys.executable, "-m", "dinogen", "train", str(BUNDLED_NAMES), "--hidden", "16", "--embed-dim", "8",
            "--steps", "800", "-o", str(tmp_path / "bar.npz")]
    output = run_in_terminal(args, env)  # a fresh pseudo-terminal is 0 by 0, as in many CI logs
    assert b"/800 [" in output and b"chars/s]" in output  # the bar and every figure beside it fit


def test_training_into_a_pipe_prints_a_progress_line_every_so_often_and_none_when_quiet(runner, tmp_path,
                                                                                        monkeypatch):
    from dinogen import cli

    monkeypatch.setattr(cli._progress_lines, "EVERY_SECONDS", 0.0)  # a line at every step, for the test
    args = ["train", str(BUNDLED_NAMES), "--steps", "5", "--hidden", "8", "-o", str(tmp_path / "p.npz")]
    loud, quiet = runner.invoke(main, args), runner.invoke(main, [*args, "-q"])
    assert loud.exit_code == 0 and quiet.exit_code == 0
    lines = [line for line in loud.stderr.splitlines() if ": step " in line]
    assert len(lines) == 5 and lines[-1].startswith("lstm 8, dropout 0.65: step 5 of 5, smooth loss")
    assert ": step " not in quiet.stderr


def test_counts_agree_with_their_nouns_and_a_resume_names_a_flag_as_given(runner, tmp_path, small_checkpoint):
    one = tmp_path / "one.txt"
    one.write_text("Rex\n")
    evaluated = runner.invoke(main, ["eval", str(one), "-c", str(small_checkpoint)])
    assert evaluated.exit_code == 0 and "(1 name, 4 predictions)" in evaluated.stdout
    out = tmp_path / "r.npz"
    assert runner.invoke(main, ["train", str(BUNDLED_NAMES), "--steps", "3", "--hidden", "8", "-q", "-o", str(out)]
                         ).exit_code == 0
    result = runner.invoke(main, ["train", str(BUNDLED_NAMES), "--resume", str(out), "--lowercase", "-o", str(out)])
    assert result.exit_code == 2  # a flag that contradicts the run: a usage error, as any bad flag
    assert "--lowercase contradicts the checkpoint, which was trained with no --lowercase" in result.stderr


def test_a_bad_whole_number_says_so_and_names_the_variable_it_came_from(runner, monkeypatch):
    result = runner.invoke(main, ["train", "--steps", "nan"])
    assert result.exit_code == 2 and "'nan' is not a valid whole number" in result.stderr
    monkeypatch.setenv("DINOGEN_THREADS", "abc")
    result = runner.invoke(main, ["sample", "--n", "1"])
    assert result.exit_code == 2 and "DINOGEN_THREADS='abc' is not a whole number at least 1" in result.stderr


def test_info_on_a_pipe_keeps_every_character_of_the_vocabulary_and_the_digest(runner, small_checkpoint):
    ckpt = checkpoint.load(small_checkpoint)
    result = runner.invoke(main, ["info", str(small_checkpoint)])  # CliRunner's stdout is not a terminal
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert any("".join(ckpt.vocab.chars) in line for line in lines)
    assert any(ckpt.meta["data"]["sha256"] in line for line in lines)


@pytest.mark.parametrize("command, name", [("train", "data"), ("train", "out"), ("train", "resume_path"),
                                           ("sample", "ckpt_path"), ("score", "ckpt_path"), ("info", "ckpt_arg"),
                                           ("info", "ckpt_path"), ("eval", "files"), ("classify", "ckpt_path"), ("eval", "ckpt_path")])
def test_every_file_argument_and_option_completes_file_names_in_the_shell(command, name):
    param = next(p for p in main.commands[command].params if p.name == name)
    ctx = click.Context(main.commands[command])
    assert [item.type for item in param.shell_complete(ctx, "na")] == ["file"]


def test_eval_dash_reads_names_from_stdin(runner, small_checkpoint, tmp_path):
    (tmp_path / "two.txt").write_text("Rex\nAnna\n")
    from_stdin = runner.invoke(main, ["eval", "-", "-c", str(small_checkpoint), "--json"], input="Rex\nAnna\n")
    from_file = runner.invoke(main, ["eval", str(tmp_path / "two.txt"), "-c", str(small_checkpoint), "--json"])
    assert from_stdin.exit_code == from_file.exit_code == 0
    assert json.loads(from_stdin.stdout)["nll"] == json.loads(from_file.stdout)["nll"]


def test_a_search_that_finds_nothing_says_how_it_goes_on_stderr(runner, small_checkpoint, monkeypatch):
    from dinogen import cli

    monkeypatch.setattr(cli._SearchNotes, "EVERY_SECONDS", 0.0)
    result = runner.invoke(main, ["sample", "-c", str(small_checkpoint), "--suffix", "qqq", "--max-attempts", "300"])
    assert result.exit_code == 1 and result.stdout == ""
    assert "still searching: 0 of 10 names found in" in result.stderr and "gives up at 300 in all" in result.stderr


def test_score_explain_is_a_plain_table_on_a_pipe_json_per_name_and_shaded_on_a_terminal(runner, small_checkpoint):
    plain = runner.invoke(main, ["score", "--explain", "-c", str(small_checkpoint), "Rex"])
    assert plain.exit_code == 0 and "\x1b" not in plain.stdout
    assert plain.stdout.splitlines()[0].startswith("Rex  logprob ") and "<end>" in plain.stdout
    record = json.loads(runner.invoke(main, ["score", "--explain", "--json", "-c", str(small_checkpoint), "Rex"]).stdout)
    assert [p["char"] for p in record["positions"]] == ["R", "e", "x", ""]
    scored = json.loads(runner.invoke(main, ["score", "--json", "-c", str(small_checkpoint), "Rex"]).stdout)
    assert record["logprob"] == scored["logprob"]
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR", "TERM")}
    args = [sys.executable, "-m", "dinogen", "score", "--explain", "-c", str(small_checkpoint), "Rex"]
    assert b"\x1b[" in run_in_terminal(args, dict(env, TERM="xterm-256color"))
    assert b"\x1b" not in run_in_terminal(args, dict(env, TERM="xterm-256color", NO_COLOR="1"))


@pytest.mark.parametrize("args, code", [(["train", "-o", "-", *TINY], 2), (["sample", "-c", "-"], 1),
                                        (["train", "--resume", "-", "-q"], 1), (["info", "-"], 1)])
def test_a_dash_for_a_checkpoint_is_one_sentence_not_a_file_named_dash(runner, tmp_path, monkeypatch, args, code):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(main, args)
    assert result.exit_code == code
    assert "not to standard output ('-')" in result.stderr or "not from standard input ('-')" in result.stderr
    assert not (tmp_path / "-").exists()


def test_the_summary_gives_the_bars_smoothed_loss_beside_the_training_loss(runner, tmp_path):
    out = tmp_path / "s.npz"
    result = runner.invoke(main, ["train", str(BUNDLED_NAMES), "--steps", "60", "--hidden", "8", "--embed-dim", "4",
                                  "--dropout", "0.3", "-o", str(out)])
    assert result.exit_code == 0
    smoothed = checkpoint.load(out).meta["smooth_loss"]
    assert f"per char (smoothed in the bar, with dropout 0.3: {smoothed:.4f})" in result.stdout + result.stderr

"""Hostile and odd input to `train`: bad files, odd names, impossible flags and outputs we must
not write over. Each gets a clear message and a documented exit code, never a traceback."""

import os
import stat

import pytest
from click.testing import CliRunner

from dinogen import checkpoint
from dinogen.cli import main
from dinogen.config import LONGEST_NAME_LIMIT
from dinogen.data import read_names

from conftest import BUNDLED_NAMES, TINY, train

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
        (b"Rex\n", ["--encoding", "base64"], 2, "not a text encoding"),
        (b"Rex\n", ["--encoding", "rot13"], 2, "not a text encoding"),
        (b"Rex\n", ["--encoding", "undefined"], 2, "not a text encoding"),
        (b"Ann\xffa\n", ["--encoding", "punycode"], 1, "not valid punycode"),
        (b"Bartholomew\nMaximilian\n", ["--max-name-length", "5"], 1, "2 names were skipped for being longer than the maximum name length"),
        (b"Abc\rDef\rG\xffh\r", [], 1, "line 3 is not valid utf-8"),
        (b"Abc\n\\ud800d\n", ["--encoding", "unicode_escape"], 1, "line 2 holds U+D800, which is not a character"),
        (b"Abc\nD\\x00ef\n", ["--encoding", "unicode_escape"], 1, "line 2 holds U+0000"),
        (b"Rex\nAnna\n", ["--encoding", "utf-16"], 1, "is not valid utf-16 text"),
    ],
    ids=["missing", "empty", "blank-lines", "binary", "not-utf8", "nul", "bad-encoding", "binary-codec", "text-to-text-codec", "undefined-codec", "punycode",
         "all-too-long", "cr-line-number", "decoded-surrogate", "decoded-nul", "utf16-without-bom"],
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
    assert "skipped 1 name longer than 64" in result.stderr
    assert checkpoint.load(out).meta["data"]["names"] == 2


def test_max_name_length_is_a_setting(tmp_path):
    result, out = train(tmp_path, b"Anna\nBartholomew\n", *TINY, "--max-name-length", "5")
    assert result.exit_code == 0
    assert checkpoint.load(out).meta["data"]["names"] == 1


@pytest.mark.parametrize(
    "flags", [["--steps", "0"], ["--batch-size", "0"], ["--hidden", "0"], ["--lr", "-1"], ["--val-fraction", "1"],
              ["--dropout", "1"], ["--layers", "4"], ["--cell", "transformer"], ["--preset", "fastest"],
              ["--seed", "-1"], ["--lr", "nan"], ["--dropout", "nan"], ["--max-seconds", "inf"],
              ["--weight-decay", "inf"], ["--clip", "nan"], ["--patience", "3", "--val-fraction", "0"],
              ["--max-name-length", str(2**62)]],
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


def test_a_checkpoint_is_never_written_over_the_data(tmp_path):
    data = tmp_path / "names.txt"
    data.write_bytes(b"Anna\nBert\n")
    result = CliRunner().invoke(main, ["train", str(data), "-o", str(tmp_path / "." / "names.txt"), *TINY])
    assert result.exit_code == 2 and "destroy" in result.stderr
    assert data.read_bytes() == b"Anna\nBert\n"


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


def zip_of_notes(path):
    import zipfile

    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("word/document.xml", "my thesis")


@pytest.mark.parametrize("kind", ["docx", "fifo", "device", "folder", "link-to-checkpoint", "link-to-nothing",
                                  "damaged-checkpoint"])
def test_an_out_that_is_not_a_sealed_checkpoint_is_refused_before_training(tmp_path, kind):
    out = tmp_path / "target"
    ours = tmp_path / "ours.npz"
    if kind == "docx":
        zip_of_notes(out)
    elif kind == "fifo":
        os.mkfifo(out)
    elif kind == "device":
        if not hasattr(os, "makedev") or os.geteuid() != 0:
            pytest.skip("making a device node needs root")
        os.mknod(out, 0o600 | stat.S_IFCHR, os.makedev(1, 3))  # a copy of /dev/null
    elif kind == "folder":
        out.mkdir()
    elif kind in ("link-to-checkpoint", "damaged-checkpoint"):
        assert CliRunner().invoke(main, ["train", str(BUNDLED_NAMES), "-o", str(ours), *TINY]).exit_code == 0
        if kind == "link-to-checkpoint":
            out.symlink_to(ours)
        else:
            damaged = bytearray(ours.read_bytes())
            damaged[len(damaged) // 2] ^= 0xFF  # a byte the digest covers changes; the seal stays
            out.write_bytes(bytes(damaged))
    else:
        out.symlink_to(tmp_path / "nowhere.npz")
    before = out.lstat()
    result = CliRunner().invoke(main, ["train", str(BUNDLED_NAMES), "-o", str(out), *TINY])
    assert result.exit_code == 2 and "Traceback" not in result.stderr
    assert len([line for line in result.stderr.splitlines() if line.startswith("Error")]) == 1
    after = out.lstat()
    assert (after.st_mode, after.st_ino, after.st_size, after.st_mtime_ns) == (
        before.st_mode, before.st_ino, before.st_size, before.st_mtime_ns)


@pytest.mark.parametrize("kind", ["missing", "empty", "sealed-checkpoint"])
def test_an_out_that_loses_nothing_is_written(tmp_path, kind):
    out = tmp_path / "m.npz"
    if kind == "empty":
        out.write_bytes(b"")
    elif kind == "sealed-checkpoint":
        assert CliRunner().invoke(main, ["train", str(BUNDLED_NAMES), "-o", str(out), *TINY]).exit_code == 0
    result = CliRunner().invoke(main, ["train", str(BUNDLED_NAMES), "-o", str(out), *TINY, "--seed", "9"])
    assert result.exit_code == 0, result.stderr
    assert checkpoint.load(out).meta["train"]["seed"] == 9


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-32", "utf-32-le"])
def test_a_file_with_a_utf16_or_utf32_byte_order_mark_is_read_as_such(tmp_path, encoding):
    import codecs

    bom = {"utf-16": b"", "utf-16-be": codecs.BOM_UTF16_BE, "utf-32": b"", "utf-32-le": codecs.BOM_UTF32_LE}[encoding]
    path = tmp_path / "unicode.txt"
    path.write_bytes(bom + "Brontë\nZoë\n".encode(encoding))  # the plain codecs write their own mark
    names = read_names(path)
    assert names.names == ["Brontë", "Zoë"]


@pytest.mark.parametrize("control", ["\x1b[2J", "\x07", "\t", "\x85", "\x7f"])
def test_a_control_character_in_a_name_is_refused_by_its_line(tmp_path, control):
    result, out = train(tmp_path, f"Rex\nAn{control}na\n".encode(), *TINY)
    assert result.exit_code == 1 and "line 2 holds U+" in result.stderr and "not a character of a name" in result.stderr
    assert not out.exists()


def test_score_is_a_filter_in_a_pipe_that_never_ends():
    import subprocess
    import sys

    result = subprocess.run(f"yes abc | {sys.executable} -m dinogen score | head -n 3", shell=True,
                            capture_output=True, text=True, timeout=60)
    assert result.stdout.count("abc\t") == 3 and "Traceback" not in result.stderr


def test_a_megabyte_line_on_stdin_is_skipped_by_its_number_and_the_rest_is_scored(small_checkpoint):
    lines = "Rex\n" + "A" * 1_000_000 + "\nAnna\n"
    result = CliRunner().invoke(main, ["score", "-c", str(small_checkpoint)], input=lines)
    assert result.exit_code == 1
    assert [line.split("\t")[0] for line in result.stdout.splitlines()] == ["Rex", "Anna"]
    assert "skipped line 2: it is longer than 1,000 characters" in result.stderr


@pytest.mark.parametrize("command", ["score", "eval"])
def test_utf16_without_its_byte_order_mark_is_one_sentence_for_stdin_and_files(small_checkpoint, tmp_path, command):
    path = tmp_path / "names.txt"
    path.write_bytes(b"Rex\nAnna\n")
    source = "-" if command == "score" else str(path)  # score reads a file only on stdin
    result = CliRunner().invoke(main, [command, source, "-c", str(small_checkpoint), "--encoding", "utf-16"],
                                input=path.read_bytes())
    assert result.exit_code == 1 and result.stdout == ""
    assert "is not valid utf-16 text" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("command", ["score", "classify", "eval"])
@pytest.mark.parametrize("length", [LONGEST_NAME_LIMIT + 1, 2**62])
def test_a_max_name_length_beyond_the_limit_is_a_usage_error(small_checkpoint, command, length):
    result = CliRunner().invoke(main, [command, "-", "-c", str(small_checkpoint), "--max-name-length", str(length)],
                                input="Rex\n")
    assert result.exit_code == 2 and "--max-name-length" in result.stderr


def test_the_longest_max_name_length_is_taken(small_checkpoint):
    result = CliRunner().invoke(main, ["score", "-", "-c", str(small_checkpoint), "--max-name-length",
                                       str(LONGEST_NAME_LIMIT)], input="Rex\n")
    assert result.exit_code == 0 and result.stdout.startswith("Rex\t")


def test_eval_skips_names_longer_than_its_limit(small_checkpoint, tmp_path):
    path = tmp_path / "long.txt"
    path.write_text("Rex\n" + "A" * 5000 + "\n")
    result = CliRunner().invoke(main, ["eval", str(path), "-c", str(small_checkpoint)])
    assert result.exit_code == 0 and "(1 name, 4 predictions)" in result.stdout
    assert "skipped 1 name longer than 1,000 characters" in result.stderr


def test_a_device_or_an_endless_binary_pipe_is_refused_at_once(tmp_path):
    import subprocess
    import sys

    device = CliRunner().invoke(main, ["train", "/dev/zero", "-o", str(tmp_path / "z.npz")])
    assert device.exit_code == 1 and "is a device, not a file of names" in device.stderr
    with open("/dev/zero", "rb") as zeros:
        piped = subprocess.run([sys.executable, "-m", "dinogen", "train", "-", "-o", str(tmp_path / "z.npz")],
                               stdin=zeros, capture_output=True, text=True, timeout=60)
    assert piped.returncode == 1 and "holds a NUL byte" in piped.stderr and "Traceback" not in piped.stderr


def test_a_line_of_megabytes_on_stdin_is_skipped_and_the_names_after_it_are_read(tmp_path):
    import subprocess
    import sys

    command = (f"head -c 5000000 /dev/urandom | base64 -w 0 | {{ cat; printf '\\nRex\\nAnna\\nBo\\n'; }} | "
               f"{sys.executable} -m dinogen train - --steps 2 --hidden 8 -q -o {tmp_path / 'l.npz'}")
    result = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert checkpoint.load(tmp_path / "l.npz").meta["data"]["names"] == 3


def test_a_path_with_an_escape_sequence_is_shown_written_out_in_the_error(tmp_path):
    folder = tmp_path / "a\x1b[31m\x9bb"
    result = CliRunner().invoke(main, ["sample", "-c", str(folder / "x.npz")])
    assert result.exit_code == 1
    assert "\x1b" not in result.stderr and "\x9b" not in result.stderr and "a\\x1b[31m\\x9bb" in result.stderr

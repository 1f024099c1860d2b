"""Reading names, the vocabulary, encoding and batches."""

import io
import sys

import numpy as np
import pytest

from dinogen.data import (
    BOUNDARY,
    PAD,
    BatchSchedule,
    Vocab,
    encode_names,
    make_batch,
    read_names,
    split_indices,
)
from dinogen.errors import DinogenError


def write(tmp_path, content: bytes):
    path = tmp_path / "names.txt"
    path.write_bytes(content)
    return path


def test_trailing_whitespace_cr_and_blank_lines_are_dropped(tmp_path):
    names = read_names(write(tmp_path, b"Rex  \r\n\r\n   \nAnna\t\r\n"))
    assert names.names == ["Rex", "Anna"]
    assert names.line_numbers == [1, 4]


def test_utf8_bom_is_ignored(tmp_path):
    assert read_names(write(tmp_path, "\ufeffZoe\n".encode("utf-8"))).names == ["Zoe"]


def test_unicode_names_are_code_points_normalised_to_nfc(tmp_path):
    decomposed = "Bronte\u0308\nS\u00e3o Paulo\no'brien\nmary-jane\n"
    names = read_names(write(tmp_path, decomposed.encode("utf-8"))).names
    assert names == ["Bront\u00eb", "S\u00e3o Paulo", "o'brien", "mary-jane"]
    assert len(names[0]) == 6


def test_case_is_kept_unless_lowercase_is_asked(tmp_path):
    path = write(tmp_path, b"Tyrannosaurus\n")
    assert read_names(path).names == ["Tyrannosaurus"]
    assert read_names(path, lowercase=True).names == ["tyrannosaurus"]


def test_names_longer_than_the_limit_are_skipped_and_counted(tmp_path):
    names = read_names(write(tmp_path, b"ab\n" + b"x" * 100 + b"\ncd\n"), max_length=64)
    assert names.names == ["ab", "cd"]
    assert names.skipped_long == 1


def test_bytes_that_are_not_utf8_name_the_line(tmp_path):
    with pytest.raises(DinogenError, match="line 2 is not valid utf-8"):
        read_names(write(tmp_path, b"ok\n\xff\xfe bad\n"))


def test_other_encodings_are_read_when_named(tmp_path):
    path = write(tmp_path, "Bront\u00eb\n".encode("latin-1"))
    assert read_names(path, encoding="latin-1").names == ["Bront\u00eb"]


def test_missing_file_and_folder_are_clear_errors(tmp_path):
    with pytest.raises(DinogenError, match="does not exist"):
        read_names(tmp_path / "nope.txt")
    with pytest.raises(DinogenError, match="is a folder"):
        read_names(tmp_path)


def test_streams_are_read_like_files():
    assert read_names(io.StringIO("a\nb\n")).names == ["a", "b"]


def test_vocab_is_sorted_characters_after_the_boundary():
    vocab = Vocab.from_names(["ba", "ca"])
    assert vocab.chars == ("a", "b", "c")
    assert vocab.size == 4
    assert list(vocab.encode("cab")) == [3, 1, 2]
    assert vocab.decode_rows(np.array([[3, 1, 2, BOUNDARY]])) == ["cab"]


def test_unknown_character_is_named_with_its_line():
    vocab = Vocab.from_names(["abc"])
    with pytest.raises(DinogenError, match=r"line 9 .*'z'"):
        encode_names(["ab", "az"], vocab, line_numbers=[4, 9])


def test_encoding_is_compact_and_round_trips():
    names = ["Ann", "Bo", "Céline"]
    vocab = Vocab.from_names(names)
    data = encode_names(names, vocab)
    assert data.codes.dtype == np.int32
    assert list(data.lengths) == [3, 2, 6]
    assert vocab.decode_names(data.codes, data.offsets) == names
    assert data.predictions() == 3 + 2 + 6 + 3


def test_batch_targets_are_inputs_shifted_one_step_in_time():
    vocab = Vocab.from_names(["abc", "d"])
    data = encode_names(["d", "abc"], vocab)
    batch = make_batch(data, np.array([0, 1]))
    # Longest first: column 0 is "abc", column 1 is "d"; time runs down the rows.
    a, b, c, d = vocab.encode("abcd")
    assert batch.x[:, 0].tolist() == [BOUNDARY, a, b, c]
    assert batch.y[:, 0].tolist() == [a, b, c, BOUNDARY]
    assert batch.x[:2, 1].tolist() == [BOUNDARY, d]
    assert batch.y[:, 1].tolist() == [d, BOUNDARY, PAD, PAD]
    assert (batch.x[1:, 0] == batch.y[:-1, 0]).all()
    assert batch.n_active.tolist() == [2, 2, 1, 1]
    assert batch.n_predictions == 4 + 2
    assert batch.names.tolist() == [1, 0]


def test_split_is_seeded_disjoint_and_complete():
    train, val = split_indices(100, 0.1, seed=5)
    assert len(val) == 10 and len(train) == 90
    assert set(train) | set(val) == set(range(100)) and not set(train) & set(val)
    assert split_indices(100, 0.1, seed=5)[1].tolist() == val.tolist()
    assert split_indices(100, 0.1, seed=6)[1].tolist() != val.tolist()


def test_split_keeps_at_least_one_name_for_training():
    train, val = split_indices(2, 0.9, seed=0)
    assert len(train) == 1 and len(val) == 1


def test_batch_schedule_covers_every_name_once_per_epoch_and_is_stateless():
    lengths = np.random.default_rng(0).integers(1, 12, size=103)
    train_idx = np.arange(103)
    schedule = BatchSchedule(train_idx, lengths, batch_size=10, seed=1)
    epoch = np.concatenate([schedule[k] for k in range(schedule.per_epoch)])
    assert sorted(epoch.tolist()) == list(range(103))
    fresh = BatchSchedule(train_idx, lengths, batch_size=10, seed=1)
    assert fresh[schedule.per_epoch + 3].tolist() == schedule[schedule.per_epoch + 3].tolist()


def test_batches_group_names_of_similar_length():
    lengths = np.random.default_rng(0).integers(1, 30, size=2000)
    schedule = BatchSchedule(np.arange(2000), lengths, batch_size=32, seed=0)
    spread = np.mean([np.ptp(lengths[schedule[k]]) for k in range(schedule.per_epoch)])
    assert spread < 3


def test_a_stream_yields_names_as_they_come_and_refuses_long_or_control_lines_by_number():
    import io

    from dinogen.data import stream_names

    stream = io.StringIO("Rex\n\n" + "x" * 50 + "\nAn\x1bna\r\n  Zoë  \n")
    got = [(line.line, line.name, line.problem) for line in stream_names(stream, max_length=10)]
    assert got[0] == (1, "Rex", None) and got[-1] == (5, "Zoë", None)
    assert got[1] == (3, None, "is longer than 10 characters")
    assert got[2][0] == 4 and got[2][1] is None and "U+001B" in got[2][2]


@pytest.mark.parametrize("codec", ["utf-8", "utf-16", "utf-32", "utf-16-be"])
@pytest.mark.parametrize("block", [1, 2, 3, 7, 64])
def test_a_file_read_block_by_block_gives_the_names_and_lines_the_whole_file_gives(tmp_path, monkeypatch, block,
                                                                                     codec):
    from dinogen import data

    content = "Zoë\r\nAnna\rBert\n\n  Carla  \r\r\nDieter" + "x" * 300 + "\nEmil\r\U0001d504da\r"  # 𝔄: a surrogate pair
    path = tmp_path / "names.txt"
    encoding = "utf-16-be" if codec == "utf-16-be" else "utf-8"  # UTF-16 and UTF-32 by their byte-order mark
    path.write_bytes(content.encode(codec))
    whole = data._parse(content.encode(codec), str(path), encoding, False, 64)
    monkeypatch.setattr(data, "READ_BLOCK", block)  # the blocks cut as bytes (UTF-8)
    monkeypatch.setattr(data, "TEXT_READ", block)  # and decoded (the others): a CR or a surrogate pair across them
    streamed = data.read_names(path, encoding=encoding)
    assert (streamed.names, streamed.line_numbers, streamed.skipped_long) == (
        whole.names, whole.line_numbers, whole.skipped_long)
    assert streamed.names == ["Zoë", "Anna", "Bert", "Carla", "Emil", "\U0001d504da"] and streamed.skipped_long == 1


def test_a_line_far_longer_than_a_name_is_skipped_without_being_held(tmp_path, monkeypatch):
    from dinogen import data

    path = tmp_path / "long.txt"
    path.write_bytes(b"Rex\n" + b"A" * 5_000_000 + b"\nAnna\n")
    monkeypatch.setattr(data, "READ_BLOCK", 1 << 16)
    names = data.read_names(path)
    assert (names.names, names.line_numbers, names.skipped_long) == (["Rex", "Anna"], [1, 3], 1)


@pytest.mark.parametrize("codec", ["utf-16", "utf-32"])
def test_a_long_utf16_or_utf32_line_is_skipped_without_being_held(tmp_path, codec):
    import tracemalloc

    from dinogen import data

    path = tmp_path / "long.txt"
    path.write_bytes(("Rex\n" + "A" * 3_000_000 + "\nAnna\n").encode(codec))
    tracemalloc.start()
    names = data.read_names(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert (names.names, names.line_numbers, names.skipped_long) == (["Rex", "Anna"], [1, 3], 1)
    assert peak < 2_000_000  # bytes: the file is 6 or 12 MB


def test_a_vocabulary_of_thousands_of_characters_makes_evaluation_batches_smaller_not_memory_larger():
    from dinogen.data import EVAL_LOGITS, EVAL_POSITIONS, eval_positions

    assert eval_positions(245) == EVAL_POSITIONS  # the 34,000 cities' vocabulary: batches as ever
    assert eval_positions(20_000) * 20_000 <= EVAL_LOGITS < (eval_positions(20_000) + 1) * 20_000
    assert eval_positions(10**9) == 1


def test_an_evaluation_batch_holds_at_most_its_positions_so_long_names_cost_no_more_memory():
    from dinogen.data import EVAL_POSITIONS, Dataset, iter_eval_batches

    lengths = [3] * 300 + [100] * 200 + [5000] * 2
    offsets = np.r_[0, np.cumsum(lengths)].astype(np.int64)
    data = Dataset(np.ones(offsets[-1], np.int32), offsets)
    batches = list(iter_eval_batches(data, np.arange(len(lengths))))
    assert sorted(np.concatenate([b.names for b in batches]).tolist()) == list(range(len(lengths)))  # each once
    assert all(b.x.size <= EVAL_POSITIONS or b.x.shape[1] == 1 for b in batches)
    assert batches[0].x.shape == (4, 256)  # short names: as many as the batch size allows


class Trickle(io.RawIOBase):
    """A pipe whose writer sends one byte at a time."""

    def __init__(self, data: bytes) -> None:
        super().__init__()
        self.data = data

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        byte, self.data = self.data[:1], self.data[1:]
        buffer[: len(byte)] = byte
        return len(byte)


@pytest.mark.parametrize("codec", ["utf-8", "utf-16", "utf-32"])
def test_a_byte_order_mark_arriving_a_byte_at_a_time_is_still_read_as_one(monkeypatch, codec):
    from dinogen import data

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BufferedReader(Trickle("Rex\nAnna\n".encode(codec)), 1)))
    names = data.read_names("-")
    assert (names.names, names.line_numbers) == (["Rex", "Anna"], [1, 2])


@pytest.mark.parametrize("codec", ["utf-8", "utf-16"])
def test_reading_standard_input_leaves_it_open_for_another_list(monkeypatch, codec):
    from dinogen import data

    stdin = io.TextIOWrapper(io.BytesIO("Rex\nAnna\n".encode(codec)))
    monkeypatch.setattr(sys, "stdin", stdin)
    assert data.read_names("-").names == ["Rex", "Anna"]
    import gc

    gc.collect()  # the readers' wrappers are gone: they must not have closed standard input with them
    assert not stdin.buffer.closed
    assert data.read_names("-").names == []  # read again: empty, not closed

"""Names in, integer arrays out: reading, the vocabulary, encoding and batches.

A name of L characters becomes L + 1 predictions: the model reads the boundary
token and then each character, and must predict each character and finally the
boundary token again (the end of the name). Token 0 is that boundary; the
characters of the vocabulary are tokens 1..V-1.

A whole data set lives in two compact arrays (`codes`, `offsets`), and
batches are cut from them per step, so a million names cost a few megabytes.
"""

from __future__ import annotations

import codecs
import io
import re
import sys
import unicodedata
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Callable, Iterable, Iterator, TextIO

import numpy as np

from dinogen.config import ENCODING, MAX_NAME_LENGTH
from dinogen.errors import CONTROL, DinogenError, plural
from dinogen.files import ZIP_MAGIC, read_bytes

BOUNDARY = 0  # token that starts every name and ends it
PAD = -1  # target at padded positions (no prediction there)
LINE_BREAK = re.compile("\r\n|\r|\n")  # LF, CRLF, or a lone CR
NOT_TEXT = re.compile("[\x00-\x09\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")  # control characters (but the
#   line breaks) and lone surrogates: no character of a name, and printed they would drive the terminal
UNDECODED = re.compile("[\udc80-\udcff]")  # bytes of an argument that did not decode, as Python keeps them
_TEXT_FILE = "give a text file with one name per line"


@dataclass
class NameList:
    """Names read from a file, with where each came from."""

    names: list[str]  # cleaned names, in file order
    line_numbers: list[int]  # 1-based line of each name in the source
    source: str  # file name, or "<stdin>"
    skipped_long: int = 0  # names dropped for being longer than max_length
    labels: list[str] | None = None  # with --categories tsv: each name's category, as its line wrote it
    categories: list[int] | None = None  # each name's category, a position in category_names; None: one list
    category_names: list[str] = field(default_factory=list)  # the categories, in order of first appearance
    long_labels: dict[str, int] = field(default_factory=dict)  # with --categories tsv: the category of each name
    #                                                            skipped_long -> the first line of one
    list_sources: list[str] = field(default_factory=list)  # with a file per category: each category's file

    def source_of(self, i: int) -> str:
        """The file name i was read from: its category's file when each category had one."""
        return self.list_sources[self.categories[i]] if self.list_sources else self.source


def as_name_list(names) -> NameList:
    """names as a NameList: one already, or a list of strings a library caller passes
    (numbered from 1, as lines); DinogenError for anything else."""
    if isinstance(names, NameList):
        return names
    if isinstance(names, (list, tuple)) and all(isinstance(name, str) for name in names):
        return NameList(list(names), list(range(1, len(names) + 1)), "the names given")
    raise DinogenError(f"the names to train on are {type(names).__name__}, not a list of strings or a NameList "
                       "(dinogen.data.read_names gives one).")


def check_name_list(names: NameList) -> None:
    """DinogenError, naming the first problem, for a NameList that a checkpoint could not hold:
    a name that is empty, not text or holding a control character, or categories that are
    not names, are named twice or hold no name. read_names never gives such a list; a
    library caller may build one."""
    for number, name in zip(names.line_numbers, names.names):
        found = isinstance(name, str) and (NOT_TEXT.search(name) or CONTROL.search(name))  # CONTROL: line breaks too
        problem = ("is empty" if not name else "is not text" if not isinstance(name, str)
                   else f"holds U+{ord(found.group()):04X}, which is not a character of a name" if found else None)
        if problem:
            raise DinogenError(f"{names.source} line {number}: the name {_shown_line(str(name))} {problem}.")
    if names.categories is None:
        return
    for label in names.category_names:
        if not isinstance(label, str) or checked_category(label, names.source) != label:
            raise DinogenError(f"{names.source}: the category {label!r} is not written as a category is read "
                               "(NFC, without surrounding spaces).")
    if len(set(names.category_names)) != len(names.category_names):
        raise DinogenError(f"{names.source} names a category twice; give each category once.")
    cats = np.asarray(names.categories, dtype=np.int64)
    if len(cats) and (cats.min() < 0 or cats.max() >= len(names.category_names)):
        raise DinogenError(f"{names.source}: a name's category is not one of its {len(names.category_names)}.")
    counts = np.bincount(cats, minlength=len(names.category_names))
    if not counts.all():
        raise DinogenError(f"{names.source}: the category {names.category_names[int(np.argmin(counts))]!r} holds "
                           "no name; give each category one name or more.")


def clean_name(line: str, lowercase: bool) -> str:
    """The name a line holds: NFC-normalised, stripped, optionally lower-cased."""
    name = unicodedata.normalize("NFC", line.strip())
    return name.lower() if lowercase else name


def read_names(
    source: str | Path | TextIO,
    *,
    lowercase: bool = False,
    encoding: str = ENCODING,
    max_length: int = MAX_NAME_LENGTH,
    tsv: bool = False,
) -> NameList:
    """Read one name per line from a path, from stdin ("-"), or from a text stream.

    Whitespace around each line (including a CR) is stripped and blank lines are
    skipped. A UTF-8 byte-order mark is ignored. Names longer than `max_length`
    characters are skipped and counted. With tsv, each line is a name, a tab and
    its category, and NameList.labels holds the categories.
    """
    if source == "-":
        if sys.stdin is None:  # started with stdin closed (<&-)
            raise DinogenError("standard input is closed, so there are no names to read; give them another way.")
        return _read_lines(sys.stdin.buffer, "<stdin>", encoding, lowercase, max_length, tsv)
    if not isinstance(source, (str, Path)):
        lines = list(source)
        return _clean_lines(lines, getattr(source, "name", "<stream>"), lowercase, max_length, tsv)
    path = Path(source)
    if path.exists() and (path.is_char_device() or path.is_block_device()):
        raise DinogenError(f"{path} is a device, not a file of names; {_TEXT_FILE}.")
    if path.is_fifo():  # `train <(cmd)`: a pipe that may never end, read like standard input
        with open(path, "rb") as pipe:
            return _read_lines(pipe, str(path), encoding, lowercase, max_length, tsv)
    if path.is_file():
        return _read_lines_of_file(path, encoding, lowercase, max_length, tsv)
    raw = read_bytes(path, "names file", "give the path of a text file with one name per line")
    return _parse(raw, str(path), encoding, lowercase, max_length, tsv)


def _splits_on_line_bytes(codec: str) -> bool:
    """Whether a file in codec can be cut into lines at its LF and CR bytes and each line
    decoded alone: UTF-8, Latin-1 and the other ASCII-compatible, stateless codecs."""
    stateful = codec.startswith(("utf-7", "utf_7", "iso2022", "hz", "unicode", "raw-unicode", "punycode", "idna"))
    try:
        return not stateful and "\n\r a".encode(codec) == b"\n\r a"
    except (UnicodeError, LookupError):
        return False


LINE_BREAK_BYTES = re.compile(b"\r\n|\r|\n")


def _read_lines_of_file(path: Path, encoding: str, lowercase: bool, max_length: int, tsv: bool) -> NameList:
    try:
        with open(path, "rb") as file:
            return _read_lines(file, str(path), encoding, lowercase, max_length, tsv)
    except PermissionError:
        raise DinogenError(f"names file {path} cannot be read (permission denied); check its permissions.") from None
    except OSError as exc:
        raise DinogenError(f"names file {path} cannot be read ({exc.strerror}); {_TEXT_FILE}.") from None


def _read_lines(file, source: str, encoding: str, lowercase: bool, max_length: int, tsv: bool) -> NameList:
    """Names read a block at a time from a binary stream (a file, a FIFO, standard input)
    and cut into lines as they come: memory holds the names, never a line longer than a
    name can be. UTF-8 and the other codecs whose line breaks are the bytes LF and CR are
    cut as bytes, and each error names its exact line; UTF-16, UTF-32 and the stateful
    codecs are decoded TEXT_READ bytes at a time and cut as text, and an error names the
    line where the bad bytes' block begins."""
    limit = 4 * max_length + 64 + (4 * MAX_LABEL_LENGTH if tsv else 0)  # bytes: the longest name (and label) in
    #   UTF-8, whitespace and a line break; as characters, four times what a name needs
    start, codec = _read_start(file, encoding, source)
    if _splits_on_line_bytes(codec):
        entries = ((number, *(_name_of_line(raw, number, source, encoding, codec, lowercase, tsv)
                              if raw is not None else (None, None)))
                   for number, raw in _byte_lines(start, file, limit))
    else:
        entries = ((number, *(_entry(line, f"{source} line {number}", lowercase, tsv)
                              if line is not None else (None, None)))
                   for number, line in _text_lines(_as_text(start, file, codec), limit, source))
    return _collect(entries, source, max_length, tsv)


def _collect(entries: Iterator[tuple[int, str | None, str | None]], source: str, max_length: int,
             tsv: bool) -> NameList:
    """The NameList of (line number, name, category) entries: a blank name is skipped, and
    a name that is None (a line too long to hold) or longer than max_length is counted."""
    names, line_numbers, labels, skipped_long, long_labels = [], [], [], 0, {}
    for number, name, label in entries:
        if name == "":
            continue
        if name is None or len(name) > max_length:
            skipped_long += 1
            if label is not None:  # a line too long to hold (name None) was never split into its label
                long_labels.setdefault(label, number)
            continue
        names.append(name)
        line_numbers.append(number)
        labels.append(label)
    return NameList(names, line_numbers, source, skipped_long, labels if tsv else None, long_labels=long_labels)


def _byte_lines(start: bytes, file, limit: int) -> Iterator[tuple[int, bytes | None]]:
    """(line number, the line's bytes without its break) for each line of start + file, cut
    at LF, CRLF or a lone CR; None for a line longer than limit bytes, which is never held
    (unless it holds a NUL byte: then its first bytes, for the caller to refuse as binary)."""
    pending, number, too_long = start, 0, False
    while True:
        block = file.read(READ_BLOCK)
        pending += block
        ends = list(LINE_BREAK_BYTES.finditer(pending))
        if block and ends and ends[-1].group() == b"\r" and ends[-1].end() == len(pending):
            ends.pop()  # a CR at the end of the block: its LF may open the next one
        cut = 0
        for match in ends:
            number += 1
            yield number, None if too_long else pending[cut:match.start()]
            too_long, cut = False, match.end()
        pending = pending[cut:]
        if len(pending) > limit:  # no break within a name's length: skip the rest of this line
            if b"\x00" in pending:  # binary data (/dev/zero), which may never end: stop at it
                yield number + 1, pending
                return
            too_long, pending = True, b""
        if not block:
            if pending or too_long:
                yield number + 1, None if too_long else pending
            return


def _name_of_line(raw: bytes, number: int, source: str, encoding: str, codec: str, lowercase: bool,
                  tsv: bool) -> tuple[str, str | None]:
    """The cleaned name a line's bytes hold (may be empty) and, with tsv, its category;
    DinogenError naming the line otherwise."""
    if b"\x00" in raw:
        raise DinogenError(f"{source} line {number} holds a NUL byte, so it looks like a binary file; {_TEXT_FILE}.")
    try:
        text = raw.decode("utf-8-sig" if codec == "utf-8" and number == 1 else codec)
    except UnicodeError:  # UnicodeDecodeError, or UTF-16/32 without its byte-order mark
        raise DinogenError(f"{source} line {number} is not valid {encoding} text; convert the file to UTF-8 or "
                           "name its encoding with --encoding.") from None
    return _entry(text, f"{source} line {number}", lowercase, tsv)


def _entry(line: str, where: str, lowercase: bool, tsv: bool) -> tuple[str, str | None]:
    """The cleaned name of one line and, with tsv, its category (None without); empty for
    a blank line. DinogenError, starting with where ("names.tsv line 3"), for a name with
    a control character or a line that is not name<TAB>category."""
    label = None
    if tsv and line.strip():
        parts = line.strip(" \r\n").split("\t")
        if len(parts) != 2 or not parts[0].strip() or not parts[1].strip():
            raise DinogenError(f"{where} is not a name, one tab and its category ({_shown_line(line)}); write "
                               "each line as name<TAB>category, or leave out --categories tsv.")
        line, label = parts[0], checked_category(parts[1].strip(), where)
    name = clean_name(line, lowercase)
    problem = _not_text(name)  # inside the name: whitespace around it is stripped first
    if problem:
        raise DinogenError(f"{where} {problem}; {_TEXT_FILE}.")
    return name, label


def _shown_line(line: str) -> str:
    text = line.strip("\r\n").replace("\t", "<TAB>")
    return repr(text if len(text) <= 40 else text[:39] + "…")


MAX_LABEL_LENGTH = 100  # characters in a category's name


def checked_category(label: str, where: str) -> str:
    """A category's name, NFC-normalised, when it is one; DinogenError, starting with where, otherwise."""
    label = unicodedata.normalize("NFC", label.strip())
    found = NOT_TEXT.search(label)
    if not label or found or len(label) > MAX_LABEL_LENGTH:
        why = ("is empty" if not label else f"holds U+{ord(found.group()):04X}" if found
               else f"is longer than {MAX_LABEL_LENGTH} characters")
        raise DinogenError(f"{where}: the category {_shown_line(label)} {why}; a category is a short word "
                           "such as boys or Triassic.")
    return label


def _not_text(name: str) -> str | None:
    """What makes name no name ("holds U+001B, which is not a character of a name"), or None."""
    found = NOT_TEXT.search(name)
    return f"holds U+{ord(found.group()):04X}, which is not a character of a name" if found else None


READ_BLOCK = 1 << 20  # bytes read from a file or a pipe at a time


def _refuse_zip(start: bytes, source: str) -> None:
    if start.startswith(ZIP_MAGIC):  # a zip archive: most likely a checkpoint given where names belong
        raise DinogenError(f"{source} is a zip archive (a dinogen checkpoint?), not a text file of names; "
                           "continue a checkpoint with --resume, or sample from it with -c.")


def _parse(raw: bytes, source: str, encoding: str, lowercase: bool, max_length: int, tsv: bool = False) -> NameList:
    """Decode a whole file at once, so an error can name its exact line.

    Lines end at LF, CRLF or a lone CR (old Mac files), for names and for the
    line numbers of errors alike.
    """
    codec = _codec_of_bom(raw) if text_codec(encoding) == "utf-8" else text_codec(encoding)
    _refuse_zip(raw, source)
    if b"\x00" in raw and not codec.startswith(("utf-16", "utf-32")):  # NUL bytes are part of UTF-16/32 text
        line = _line_at(raw[: raw.index(b"\x00")].decode(codec, errors="replace"))
        raise DinogenError(f"{source} line {line} holds a NUL byte, so it looks like a binary file; {_TEXT_FILE}.")
    try:
        text = raw.decode("utf-8-sig" if codec == "utf-8" else codec)  # a UTF-8 byte-order mark is not a character
    except LookupError:  # a codec that is not for text, such as base64
        raise DinogenError(_not_a_text_encoding(encoding)) from None
    except UnicodeError as exc:
        where = ""
        if isinstance(exc, UnicodeDecodeError):
            where = f" line {_line_at(raw[: exc.start].decode(codec, errors='replace'))}"
        raise DinogenError(
            f"{source}{where} is not valid {codec if codec != text_codec(encoding) else encoding} text; "
            "convert the file to UTF-8 or name its encoding with --encoding."
        ) from None
    return _clean_lines(LINE_BREAK.split(text), source, lowercase, max_length, tsv)


@dataclass
class StreamedLine:
    """One line of a stream of names: its number, and its name or why it has none."""

    line: int  # 1-based
    name: str | None  # the cleaned name; None when refused
    problem: str | None = None  # why it was refused: "is longer than 64 characters", "holds U+001B, ..."
    where: str = "line"  # what `line` counts: the lines of a stream, or the arguments of a command


def stream_names(stream: TextIO, *, lowercase: bool = False, max_length: int = MAX_NAME_LENGTH,
                 source: str = "<stdin>") -> Iterator[StreamedLine]:
    """The names of a text stream, line by line as they arrive, in memory bounded by
    max_length: a longer line is read past in pieces and refused by its number, never
    held whole. Blank lines are skipped; a name with a control character is refused; a
    NUL or bytes that do not decode end the stream with DinogenError, naming the line."""
    limit = 2 * max_length + 64  # the name, whitespace around it and the line break
    for line_number, piece in _text_lines(stream, limit, source):
        if piece is None:
            yield StreamedLine(line_number, None, f"is longer than {max_length:,} characters")
            continue
        name = clean_name(piece, lowercase)
        if not name:
            continue
        problem = _not_text(name)
        if problem:
            yield StreamedLine(line_number, None, problem)
        elif len(name) > max_length:
            yield StreamedLine(line_number, None, f"is longer than {max_length:,} characters")
        else:
            yield StreamedLine(line_number, name)


def argument_names(args: Iterable[str], *, lowercase: bool = False,
                   max_length: int = MAX_NAME_LENGTH) -> Iterator[StreamedLine]:
    """The names given as command-line arguments, numbered from 1, each refused as a line of
    a stream would be; an empty one is refused too, and one whose bytes did not decode in
    the locale's encoding (Python keeps them as U+DC80 to U+DCFF) says so."""
    for number, arg in enumerate(args, start=1):
        name = clean_name(arg, lowercase)
        if UNDECODED.search(arg):
            problem = f"is not valid {sys.getfilesystemencoding()} text"
        elif not name:
            problem = "is empty"
        elif len(name) > max_length:
            problem = f"is longer than {max_length:,} characters"
        else:
            problem = _not_text(name)
        yield StreamedLine(number, None if problem else name, problem, where="argument")


def _text_lines(stream: TextIO, limit: int, source: str) -> Iterator[tuple[int, str | None]]:
    """(line number, the line) for each line of a text stream as it arrives; None for a
    line longer than limit characters, which is read past in pieces and never held."""
    number = 0
    while piece := _read_line(stream, limit, source, number + 1):
        number += 1
        if len(piece) == limit and not piece.endswith("\n"):  # longer than a name can be: skip to its end
            while piece and not piece.endswith("\n"):
                piece = _read_line(stream, 1 << 16, source, number)
            piece = None
        yield number, piece


def open_text_stream(binary, encoding: str, source: str = "<stdin>") -> TextIO:
    """A binary stream (standard input) as text, read as it comes. Its first bytes decide, as
    for a file: a zip is refused, and a UTF-16/32 byte-order mark chooses that encoding."""
    start, codec = _read_start(binary, encoding, source)
    return _as_text(start, binary, codec)


START_BYTES = 4  # what tells a stream's kind: a zip's magic, the longest byte-order mark (UTF-32's)
TEXT_READ = 512  # bytes decoded at a time on the text path, so a decoding error is placed within a few lines


def _read_start(binary, encoding: str, source: str) -> tuple[bytes, str]:
    """The stream's first START_BYTES (fewer at its end), read as they arrive, and its
    codec: a zip is refused, and a UTF-16/32 byte-order mark overrides the default UTF-8."""
    read = getattr(binary, "read1", binary.read)  # what has arrived, so a pipe typed into is answered at once
    start = b""
    while len(start) < START_BYTES and (more := read(START_BYTES - len(start))):
        start += more
    _refuse_zip(start, source)
    codec = text_codec(encoding)
    return start, _codec_of_bom(start) if codec == "utf-8" else codec


class _Rejoined(io.RawIOBase):
    """The start already read from a stream, then the rest of it as it arrives, at most
    TEXT_READ bytes a read; closing it leaves the stream open (standard input may be read again)."""

    def __init__(self, start: bytes, stream) -> None:
        super().__init__()
        self._start, self._read = start, getattr(stream, "read1", stream.read)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        size = min(len(buffer), TEXT_READ)
        data, self._start = (self._start[:size], self._start[size:]) if self._start else (self._read(size), b"")
        buffer[: len(data)] = data
        return len(data)


def _as_text(start: bytes, stream, codec: str) -> TextIO:
    """start + the rest of the binary stream, decoded as it arrives; lines end at LF, CRLF or a lone CR."""
    return io.TextIOWrapper(io.BufferedReader(_Rejoined(start, stream), TEXT_READ),
                            encoding="utf-8-sig" if codec == "utf-8" else codec, errors="strict", newline=None)


def _read_line(stream: TextIO, limit: int, source: str, line: int) -> str:
    """At most limit characters of the stream's next line; DinogenError for bytes that do not
    decode or a NUL (binary data), naming the line."""
    try:
        piece = stream.readline(limit)
    except UnicodeError as exc:  # UnicodeDecodeError, or UTF-16/32 without its byte-order mark
        # the stream's codec first: punycode's error says ascii
        codec = (getattr(stream, "encoding", None) or getattr(exc, "encoding", "")).removesuffix("-sig")
        raise DinogenError(f"{source} line {line} (or the lines just after it) is not valid {codec} text; "
                           "convert it to UTF-8 or name its encoding with --encoding.") from None
    if "\x00" in piece:
        raise DinogenError(f"{source} line {line} holds U+0000 (NUL), so it looks like binary data; {_TEXT_FILE}.")
    return piece


def _codec_of_bom(raw: bytes) -> str:
    """utf-32 or utf-16 for a file that starts with their byte-order mark (whose codecs read
    the mark), else utf-8: a file saved as "Unicode" by an editor reads as it was written."""
    if raw.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        return "utf-32"
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    return "utf-8"


def text_codec(encoding: str) -> str:
    """The canonical name of a codec Python knows ("utf-8", "utf-16", "iso8859-1", ...)."""
    try:
        info = codecs.lookup(encoding)
        if not getattr(info, "_is_text_encoding", True) or info.name == "undefined":  # rot13, base64 and the like:
            raise LookupError(encoding)  # codecs, but not of text; "undefined" fails on every character
        return info.name
    except LookupError:
        raise DinogenError(_not_a_text_encoding(encoding)) from None


def _not_a_text_encoding(encoding: str) -> str:
    return f"'{encoding}' is not a text encoding Python knows; try utf-8 or latin-1."


def _line_at(text_before: str) -> int:
    """The 1-based line on which a position falls, given all the text before it."""
    return len(LINE_BREAK.findall(text_before)) + 1


def _clean_lines(lines: list[str], source: str, lowercase: bool, max_length: int, tsv: bool = False) -> NameList:
    entries = ((number, *_entry(line, f"{source} line {number}", lowercase, tsv))
               for number, line in enumerate(lines, start=1))
    return _collect(entries, source, max_length, tsv)


def read_lists(sources: list[str], categories: str | None = None, **options) -> NameList:
    """The names of `train`'s DATA arguments, with their categories.

    One source: one list, as read_names reads it, or with categories="tsv" a
    name<TAB>category file. Several sources (categories="files", the default for
    them): a category each, named for the file's stem, or `category=path` to name
    it; a path that exists as given is a path even if it holds "=". options go to
    read_names.
    """
    if categories == "tsv":
        if len(sources) != 1:
            raise DinogenError(f"--categories tsv reads one file with a category column, not {len(sources)}; "
                               "give one file, or several without --categories tsv.")
        return labelled_categories(read_names(sources[0], tsv=True, **options))
    if len(sources) == 1 and categories is None and _named_source(sources[0])[0] is None:
        return read_names(sources[0], **options)
    lists = []
    for source in sources:
        category, path = _named_source(source)
        if category is None:
            category = "stdin" if path == "-" else Path(path).stem
        lists.append((category, read_names(path, **options)))
    return merge_categories(lists)


def _named_source(source: str) -> tuple[str | None, str]:
    """("boys", "b.txt") for "boys=b.txt", ("", "b.txt") for "=b.txt" (a name left empty,
    which the category check refuses); (None, source) for a path (one that exists is never split)."""
    category, sep, path = source.partition("=")
    if not sep or not path or Path(source).exists():
        return None, source
    return category, path


@dataclass(frozen=True)
class CategoryTable:
    """The categories of a model: names in the order of W_cat's rows, and their training shares."""

    names: tuple[str, ...]  # K category names
    counts: tuple[int, ...]  # training names of each (both splits)

    @property
    def priors(self) -> np.ndarray:
        """(K,) float64 each category's share of the training names: how often sampling draws it."""
        counts = np.array(self.counts, dtype=np.float64)
        return counts / counts.sum()

    def index(self, name: str) -> int:
        """The row of the category called name, written as categories are stored (NFC, stripped);
        DinogenError naming the categories otherwise."""
        name = unicodedata.normalize("NFC", name.strip())
        if name not in self.names:
            raise DinogenError(f"the model has no category {name!r}; its categories are {', '.join(self.names)}.")
        return self.names.index(name)


def merge_categories(lists: list[tuple[str, NameList]]) -> NameList:
    """One NameList of the names of several, each list a category: (category, names) pairs
    in the order given, as `train boys.txt girls.txt` reads them."""
    seen: dict[str, str] = {}
    lists = [(checked_category(category, names.source), names) for category, names in lists]  # NFC, stripped
    for category, names in lists:
        if category in seen:
            raise DinogenError(f"the category {category!r} is named twice ({seen[category]} and {names.source}); "
                               "give each list its own name with name=path.")
        seen[category] = names.source
        if not names.names:
            too_long = (f" ({plural(names.skipped_long, 'name was', 'names were')} longer than the maximum name "
                        "length)" if names.skipped_long else "")
            raise DinogenError(f"the category {category!r} ({names.source}) holds no names{too_long}; every list "
                               "needs at least one.")
    merged = NameList([], [], " + ".join(names.source for _, names in lists), 0, None, [], [])
    for k, (category, names) in enumerate(lists):
        merged.names += names.names
        merged.line_numbers += names.line_numbers
        merged.skipped_long += names.skipped_long
        merged.categories += [k] * len(names.names)
        merged.category_names.append(category)
        merged.list_sources.append(names.source)
    return merged


def labelled_categories(names: NameList) -> NameList:
    """The NameList of a name<TAB>category file with its labels made categories, numbered in
    order of first appearance; DinogenError when every name of a category was too long to keep."""
    numbers: dict[str, int] = {}
    categories = [numbers.setdefault(label, len(numbers)) for label in names.labels or []]
    lost = [label for label in names.long_labels if label not in numbers]  # every name too long, in file order
    if lost:
        raise DinogenError(f"{names.source}: every name of the category {lost[0]!r} (line {names.long_labels[lost[0]]} "
                           "and on) is longer than the maximum name length, so the category would be lost; raise "
                           "--max-name-length or drop its lines.")
    return replace(names, categories=categories, category_names=list(numbers))


@dataclass(frozen=True)
class Vocab:
    """Characters the model knows; token id = position in `chars` + 1."""

    chars: tuple[str, ...]  # sorted single code points

    @classmethod
    def from_names(cls, names: list[str]) -> "Vocab":
        return cls(tuple(sorted(set("".join(names)))))

    @property
    def size(self) -> int:
        """V: the characters plus the boundary token."""
        return len(self.chars) + 1

    @cached_property
    def _known(self) -> frozenset[str]:
        return frozenset(self.chars)

    def unknown(self, name: str) -> str | None:
        """The first character of `name` the vocabulary lacks, or None."""
        return next((ch for ch in name if ch not in self._known), None)

    def encode(self, name: str) -> np.ndarray:
        """Tokens of one name, without boundaries: (L,) int32."""
        return encode_names([name], self).codes

    def char(self, token: int) -> str:
        """The character of one token (1 to size - 1; 0 is the boundary, which has none)."""
        return self.chars[token - 1]

    def decode_rows(self, tokens: np.ndarray) -> list[str]:
        """Token rows (n, M), boundary-padded, to strings, vectorised over names."""
        table = np.array(("",) + self.chars, dtype="U1")  # token -> character; boundary -> ""
        chars = np.ascontiguousarray(table[tokens])  # (n, M) U1
        return chars.view(f"U{tokens.shape[1]}").ravel().tolist()

    def decode_names(self, codes: np.ndarray, offsets: np.ndarray) -> list[str]:
        """Names stored end to end, name i being codes[offsets[i]:offsets[i + 1]], to strings."""
        points = np.array([ord(ch) for ch in ("\0",) + self.chars], dtype=np.uint32)  # token -> code point
        text = points[codes].tobytes().decode("utf-32-le")
        bounds = offsets.tolist()
        return [text[start:end] for start, end in zip(bounds[:-1], bounds[1:])]


@dataclass
class Dataset:
    """Encoded names: name i is codes[offsets[i]:offsets[i+1]]."""

    codes: np.ndarray  # (C,) int32 character tokens of all names, concatenated
    offsets: np.ndarray  # (N + 1,) int64 start of each name in codes
    categories: np.ndarray | None = None  # (N,) int32 category of each name; None for one list
    lengths: np.ndarray = field(init=False)  # (N,) int64 characters per name

    def __post_init__(self) -> None:
        self.lengths = np.diff(self.offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def predictions(self, idx: np.ndarray | None = None) -> int:
        """Real predictions of the names idx (all by default): L + 1 per name."""
        lengths = self.lengths if idx is None else self.lengths[idx]
        return int(lengths.sum() + len(lengths))


def encode_names(
    names: list[str], vocab: Vocab, line_numbers: list[int] | None = None, source: str | Callable | None = None,
    categories: list[int] | np.ndarray | None = None,
) -> Dataset:
    """Encode names into compact arrays, vectorised over all characters at once;
    categories, when given, is each name's category number.

    Raises DinogenError naming the first character the vocabulary lacks, its line
    and (when given) the file: source, or source(i) for names from several files.
    """
    joined = "".join(names)
    points = np.frombuffer(joined.encode("utf-32-le"), dtype=np.uint32)  # (C,)
    table = np.frombuffer("".join(vocab.chars).encode("utf-32-le"), dtype=np.uint32)  # (V-1,) sorted
    found = np.searchsorted(table, points)
    found_clipped = np.minimum(found, max(len(table) - 1, 0))
    known = (found < len(table)) & (table[found_clipped] == points) if len(table) else np.zeros(len(points), bool)
    offsets = np.zeros(len(names) + 1, dtype=np.int64)
    np.cumsum([len(name) for name in names], out=offsets[1:])
    if not known.all():
        first = int(np.argmin(known))
        i = int(np.searchsorted(offsets, first, side="right") - 1)
        where = f"line {line_numbers[i]}" if line_numbers else f"name {i + 1}"
        where = f"{source(i) if callable(source) else source} {where}" if source else where
        raise DinogenError(
            f"{where} ({names[i]!r}) has the character {chr(points[first])!r} "
            f"(U+{int(points[first]):04X}) that the model never saw in training; remove that name or retrain with it."
        )
    cats = None if categories is None else np.asarray(categories, dtype=np.int32).reshape(len(names))
    return Dataset((found + 1).astype(np.int32), offsets, cats)


@dataclass
class Batch:
    """A padded, time-major batch of names, sorted longest first.

    Letters used for shapes: T time steps (the longest name + 1), B names,
    N real predictions (N <= T*B).
    """

    x: np.ndarray  # (T, B) int32 input tokens; boundary first, 0 in padding
    y: np.ndarray  # (T, B) int32 target tokens; PAD in padding
    n_active: np.ndarray  # (T,) int names still going at step t (a prefix of the batch)
    real: np.ndarray  # (N,) int flat indices into (T*B) of the real predictions
    names: np.ndarray  # (B,) int index of each column's name in the data set
    cats: np.ndarray | None = None  # (B,) int category of each column's name; None for one list

    @property
    def n_predictions(self) -> int:
        return len(self.real)


def make_batch(data: Dataset, idx: np.ndarray) -> Batch:
    """Cut the names idx out of the data set into one padded batch."""
    lengths = data.lengths[idx]
    order = np.argsort(-lengths, kind="stable")
    idx, lengths = np.asarray(idx)[order], lengths[order]
    steps = int(lengths[0]) + 1 if len(lengths) else 1
    t = np.arange(steps)[:, None]  # (T, 1)
    starts = data.offsets[idx][None, :]  # (1, B)
    last = max(len(data.codes) - 1, 0)
    chars = data.codes[np.clip(starts + t, 0, last)] if len(data.codes) else np.zeros((steps, len(idx)), np.int32)
    prev_chars = np.vstack([np.zeros((1, len(idx)), np.int32), chars[:-1]])  # (T, B) char at t - 1
    x = np.where((t >= 1) & (t <= lengths), prev_chars, BOUNDARY).astype(np.int32)
    y = np.where(t < lengths, chars, np.where(t == lengths, BOUNDARY, PAD)).astype(np.int32)
    n_active = (t <= lengths).sum(axis=1)  # (T,)
    real = np.flatnonzero(y.ravel() != PAD)
    cats = None if data.categories is None else data.categories[idx]
    return Batch(x, y, n_active, real, idx, cats)


def split_indices(n: int, val_fraction: float, seed: int,
                  categories: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A seeded split of range(n) into (train, validation) index arrays.

    The validation part holds round(n * val_fraction) names, at least one when the
    fraction is positive and n > 1, and never all of them. With categories (n,),
    the split is stratified: that many names are shared out over the categories
    in proportion to their sizes (largest remainders first, so a category of 100
    among 10,000 names gives 10 at 0.1, never 5 or 15 by chance), each category's
    drawn from its own names, and no category gives all of its names.
    """
    n_val = _held_out(n, val_fraction)
    if categories is None:
        perm = np.random.default_rng([seed, 0x5EED]).permutation(n)
        return np.sort(perm[n_val:]), np.sort(perm[:n_val])
    sizes = np.bincount(categories)
    shares = _shares(n_val, sizes)
    train, val = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    for k in np.flatnonzero(sizes):
        members = np.flatnonzero(categories == k)[np.random.default_rng([seed, 0x5EED, int(k)]).permutation(sizes[k])]
        train.append(members[shares[k]:])
        val.append(members[:shares[k]])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


def _held_out(n: int, val_fraction: float) -> int:
    """round(n * val_fraction), at least one when the fraction is positive and n > 1, never all n."""
    n_val = int(round(n * val_fraction))
    if val_fraction > 0 and n > 1:
        n_val = max(n_val, 1)
    return min(n_val, n - 1) if n > 0 else 0


def _shares(total: int, sizes: np.ndarray) -> np.ndarray:
    """total shared out over groups of these sizes in proportion, by largest remainders
    (ties to the larger group, then the earlier), none taking all of a group's members."""
    quotas = total * sizes / sizes.sum()
    shares = np.minimum(np.floor(quotas).astype(np.int64), np.maximum(sizes - 1, 0))
    order = np.lexsort((np.arange(len(sizes)), -sizes, -(quotas - shares)))  # largest remainder first
    for k in order:
        if shares.sum() >= total:
            break
        if shares[k] < sizes[k] - 1:
            shares[k] += 1
    return shares


def batches_per_epoch(n: int, batch_size: int) -> int:
    return -(-n // batch_size)


POOL = 50  # batches whose names are sorted by length together (bucketing)


def epoch_batches(train_idx: np.ndarray, lengths: np.ndarray, batch_size: int, seed: int, epoch: int) -> list[np.ndarray]:
    """The batches of one epoch, a pure function of (seed, epoch).

    Names are shuffled, sorted by length within pools of POOL batches so that a
    batch holds names of similar length (little padding), and the batches are
    shuffled again. Being stateless, training resumes at any step exactly.
    """
    rng = np.random.default_rng([seed, epoch])
    perm = train_idx[rng.permutation(len(train_idx))]
    batches = []
    pool = batch_size * POOL
    for start in range(0, len(perm), pool):
        chunk = perm[start : start + pool]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    return [batches[j] for j in rng.permutation(len(batches))]


class BatchSchedule:
    """Which names are trained at each step: epoch_batches, cached one epoch at a time."""

    def __init__(self, train_idx: np.ndarray, lengths: np.ndarray, batch_size: int, seed: int) -> None:
        self.train_idx, self.lengths = train_idx, lengths
        self.batch_size, self.seed = batch_size, seed
        self.per_epoch = batches_per_epoch(len(train_idx), batch_size)
        self._epoch, self._batches = -1, []

    def __getitem__(self, step: int) -> np.ndarray:
        """Name indices of the batch trained at `step` (0-based)."""
        epoch, k = divmod(step, self.per_epoch)
        if epoch != self._epoch:
            self._batches = epoch_batches(self.train_idx, self.lengths, self.batch_size, self.seed, epoch)
            self._epoch = epoch
        return self._batches[k]


EVAL_POSITIONS = 8192  # at most this many (T * B) positions in an evaluation batch: 256 names of up to 31
#   characters, fewer of longer ones, so memory follows the model, not the longest name a file holds
EVAL_LOGITS = 1 << 23  # ... and at most this many logits (positions x vocabulary): 32 MB in float32, so that a
#   vocabulary of thousands of characters (Chinese names) does not take gigabytes


def eval_positions(vocab_size: int) -> int:
    """Positions an evaluation batch may hold: EVAL_POSITIONS, fewer when a vocabulary is so
    large that their logits would pass EVAL_LOGITS (from 1,024 characters)."""
    return max(1, min(EVAL_POSITIONS, EVAL_LOGITS // vocab_size))


def iter_eval_batches(data: Dataset, idx: np.ndarray, batch_size: int = 256,
                      max_positions: int = EVAL_POSITIONS) -> Iterator[Batch]:
    """Batches over the names idx for evaluation: sorted by length, no shuffling; each holds
    at most batch_size names and max_positions positions (one name alone may hold more)."""
    idx = np.asarray(idx)
    ordered = idx[np.argsort(data.lengths[idx], kind="stable")]
    steps = data.lengths[ordered] + 1  # (n,) time steps of each name, rising
    start = 0
    while start < len(ordered):
        fits = max_positions // steps[start:start + batch_size]  # names a batch could hold if it ended at each one
        count = int(np.argmax(np.r_[fits < np.arange(1, len(fits) + 1), True]))  # the first that would not fit
        end = start + max(1, count)
        yield make_batch(data, ordered[start:end])
        start = end

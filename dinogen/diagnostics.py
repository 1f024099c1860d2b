"""Standard error carries diagnostics only, so what cannot be written there never stops the work.

Progress, warnings, summaries and error sentences go to stderr. When stderr was
closed at start (`2>&-`), is a pipe whose reader has gone (`2>&1 >/dev/null | true`)
or a full disk, those lines are lost, but the command goes on: its results still
reach stdout, its checkpoint is still written, and its exit code still says how it
went. Without this, the first line that failed would end the command (Python turns
a closed pipe into BrokenPipeError, which the CLI takes for a closed stdout), and
Click would write its error sentences to stdout when stderr is closed.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys


class Diagnostics(io.TextIOBase):
    """A text stream over stderr (or over nothing) that stops writing at its first failure."""

    def __init__(self, stream) -> None:
        self.stream = stream  # the real stderr; None when it was closed at start
        self.lost = stream is None  # True once a write has failed: nothing more is tried

    def write(self, text: str) -> int:
        if not self.lost:
            try:
                self.stream.write(text)
            except OSError:  # the reader gone, a full disk, an I/O error
                self.give_up()
        return len(text)

    def flush(self) -> None:
        if not self.lost:
            try:
                self.stream.flush()
            except OSError:
                self.give_up()

    def give_up(self) -> None:
        """Write nothing more, and point the descriptor at /dev/null, so that what the
        stream still buffers (and the interpreter flushes at exit) fails no more."""
        self.lost = True
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.stream.fileno())
            os.close(devnull)
        except (OSError, ValueError):  # a stream without a descriptor (a test's capture): nothing to point
            pass

    def __getattr__(self, name: str):
        """What else a text stream has (name, line_buffering, ...), from the real one; not its
        binary buffer, whose writes would escape the guard."""
        if name == "buffer" or self.stream is None:
            raise AttributeError(name)
        return getattr(self.stream, name)

    def isatty(self) -> bool:
        return not self.lost and self.stream.isatty()

    def fileno(self) -> int:
        if self.stream is None:
            raise io.UnsupportedOperation("standard error is closed")
        return self.stream.fileno()

    def writable(self) -> bool:
        return True

    @property
    def encoding(self) -> str:
        return getattr(self.stream, "encoding", None) or "utf-8"

    @property
    def errors(self) -> str:
        return getattr(self.stream, "errors", None) or "backslashreplace"


@contextlib.contextmanager
def guarded_stderr():
    """sys.stderr behind a Diagnostics stream while the block runs, then as it was.

    A standard descriptor (0, 1, 2) closed at start is opened on /dev/null first, while
    sys.stdin, sys.stdout and sys.stderr still say they are closed: otherwise the next
    file opened (a checkpoint's temporary file) would take its number, and whatever C
    code writes to standard error would land in it."""
    for fd in (0, 1, 2):
        _fill_if_closed(fd)
    if isinstance(sys.stderr, Diagnostics):
        yield
        return
    previous = sys.stderr
    sys.stderr = Diagnostics(previous)
    try:
        yield
    finally:
        sys.stderr = previous


def _fill_if_closed(fd: int) -> None:
    try:
        os.fstat(fd)
    except OSError:  # closed: give the number to /dev/null
        devnull = os.open(os.devnull, os.O_RDWR)
        if devnull != fd:
            os.dup2(devnull, fd)
            os.close(devnull)

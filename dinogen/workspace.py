"""Arrays reused from one training step to the next.

A training step builds a few dozen arrays of a few hundred kilobytes to a few
megabytes each. Fresh arrays of that size come straight from the operating
system (the C allocator maps them, or trims them back when they are freed), so
every step paid for thousands of page faults on memory it had just given back:
at hidden 128 that was half of the step. A Workspace keeps one flat buffer per
named use and hands out views of its first elements, so once the longest batch
has been seen a step allocates no large array at all.

    ws = Workspace()
    hs = ws.zeros("hs", (T + 1, B, H), np.float32)     # the same memory at every step
    cell_ws = ws.scope("layer0")                       # names of its own: "layer0/hs", ...

An array from a workspace stays valid until its name is asked for again. One
training step (forward, backward, optimizer) asks for each name once, so its
arrays live exactly as long as the step. FRESH never reuses anything and is the
default everywhere, so code that keeps results (scoring, gradcheck, tests) gets
arrays of its own.
"""

from __future__ import annotations

import math

import numpy as np

GROWTH = 1.25  # a buffer that must grow gets this much headroom, so longer batches rarely reallocate


class Workspace:
    """Named, growing buffers handed out as views (reuse=False: fresh arrays every time)."""

    def __init__(self, reuse: bool = True, *, _buffers: dict | None = None, _prefix: str = "") -> None:
        self.reuse = reuse
        self._buffers: dict[str, np.ndarray] = {} if _buffers is None else _buffers
        self._prefix = _prefix

    def empty(self, name: str, shape: tuple[int, ...], dtype) -> np.ndarray:
        """An uninitialised C-contiguous array of this shape, reused under `name`."""
        if not self.reuse:
            return np.empty(shape, dtype=dtype)
        key, size, dtype = self._prefix + name, math.prod(shape), np.dtype(dtype)
        buf = self._buffers.get(key)
        if buf is None or buf.dtype != dtype or buf.size < size:
            buf = np.empty(int(size * GROWTH) + 1, dtype=dtype)
            self._buffers[key] = buf
        return buf[:size].reshape(shape)

    def zeros(self, name: str, shape: tuple[int, ...], dtype) -> np.ndarray:
        """Like empty, filled with zeros."""
        if not self.reuse:
            return np.zeros(shape, dtype=dtype)
        out = self.empty(name, shape, dtype)
        out.fill(0)
        return out

    def scope(self, prefix: str) -> "Workspace":
        """The same storage, with names of its own (one scope per layer, say)."""
        return Workspace(self.reuse, _buffers=self._buffers, _prefix=f"{self._prefix}{prefix}/")

    @property
    def nbytes(self) -> int:
        """Memory held by the buffers."""
        return sum(buf.nbytes for buf in self._buffers.values())


FRESH = Workspace(reuse=False)

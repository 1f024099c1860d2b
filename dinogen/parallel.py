"""Training steps shared by worker processes: data parallelism on one machine.

W processes take part in every step: the trainer's own (process 0) and W - 1
workers forked from it when a run starts, which live until the run ends. Each
takes its share of the step's batch (every W-th name of the batch sorted by
length, so the shares cost about the same), computes the gradient of that share,
and then updates its own slice of the parameters. Validation losses are shared
the same way. Shapes: P parameters in all.

What the processes share lives in anonymous shared mappings made before the
fork: inherited, nameless, and gone with the last process that maps them, so no
segment (nothing in /dev/shm) can be left behind, however a run ends. The
trainer's parameters and the optimizer's state become views of them:

    params  (P,)    float32, every parameter, in model.param_shapes order
    grads   (W, P)  float32, grads[k]: the gradient of share k; after the
                    reduce, grads[0] holds the whole batch's
    sums    (W, 2)  float64, per process: its share's summed NLL, and the
                    sum of squares of its slice of the gradient

A step has three phases. Process 0 starts each by a message on every worker's
pipe, does its own part, and waits for every worker's answer:

    1. gradients  process k: grads[k] = gradient of its share (scaled to the batch's mean)
    2. reduce     process k, on its slice of the P entries: grads[0] = sum over k of
                  grads[k], and its sum of squares
    3. update     process 0 has checked that the loss and the norm are finite; each
                  process clips its slice and applies the optimizer to it

Only the step, the learning rate and the clip factor cross a pipe; no array is
ever pickled. Every process keeps a copy of the optimizer and advances it alike,
so the coefficients of an update are the same everywhere.

How runs relate: without dropout the gradient of a batch is the same for every
W up to float32 summation order. With dropout, share k of step s draws its masks
from the stream (seed, s, 1, k), so runs with different W see different masks:
alike in distribution, different in detail. The same seed and W always give the
same parameters, bit for bit.
"""

from __future__ import annotations

import errno
import mmap
import os
import select
import signal
import struct
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from dinogen import model
from dinogen.data import make_batch
from dinogen.errors import DinogenError
from dinogen.optim import sum_of_squares
from dinogen.workspace import Workspace

if TYPE_CHECKING:
    from dinogen.train import Trainer

GRADIENTS, REDUCE, UPDATE, EVALUATE = 1, 2, 3, 4  # the phases of a step, and an evaluation
MESSAGE = struct.Struct("<Bqdd")  # phase, step, learning rate, clip factor (0: none)
DONE, FAILED = b"d", b"f"  # a worker's answer; FAILED is followed by a length (4 bytes) and a sentence
ALIGN = 16  # slices start at multiples of 16 floats (64 bytes), so no two processes write one cache line
SPIN_SECONDS = 0.005  # a process waiting for the other side polls this long before it sleeps
REAP_SECONDS = 5.0  # how long a worker may take to exit after its pipe closes, before it is killed
PARENT_ENDS: set[int] = set()  # the pipe ends every running SharedSteps holds; a new worker closes them all, so a
#                                worker sees its pipe close when its own parent closes it, whatever forked since


class WorkerFailed(DinogenError):
    """A worker process died or raised. consistent: the parameters and the optimizer are
    still those after the last whole step (the failure came before the update);
    evaluation_owed: it came in the evaluation of that step, which has to be made
    before the state is saved, or a resumed run would skip it."""

    def __init__(self, message: str, consistent: bool, evaluation_owed: bool = False) -> None:
        super().__init__(message)
        self.consistent, self.evaluation_owed = consistent, evaluation_owed


def shared_copy(array: np.ndarray) -> np.ndarray:
    """A copy of array in memory that processes forked afterwards share."""
    try:
        buffer = mmap.mmap(-1, max(array.nbytes, 1))  # anonymous and MAP_SHARED
    except OSError as exc:
        if exc.errno == errno.ENOMEM:
            raise MemoryError from None
        raise
    shared = np.frombuffer(buffer, dtype=array.dtype, count=array.size).reshape(array.shape)
    shared[...] = array
    return shared


def share_of(ids: np.ndarray, lengths: np.ndarray, k: int, workers: int) -> np.ndarray:
    """Share k of the names ids: every workers-th of them, longest first."""
    order = np.argsort(-lengths[ids], kind="stable")
    return ids[order][k::workers]


@dataclass
class Segment:
    """The part of one parameter inside a process's slice: entries lo:hi of the
    parameter flattened, which are entries start:start + hi - lo of params."""

    name: str
    lo: int
    hi: int
    start: int


def slices(shapes: dict[str, tuple[int, ...]], workers: int) -> list[list[Segment]]:
    """The P entries cut into `workers` slices of about equal size, as segments of parameters."""
    sizes = {name: int(np.prod(shape)) for name, shape in shapes.items()}
    total = sum(sizes.values())
    bounds = [min(total, ALIGN * round(total * k / workers / ALIGN)) for k in range(workers)] + [total]
    cut: list[list[Segment]] = [[] for _ in range(workers)]
    start = 0
    for name, size in sizes.items():
        for k in range(workers):
            lo, hi = max(bounds[k], start), min(bounds[k + 1], start + size)
            if lo < hi:
                cut[k].append(Segment(name, lo - start, hi - start, lo))
        start += size
    return cut


class SharedSteps:
    """The training steps of trainer, shared by `workers` processes (this one included).

    Use as a context manager around the run: entering moves the parameters and the
    optimizer's state into shared memory and starts the workers; leaving stops them
    (killing any that does not exit) and moves everything back into private memory.
    """

    def __init__(self, trainer: "Trainer", workers: int) -> None:
        self.trainer, self.workers = trainer, workers
        self.slices = slices(model.param_shapes(trainer.model_cfg), workers)
        self.children: list[tuple[int, int, int]] = []  # (pid, fd to send to it, fd to hear from it)
        self.updating = False  # a failure now leaves some slices updated and others not
        self.evaluating = False  # a failure now leaves the evaluation of the step just made undone

    def __enter__(self) -> "SharedSteps":
        t = self.trainer
        shapes = model.param_shapes(t.model_cfg)
        P = sum(int(np.prod(shape)) for shape in shapes.values())
        self.flat = shared_copy(np.concatenate([t.params[name].reshape(-1) for name in shapes]))  # (P,)
        self.grads = shared_copy(np.zeros((self.workers, P), np.float32))  # (W, P)
        self.sums = shared_copy(np.zeros((self.workers, 2)))  # (W, 2)
        start = 0
        for name, shape in shapes.items():
            size = int(np.prod(shape))
            t.params[name] = self.flat[start : start + size].reshape(shape)
            start += size
        t.optimizer.move_state(shared_copy)
        try:
            for k in range(1, self.workers):
                self._fork(k)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        for _, to_child, _ in self.children:
            os.close(to_child)  # the worker reads the end of its pipe and exits
            PARENT_ENDS.discard(to_child)
        deadline = time.monotonic() + REAP_SECONDS
        children, self.children, reaped = self.children, [], set()
        try:
            for pid, _, _ in children:
                _reap(pid, deadline)
                reaped.add(pid)
        finally:  # a second Ctrl-C while waiting: the rest are killed, not left behind
            for pid, _, from_child in children:
                if pid not in reaped:
                    _kill(pid)
                os.close(from_child)
                PARENT_ENDS.discard(from_child)
        t = self.trainer
        for name in t.params:
            t.params[name] = t.params[name].copy()
        t.optimizer.move_state(np.copy)

    def _fork(self, k: int) -> None:
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        parent = os.getpid()
        held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})  # no Ctrl-C between
        try:  # the fork and the worker's record, which would leave a worker no one stops
            pid = os.fork()
        except OSError:  # no more processes or memory: nothing is left open
            for fd in (to_child_r, to_child_w, from_child_r, from_child_w):
                os.close(fd)
            signal.pthread_sigmask(signal.SIG_SETMASK, held)
            raise
        if pid == 0:  # the worker: it never returns into the caller's code
            code = 1
            try:
                signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the parent decides
                signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the worker ends when its pipe closes ...
                _die_with(parent)  # ... or when its parent dies, whoever else holds the pipe
                for fd in PARENT_ENDS:
                    os.close(fd)
                os.close(to_child_w)
                os.close(from_child_r)
                os.set_blocking(to_child_r, False)
                self.trainer.workspace = Workspace()  # arrays of its own, not copies of the parent's pages
                code = self._serve(k, to_child_r, from_child_w)
            finally:
                os._exit(code)
        os.close(to_child_r)
        os.close(from_child_w)
        os.set_blocking(from_child_r, False)
        self.children.append((pid, to_child_w, from_child_r))
        PARENT_ENDS.update((to_child_w, from_child_r))
        signal.pthread_sigmask(signal.SIG_SETMASK, held)

    def _serve(self, k: int, commands: int, answers: int) -> int:
        """A worker's life: run each phase it is told to, answer, until its pipe closes."""
        while True:
            message = _read_exactly(commands, MESSAGE.size)
            if not message:
                return 0
            try:
                self._run_phase(k, *MESSAGE.unpack(message))
            except BaseException as exc:  # reported as one sentence; the parent decides what follows
                text = "out of memory" if isinstance(exc, MemoryError) else f"{type(exc).__name__}: {exc}"
                data = text.encode("utf-8", "replace")
                os.write(answers, FAILED + struct.pack("<I", len(data)) + data)
                return 1
            os.write(answers, DONE)

    def _run_phase(self, k: int, phase: int, step: int, lr: float, factor: float) -> None:
        if phase == GRADIENTS:
            self._gradients(k, step)
        elif phase == REDUCE:
            self._reduce(k)
        elif phase == EVALUATE:
            self._evaluate(k)
        else:
            optimizer = self.trainer.optimizer
            optimizer.lr = lr
            self._update(k, optimizer.advance(), factor)

    def _gradients(self, k: int, step: int) -> None:
        """grads[k] = the gradient of share k of the step's batch; sums[k, 0] its summed NLL."""
        t, slot = self.trainer, self.grads[k]
        ids = t.schedule[step]
        lengths = t.data.lengths
        per = int(lengths[ids].sum()) + len(ids) if t.cfg.loss_per == "char" else len(ids)  # predictions, or names
        share = share_of(ids, lengths, k, self.workers)
        if len(share) == 0:  # a batch of fewer names than processes
            slot.fill(0)
            self.sums[k, 0] = 0.0
            return
        batch = make_batch(t.data, share)
        rng = np.random.default_rng([t.cfg.seed, step, 1, k]) if t.cfg.dropout else None
        nll, cache = model.forward(t.params, t.model_cfg, batch, rng, t.workspace)  # each process's own copy
        grads = model.backward(np.full_like(nll, 1.0 / per), cache)
        start = 0
        for name, p in t.params.items():
            slot[start : start + p.size] = grads[name].reshape(-1)
            start += p.size
        self.sums[k, 0] = nll.sum(dtype=np.float64)

    def _reduce(self, k: int) -> None:
        """On slice k: grads[0] = the sum of every share's gradient; sums[k, 1] its sum of squares."""
        segments = self.slices[k]
        if not segments:
            self.sums[k, 1] = 0.0
            return
        lo, hi = segments[0].start, segments[-1].start + segments[-1].hi - segments[-1].lo
        total = self.grads[0, lo:hi]
        for j in range(1, self.workers):
            total += self.grads[j, lo:hi]
        self.sums[k, 1] = sum_of_squares([total])

    def _update(self, k: int, coeffs: tuple, factor: float) -> None:
        """Clip slice k of the summed gradient and apply the optimizer to slice k of the parameters."""
        t = self.trainer
        for seg in self.slices[k]:
            size = seg.hi - seg.lo
            g = self.grads[0, seg.start : seg.start + size]
            if t.cfg.clip_mode == "value" and t.cfg.clip > 0:
                np.clip(g, -t.cfg.clip, t.cfg.clip, out=g)
            elif factor:
                g *= factor
            p = self.flat[seg.start : seg.start + size]
            t.optimizer.update(seg.name, p, g, t.optimizer.part(seg.name, seg.lo, seg.hi), coeffs)

    def _evaluate(self, k: int) -> None:
        """sums[k, 0] = the summed NLL of share k of the validation probe (dropout off)."""
        t = self.trainer
        share = share_of(t.val_probe, t.data.lengths, k, self.workers)
        self.sums[k, 0] = model.total_nll(t.params, t.model_cfg, t.data, share)[0] if len(share) else 0.0

    def validation_loss(self, step: int) -> float:
        """The mean NLL per character of the trainer's validation probe, shared like a step."""
        probe = self.trainer.val_probe
        self.evaluating = True
        self._phase(EVALUATE, step)
        self.evaluating = False
        return float(self.sums[:, 0].sum() / (int(self.trainer.data.lengths[probe].sum()) + len(probe)))

    def gradients(self, step: int) -> tuple[float, float, int]:
        """Phases 1 and 2 of `step`: the batch's mean loss, the norm of its gradient, and its predictions."""
        self._phase(GRADIENTS, step)
        self._phase(REDUCE, step)
        ids = self.trainer.schedule[step]
        n = int(self.trainer.data.lengths[ids].sum()) + len(ids)
        return float(self.sums[:, 0].sum() / n), float(np.sqrt(self.sums[:, 1].sum())), n

    def update(self, step: int, lr: float, factor: float) -> None:
        """Phase 3: every slice clipped by factor (0: not scaled) and updated at learning rate lr."""
        self.updating = True
        self._phase(UPDATE, step, lr, factor)
        self.updating = False

    def summed_gradient(self) -> dict[str, np.ndarray]:
        """After gradients(): the batch's gradient of every parameter, as views of grads[0]."""
        views, start = {}, 0
        for name, p in self.trainer.params.items():
            views[name] = self.grads[0, start : start + p.size].reshape(p.shape)
            start += p.size
        return views

    def _phase(self, phase: int, step: int, lr: float = 0.0, factor: float = 0.0) -> None:
        """Tell every worker to run a phase, run it here too, and wait for them all."""
        message = MESSAGE.pack(phase, step, lr, factor)
        for k, (pid, to_child, _) in enumerate(self.children, start=1):
            try:
                os.write(to_child, message)
            except BrokenPipeError:  # it is gone; say how. No slice is updated when no worker was told to.
                raise self._failure(k, pid, step, _death(pid), updated=k > 1) from None
        self._run_phase(0, phase, step, lr, factor)
        for k, (pid, _, from_child) in enumerate(self.children, start=1):
            self._await(k, pid, from_child, step)

    def _await(self, k: int, pid: int, from_child: int, step: int) -> None:
        """Wait for worker k's answer; raise WorkerFailed (MemoryError when it ran out) if it failed or died."""
        answer = _read_exactly(from_child, 1)
        if answer == DONE:
            return
        if answer != FAILED:
            raise self._failure(k, pid, step, _death(pid))
        (size,) = struct.unpack("<I", _read_exactly(from_child, 4))
        text = _read_exactly(from_child, size).decode("utf-8", "replace")
        if text == "out of memory":
            raise MemoryError(f"worker process {k} ran out of memory")
        raise self._failure(k, pid, step, "failed", f" ({text})")

    def _failure(self, k: int, pid: int, step: int, how: str, detail: str = "",
                 updated: bool = True) -> WorkerFailed:
        """The error for worker k: "worker process 1 (pid 123) was killed by SIGKILL at step 57"."""
        when = f"in the evaluation after step {step}" if self.evaluating else f"at step {step + 1}"
        return WorkerFailed(f"worker process {k} (pid {pid}) {how} {when}{detail}",
                            consistent=not (self.updating and updated), evaluation_owed=self.evaluating)


def _read_exactly(fd: int, size: int) -> bytes:
    """size bytes from fd (non-blocking), or fewer when the other end closed first.

    Polls for SPIN_SECONDS before it sleeps until data comes: a process woken
    from sleep by a pipe takes up to a millisecond to run again (measured on
    a 2-core VM), several times a step's whole share at hidden 128."""
    data, deadline = b"", None
    while len(data) < size:
        try:
            chunk = os.read(fd, size - len(data))
        except BlockingIOError:
            now = time.perf_counter()
            deadline = deadline or now + SPIN_SECONDS
            if now > deadline:
                waiting = select.poll()  # not select.select, which refuses descriptors from 1024 on
                waiting.register(fd, select.POLLIN)
                waiting.poll()
            else:
                os.sched_yield()  # on a busy machine, the process this one waits for may need this core
            continue
        if not chunk:
            break
        data += chunk
    return data


def _death(pid: int) -> str:
    """How a worker that closed its pipe ended, in words ("was killed by SIGKILL")."""
    try:
        _, status = os.waitpid(pid, 0)
    except ChildProcessError:
        return "ended"
    if os.WIFSIGNALED(status):
        return f"was killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exited with code {os.WEXITSTATUS(status)}"


def _kill(pid: int) -> None:
    """Kill and reap a worker, if it is still there."""
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass


def _die_with(parent: int) -> None:
    """Have the kernel kill this process when its parent dies (Linux), and exit now if it already has."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the end of the pipe still stops the worker
        pass
    if os.getppid() != parent:
        os._exit(0)


def _reap(pid: int, deadline: float) -> None:
    """Wait for a worker to exit; kill it when it has not by the deadline."""
    while time.monotonic() < deadline:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:  # already reaped (it died and _death collected it)
            return
        if done:
            return
        time.sleep(0.005)
    _kill(pid)

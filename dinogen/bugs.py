"""The classic mistakes of a hand-written RNN, each injectable into a gradient check.

Each bug is the readable path of dinogen/reference.py with one piece swapped for
the mistake (the buggy line below, the correct one beside it in a comment), and
states which rows of `dinogen gradcheck` it fails. Only gradcheck ever runs them:
the fast path that training uses is never touched.

A finite difference proves the gradient of whatever loss the code computes. So a
mistake made consistently in the loss and its gradient (padding counted, targets
shifted along the wrong axis) passes every parameter's row: only the "padding"
row, the batch against its names one at a time, can catch it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from dinogen import gradcheck, reference
from dinogen.config import CELL_NAMES, ModelConfig
from dinogen.data import Batch
from dinogen.model import param_shapes

BELOW_THE_OUTPUT = ("W_emb", "W_cat", "W_xh", "W_hh", "b_h")  # the parameters a gradient reaches through the recurrence
EVERY_PARAMETER = (*BELOW_THE_OUTPUT, "W_hy", "b_y")


@dataclass(frozen=True)
class Bug:
    name: str
    sentence: str  # what the mistake is, for a learner, in one sentence
    parts: reference.Parts  # the reference path with the mistake in it
    fails: tuple[str, ...]  # the rows it fails: "padding", or parameters without their layer ("W_hh")
    cells: tuple[str, ...] = CELL_NAMES  # the cells it can be injected into

    def implementation(self) -> gradcheck.Implementation:
        return gradcheck.reference_implementation(self.parts)

    def expected_failures(self, cfg: ModelConfig) -> set[str]:
        """The rows of cfg's table that this bug should fail."""
        rows = [*param_shapes(cfg), "padding"]
        return {row for row in rows if row.split(".")[0] in self.fails}


# ---- the mistakes, each beside the line it replaces ---------------------------


def softmax_over_names(logits: np.ndarray) -> np.ndarray:
    """(B, V) -> (B, V), normalised the way code written for (V, B) columns does."""
    shifted = logits - logits.max(axis=0, keepdims=True)
    return np.exp(shifted) / np.exp(shifted).sum(axis=0, keepdims=True)  # the bug: axis=0 (both lines); correct: axis=1


def next_character_of_the_next_name(x: np.ndarray) -> np.ndarray:
    """(T, B) -> (T, B), the inputs shifted along the batch axis."""
    return np.roll(x, -1, axis=1)  # the bug: axis=1, the names; correct: axis=0, time


def every_position(batch: Batch) -> np.ndarray:
    """(T, B) all True: padded positions counted as predictions."""
    return np.ones(batch.y.shape, dtype=bool)  # the bug; correct: batch.y != PAD


def overwrite(total, value):
    """A weight's gradient so far replaced by one time step's share, not added to."""
    return value  # the bug: grads[name] = value; correct: total + value, += across time


def rnn_step_backward_dW_hh_from_dh(dstate, cache):
    """reference.rnn_step_backward with dW_hh built from the incoming gradient dh."""
    (dh,), (x, h_prev, W_xh, W_hh, h) = dstate, cache
    da = dh * (1 - h**2)  # through tanh, as in the reference
    dx, dh_prev, dW_xh, _, db = reference.affine_backward(da, da, x, h_prev, W_xh, W_hh)
    return dx, (dh_prev,), dW_xh, dh.T @ da, db  # the bug: dh.T @ da; correct: h_prev.T @ da


def rnn_step_backward_tanh_from_preactivation(dstate, cache):
    """reference.rnn_step_backward with tanh's derivative taken from its input a, not its output h."""
    (dh,), (x, h_prev, W_xh, W_hh, h) = dstate, cache
    a = np.arctanh(h)  # the pre-activation, which such code keeps in its cache: h = tanh(a)
    da = dh * (1 - a**2)  # the bug: 1 - a**2; correct: 1 - h**2, that is 1 - tanh(a)**2
    dx, dh_prev, dW_xh, dW_hh, db = reference.affine_backward(da, da, x, h_prev, W_xh, W_hh)
    return dx, (dh_prev,), dW_xh, dW_hh, db


def with_rnn_step_backward(step_backward) -> reference.Parts:
    """The correct parts but for the RNN's step backward."""
    step_forward, _, n_state = reference.STEPS["rnn"]
    return replace(reference.CORRECT, steps={**reference.STEPS, "rnn": (step_forward, step_backward, n_state)})


BUGS = {bug.name: bug for bug in [
    Bug("softmax-axis",
        "The softmax normalises over axis 0, the names in the batch, instead of axis 1, the vocabulary "
        "(right only for code that holds one name per column), while the backward pass still uses p - y.",
        replace(reference.CORRECT, softmax=softmax_over_names), fails=(*EVERY_PARAMETER, "padding")),
    Bug("target-axis",
        "The targets are the inputs shifted along axis 1, the names, instead of axis 0, time, so each position "
        "is taught the neighbouring name's character; the gradient is right for that wrong loss, so only the "
        "padding row, where a name stands alone, sees it.",
        replace(reference.CORRECT, targets=next_character_of_the_next_name), fails=("padding",)),
    Bug("dwhh-from-dh",
        "dW_hh = dh.T @ da instead of h_prev.T @ da: the recurrent weights' gradient built from dh, the "
        "gradient arriving at h_t, instead of from h_{t-1}, the value W_hh multiplied.",
        with_rnn_step_backward(rnn_step_backward_dW_hh_from_dh), fails=("W_hh", "padding"), cells=("rnn",)),
    Bug("padding-counted",
        "Padded positions count in the loss and its mean, as predictions of the end token; the gradient is "
        "right for that wrong loss, so only the padding row, the batch against each name alone, catches it.",
        replace(reference.CORRECT, real=every_position), fails=("padding",)),
    Bug("no-accumulate",
        "Each weight's gradient is assigned (=) at every time step instead of accumulated (+=), so only one "
        "step's share survives: step 0's, the last that backpropagation through time reaches.",
        replace(reference.CORRECT, accumulate=overwrite), fails=EVERY_PARAMETER),
    Bug("tanh-from-preactivation",
        "tanh's derivative is taken as 1 - a**2 from the pre-activation a instead of 1 - h**2 from the output "
        "h = tanh(a), so every gradient that flows back through the recurrence is off, and only those.",
        with_rnn_step_backward(rnn_step_backward_tanh_from_preactivation), fails=BELOW_THE_OUTPUT, cells=("rnn",)),
]}

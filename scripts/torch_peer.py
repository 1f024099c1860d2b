"""A PyTorch peer of dinogen's model, for benchmarks and quality comparisons.

The same model on the same data: characters in (one-hot, or an embedding),
nn.RNN / nn.GRU / nn.LSTM, an output layer, cross-entropy averaged over the real
(unpadded) predictions, Adam and global-norm clipping. Batches are dinogen's own
(`dinogen.data.make_batch` over `dinogen.data.BatchSchedule`), so padding, the
mask (PAD targets are ignored) and the batch order match dinogen exactly.

Library use (torch must be installed: `pip install -e '.[bench]'`):

    from dinogen.data import encode_names, read_names, split_indices, Vocab
    import torch_peer
    model = torch_peer.build_model("lstm", vocab_size, hidden=128)
    summary = torch_peer.train(model, data, train_idx, batch_size=64, steps=500)
    nll = torch_peer.heldout_nll(model, data, val_idx)

Shapes: T time steps, B names, V vocabulary, H hidden, E input width.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn

from dinogen.data import PAD, Batch, BatchSchedule, Dataset, iter_eval_batches, make_batch

RECURRENT = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}


class CharModel(nn.Module):
    """Characters -> recurrent layers -> logits over the vocabulary."""

    def __init__(self, cell: str, vocab_size: int, hidden: int, layers: int = 1,
                 embed_dim: int | None = None, dropout: float = 0.0) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.embed = nn.Embedding(vocab_size, embed_dim) if embed_dim else None
        width = embed_dim or vocab_size  # one-hot input when there is no embedding, as in dinogen
        self.rnn = RECURRENT[cell](width, hidden, num_layers=layers, dropout=dropout if layers > 1 else 0.0)
        self.out = nn.Linear(hidden, vocab_size)

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        """x: (T, B) int64 tokens. Returns the first layer's input: (T, B, E), or one-hot (T, B, V)."""
        if self.embed is not None:
            return self.embed(x)
        return nn.functional.one_hot(x, self.vocab_size).to(torch.float32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (T, B) int64 tokens. Returns logits: (T, B, V)."""
        h, _ = self.rnn(self.inputs(x))  # (T, B, H)
        return self.out(h)


def build_model(cell: str, vocab_size: int, hidden: int, layers: int = 1,
                embed_dim: int | None = None, dropout: float = 0.0, seed: int = 0) -> CharModel:
    """A fresh CharModel with PyTorch's default initialisation, seeded."""
    torch.manual_seed(seed)
    return CharModel(cell, vocab_size, hidden, layers, embed_dim, dropout)


def batch_tensors(batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """dinogen's padded batch as tensors: x (T, B) int64 inputs, y (T, B) int64 targets, PAD where padded."""
    return torch.from_numpy(batch.x.astype(np.int64)), torch.from_numpy(batch.y.astype(np.int64))


def loss_on(model: CharModel, x: torch.Tensor, y: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy over the real predictions (targets != PAD), in nats."""
    logits = model(x)
    return nn.functional.cross_entropy(logits.reshape(-1, model.vocab_size), y.reshape(-1),
                                       ignore_index=PAD, reduction=reduction)


def train(model: CharModel, data: Dataset, train_idx: np.ndarray, batch_size: int = 32, *,
          steps: int | None = None, seconds: float | None = None, lr: float = 3e-3, clip: float = 5.0,
          seed: int = 1337, first_step: int = 0, optimizer: torch.optim.Optimizer | None = None) -> dict:
    """Train on dinogen's batch schedule until `steps` steps or `seconds` seconds (one must be given).

    Returns {"steps", "seconds", "predictions", "loss", "optimizer"}: seconds counts the
    training steps only; predictions are the real ones trained on; loss is the last batch's.
    Pass the returned optimizer and first_step=steps done to continue a run.
    """
    if steps is None and seconds is None:
        raise ValueError("give steps or seconds")
    model.train()
    optimizer = optimizer or torch.optim.Adam(model.parameters(), lr=lr)
    schedule = BatchSchedule(train_idx, data.lengths, batch_size, seed)
    done, predictions, spent, loss = 0, 0, 0.0, float("nan")
    while (steps is None or done < steps) and (seconds is None or spent < seconds):
        t0 = time.perf_counter()
        batch = make_batch(data, schedule[first_step + done])
        x, y = batch_tensors(batch)
        optimizer.zero_grad(set_to_none=True)
        out = loss_on(model, x, y)
        out.backward()
        if clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        loss = out.item()
        spent += time.perf_counter() - t0
        done += 1
        predictions += batch.n_predictions
    return {"steps": done, "seconds": spent, "predictions": predictions, "loss": loss, "optimizer": optimizer}


@torch.no_grad()
def heldout_nll(model: CharModel, data: Dataset, idx: np.ndarray) -> float:
    """Mean NLL per real prediction (nats) over the names idx, L + 1 predictions each."""
    model.eval()
    total, count = 0.0, 0
    for batch in iter_eval_batches(data, idx):
        x, y = batch_tensors(batch)
        total += float(loss_on(model, x, y, reduction="sum"))
        count += batch.n_predictions
    return total / count

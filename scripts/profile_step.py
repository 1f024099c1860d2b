"""Where the time of one training step goes, part by part.

Runs the trainer's own steps (Trainer.train_step on data/dinos.txt) with a timer
around each function the step calls, and prints the mean milliseconds per step
of each, so the README's breakdown can be checked on any machine:

    python scripts/profile_step.py                       # lstm, hidden 128, batch 64, 1 BLAS thread
    python scripts/profile_step.py --cell gru --hidden 256 --batch 32

The model is the benchmark's (characters looked up in W_xh, no embedding, no
dropout), one layer. "cell backward" includes the local derivatives, also shown
on their own; "glue" is the rest of the step (gathering the real positions,
scattering their gradient back, the loss bookkeeping).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dinogen.threads import set_blas_threads  # noqa: E402  (imports no NumPy)


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cell", default="lstm", choices=["rnn", "gru", "lstm"])
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--batches", type=positive_int, default=200, help="steps timed")
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads")
    args = parser.parse_args()
    set_blas_threads(args.threads)

    from dinogen import cells, model, train
    from dinogen.data import read_names

    order = ["cut the batch", "input lookup", "cell forward", "output layer forward", "softmax + loss forward",
             "softmax + loss backward", "output layer backward", "cell backward", "  of which local derivatives",
             "input weight gradient (one-hot product)", "clip", "optimizer (Adam)"]
    spent = dict.fromkeys(order, 0.0)  # label -> seconds, printed in the order of a step

    def timed(label, fn):
        def wrapper(*a, **kw):
            start = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                spent[label] += time.perf_counter() - start
        return wrapper

    cfg = train.TrainConfig(cell=args.cell, hidden=args.hidden, batch_size=args.batch, embed_dim=0, dropout=0.0,
                            steps=10**9, eval_every=10**9)
    trainer = train.Trainer(read_names(ROOT / "data" / "dinos.txt"), cfg)
    for _ in range(50):
        trainer.train_step()  # warm caches and the workspace; weights away from their start
    cell = cells.CELLS[args.cell]
    cells.CELLS[args.cell] = dataclasses.replace(
        cell, forward=timed("cell forward", cell.forward), backward=timed("cell backward", cell.backward))
    for factors in ("_lstm_factors", "_gru_factors"):
        setattr(cells, factors, timed("  of which local derivatives", getattr(cells, factors)))
    for label, module, name in [
        ("input lookup", model, "lookup_forward"),
        ("input weight gradient (one-hot product)", model, "lookup_backward"),
        ("output layer forward", model, "dense_forward"),
        ("output layer backward", model, "dense_backward"),
        ("softmax + loss forward", model, "cross_entropy_forward"),
        ("softmax + loss backward", model, "cross_entropy_backward"),
        ("cut the batch", train, "make_batch"),
        ("clip", train, "clip_global_norm"),
    ]:
        setattr(module, name, timed(label, getattr(module, name)))
    trainer.optimizer.step = timed("optimizer (Adam)", trainer.optimizer.step)

    predictions, start = trainer.state.predictions, time.perf_counter()
    for _ in range(args.batches):
        trainer.train_step()
    total = time.perf_counter() - start
    n = args.batches
    print(f"{args.cell} H{args.hidden} B{args.batch}, {args.threads} BLAS thread(s): {n} steps, "
          f"{(trainer.state.predictions - predictions) / n:.0f} predictions a step")
    for label, t in spent.items():
        if t:
            print(f"  {label:<42} {t / n * 1e3:7.3f} ms")
    parts = sum(t for label, t in spent.items() if not label.startswith(" "))
    print(f"  {'glue':<42} {(total - parts) / n * 1e3:7.3f} ms")
    print(f"  {'step':<42} {total / n * 1e3:7.3f} ms  "
          f"({(trainer.state.predictions - predictions) / total:,.0f} predictions/s)")


if __name__ == "__main__":
    main()

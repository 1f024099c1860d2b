"""Where the time of one training step goes, part by part.

Runs the parts of model.forward / model.backward / the optimizer one by one on
real batches of data/dinos.txt (the trainer's own schedule and workspace) and
prints the mean milliseconds per step of each, so the README's breakdown can be
checked on any machine:

    python scripts/profile_step.py                       # lstm, hidden 128, batch 64, 1 BLAS thread
    python scripts/profile_step.py --cell gru --hidden 256 --batch 32

The model is the benchmark's (characters looked up in W_xh, no embedding, no
dropout), one layer. "cell backward" includes the local derivatives, which are
also timed on their own; the per-step products are inside the cell rows.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dinogen.cli import set_blas_threads  # noqa: E402  (imports no NumPy)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cell", default="lstm", choices=["rnn", "gru", "lstm"])
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--batches", type=int, default=200, help="batches timed")
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads")
    args = parser.parse_args()
    set_blas_threads(args.threads)

    import numpy as np

    from dinogen import cells, layers
    from dinogen.data import make_batch, read_names
    from dinogen.optim import clip_global_norm
    from dinogen.train import TrainConfig, Trainer
    from dinogen.workspace import Workspace

    cfg = TrainConfig(cell=args.cell, hidden=args.hidden, batch_size=args.batch, embed_dim=0, dropout=0.0,
                      steps=10**9, eval_every=10**9)
    trainer = Trainer(read_names(ROOT / "data" / "dinos.txt"), cfg)
    for _ in range(50):
        trainer.train_step()  # warm caches and the workspace; weights away from their start
    batches = [make_batch(trainer.data, trainer.schedule[i]) for i in range(args.batches)]
    params, cell, ws = trainer.params, cells.CELLS[args.cell], Workspace()
    factors = {"lstm": lambda c: cells._lstm_factors(c[0], c[1], c[2], ws.scope("factors")),
               "gru": lambda c: cells._gru_factors(c[0], c[1], c[2], ws.scope("factors"))}.get(args.cell)
    spent: dict[str, float] = {}

    def timed(label, fn):
        start = time.perf_counter()
        out = fn()
        spent[label] = spent.get(label, 0.0) + time.perf_counter() - start
        return out

    for b in batches:
        a_x, in_cache = timed("input lookup", lambda: layers.lookup_forward(
            b.x, params["W_xh.0"], params["b_h.0"], b.real, ws.scope("in")))
        h, cell_cache = timed("cell forward", lambda: cell.forward(a_x, b.n_active, params["W_hh.0"], ws.scope("cell")))
        T, B, H = h.shape
        h_real = timed("gather real positions", lambda: np.take(h.reshape(T * B, H), b.real, axis=0))
        logits, out_cache = timed("output layer forward", lambda: layers.dense_forward(
            h_real, params["W_hy"], params["b_y"], ws.scope("out")))
        nll, loss_cache = timed("softmax + loss forward", lambda: layers.cross_entropy_forward(
            logits, b.y.ravel()[b.real], ws.scope("loss")))
        dlogits = timed("softmax + loss backward", lambda: layers.cross_entropy_backward(
            np.full_like(nll, 1.0 / len(nll)), loss_cache))
        dh_real, dW_hy, db_y = timed("output layer backward", lambda: layers.dense_backward(dlogits, out_cache))

        def scatter():
            dh = ws.zeros("dh", (T * B, H), dh_real.dtype)
            dh[b.real] = dh_real
            return dh.reshape(T, B, H)

        dh = timed("scatter to (T, B)", scatter)
        da_x, dW_hh = timed("cell backward", lambda: cell.backward(dh, cell_cache))
        if factors is not None:
            timed("  of which local derivatives", lambda: factors(cell_cache))
        dW_xh, db_h = timed("input weight gradient (one-hot product)", lambda: layers.lookup_backward(da_x, in_cache))
        grads = {"W_xh.0": dW_xh, "W_hh.0": dW_hh, "b_h.0": db_h, "W_hy": dW_hy, "b_y": db_y}
        timed("clip", lambda: clip_global_norm(grads, cfg.clip))
        timed("optimizer (Adam)", lambda: trainer.optimizer.step(params, grads))
        timed("cut the batch", lambda: make_batch(trainer.data, trainer.schedule[0]))

    n = len(batches)
    total = sum(t for label, t in spent.items() if not label.startswith(" "))
    mean_t = np.mean([b.x.shape[0] for b in batches])
    mean_n = np.mean([b.n_predictions for b in batches])
    print(f"{args.cell} H{args.hidden} B{args.batch}, {args.threads} BLAS thread(s): {n} batches, "
          f"mean {mean_t:.1f} time steps, {mean_n:.0f} predictions")
    for label, t in spent.items():
        print(f"  {label:<42} {t / n * 1e3:7.3f} ms")
    print(f"  {'step':<42} {total / n * 1e3:7.3f} ms  ({mean_n * n / total:,.0f} predictions/s)")


if __name__ == "__main__":
    main()

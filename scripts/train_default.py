"""Train the bundled default model: data/dinos.txt -> dinogen/assets/default.npz.

Rerun it after changing the data or the defaults; the same code, data and seed
give the same file (training is deterministic on one machine and BLAS build):

    python scripts/train_default.py
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dinogen.cli import set_blas_threads  # noqa: E402  (imports no NumPy)

set_blas_threads(1)  # before NumPy loads, as the CLI does

from dinogen import checkpoint  # noqa: E402
from dinogen.data import read_names  # noqa: E402
from dinogen.train import Trainer, TrainConfig  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "dinogen" / "assets" / "default.npz"))
    args = parser.parse_args()
    names = read_names(ROOT / "data" / "dinos.txt")
    names.source = "data/dinos.txt"  # a path that means the same on every machine
    trainer = Trainer(names, TrainConfig())
    summary = trainer.run()
    checkpoint.save(args.out, trainer.checkpoint())
    summary["checkpoint"] = str(Path(args.out).relative_to(ROOT)) if Path(args.out).is_relative_to(ROOT) else args.out
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()

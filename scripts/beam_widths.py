"""What the beam width of `sample --likeliest` buys: overlap with the true top n, and time.

For each request, the search runs with a very wide beam (REFERENCE, which must
prove its answer exact, else the script says so) and then with each width
measured; it prints, per width, how many of the true top n names the narrower
search found, whether it proved its answer, and the seconds it took:

    OPENBLAS_NUM_THREADS=1 python scripts/beam_widths.py                    # the bundled model
    OPENBLAS_NUM_THREADS=1 python scripts/beam_widths.py -c names.npz --widths 64,1024
"""

from __future__ import annotations

import argparse
import time

from dinogen import checkpoint
from dinogen.likeliest import likeliest
from dinogen.resources import resolve_checkpoint
from dinogen.sampling import SampleSpec

REFERENCE = 65536
REQUESTS = {  # label -> (n, constraints)
    "--likeliest 10": (10, {}),
    "--likeliest 100": (100, {}),
    "--likeliest 10 --prefix Tyr": (10, {"prefix": "Tyr"}),
    "--likeliest 10 --novel --min-len 8": (10, {"novel": True, "min_len": 8}),
    "--likeliest 10 --suffix raptor": (10, {"suffix": "raptor"}),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-c", "--checkpoint", default=None, help="checkpoint [default: the bundled model]")
    parser.add_argument("--widths", default="16,64,256,1024,4096", help="widths to measure, comma-separated")
    args = parser.parse_args()
    ckpt = checkpoint.load(resolve_checkpoint(args.checkpoint)[0])
    params, cfg, vocab, known = ckpt.inference_params(), ckpt.model_config, ckpt.vocab, ckpt.training_names()
    widths = [int(w) for w in args.widths.split(",")]

    def search(n: int, constraints: dict, width: int):
        start = time.perf_counter()
        found = likeliest(params, cfg, vocab, n, SampleSpec(**constraints).for_model(ckpt.lowercase), width, known)
        return found, time.perf_counter() - start

    print("| request | " + " | ".join(f"width {w:,}" for w in widths) + f" | width {REFERENCE:,} |")
    print("| --- |" + " ---: |" * (len(widths) + 1))
    for label, (n, constraints) in REQUESTS.items():
        truth, seconds = search(n, constraints, REFERENCE)
        cells = []
        for width in widths:
            found, took = search(n, constraints, width)
            shared = len(set(found.scored.names) & set(truth.scored.names))
            cells.append(f"{shared}/{n}{' exact' if found.exact else ''}, {took:.2f} s")
        proof = "exact" if truth.exact else "NOT PROVEN"
        print(f"| `{label}` | " + " | ".join(cells) + f" | {proof}, {seconds:.2f} s |", flush=True)


if __name__ == "__main__":
    main()

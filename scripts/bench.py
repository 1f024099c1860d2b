"""dinogen's benchmark: training and sampling throughput against PyTorch and a
course-style NumPy RNN, CLI latency and peak memory. Prints one table and can
write the same as JSON.

    pip install -e '.[bench]'
    python scripts/bench.py --json bench.json          # full: every cell, hidden 64/128/256, batch 32/64/128
    python scripts/bench.py --quick                    # hidden 128, batch 64 only

Training throughput is real (unpadded) predictions per second, L + 1 per name of
L characters. Each implementation runs in its own benchmark process (BLAS threads
are fixed when NumPy loads): dinogen with `--workers N` (N processes, one BLAS
thread each) beside PyTorch with N threads, for N = 1, 2 and the core count when
larger. The parent alternates every process's repetitions of the same
configuration and reports medians, the ratio dinogen / peer, and dinogen's
N workers against its 1 worker.
PyTorch is skipped with a note when it is not installed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from dinogen.threads import BLAS_THREAD_VARIABLES  # imports no NumPy, so workers can still set their threads

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = Path(__file__).resolve().parent
CELLS = ("rnn", "gru", "lstm")
SEED = 1337


@dataclass
class Plan:
    """What one benchmark run measures."""

    hiddens: tuple[int, ...]
    batches: tuple[int, ...]
    parallel: tuple[int, ...]  # dinogen's --workers, each against PyTorch with as many threads (and the core count)
    reps: int  # alternating repetitions per configuration
    rep_seconds: float  # training time per repetition
    course_hidden: int
    sample_ns: tuple[int, ...]
    sample_hidden: int  # hidden size of each cell's sampling model
    sample_train_steps: int  # steps to train each cell's sampling model
    sample_calls: int  # names drawn per timing at small N (several calls of N)
    memory_names: int  # names in the generated file for the memory test
    memory_steps: int  # training steps in the memory test
    cli_reps: int


PLANS = {
    "full": Plan((64, 128, 256), (32, 64, 128), (1, 2), 3, 0.6, 50, (1, 100, 10_000), 128, 400, 1000, 1_000_000, 100, 7),
    "quick": Plan((128,), (64,), (1, 2), 3, 0.6, 50, (1, 100, 10_000), 128, 300, 1000, 1_000_000, 50, 5),
    "tiny": Plan((8,), (4,), (1, 2), 1, 0.05, 8, (1, 10), 8, 5, 3, 2_000, 3, 1),
}


# ---------------------------------------------------------------- workers (child processes)


def set_threads_env(env: dict, threads: int) -> dict:
    """A copy of env that makes NumPy's BLAS (and torch) use `threads` threads."""
    env = dict(env)
    for variable in BLAS_THREAD_VARIABLES:
        env[variable] = str(threads)
    return env


def load_dataset(path: str):
    """(NameList, Dataset, train indices, vocabulary size) with dinogen's own split."""
    from dinogen.data import Vocab, encode_names, read_names, split_indices
    from dinogen.config import TrainConfig

    names = read_names(path)
    vocab = Vocab.from_names(names.names)
    data = encode_names(names.names, vocab)
    train_idx, _ = split_indices(len(data), TrainConfig.val_fraction, SEED)
    return names, data, train_idx, vocab.size


class DinogenRunner:
    """dinogen's Trainer, one optimizer step at a time (batch cutting included), its
    worker processes running from the first repetition to close()."""

    def __init__(self, names, cell: str, hidden: int, batch: int, workers: int) -> None:
        from dinogen.config import TrainConfig
        from dinogen.train import Trainer

        cfg = TrainConfig(cell=cell, hidden=hidden, batch_size=batch, embed_dim=0, dropout=0.0, steps=10**9,
                          eval_every=10**9, seed=SEED, workers=workers)  # the peer's model: one-hot input, no dropout
        self.trainer = Trainer(names, cfg)
        self.running = self.trainer.workers_running()
        self.running.__enter__()

    def close(self) -> None:
        self.running.__exit__(None, None, None)

    def run(self, seconds: float) -> tuple[int, float]:
        trainer, p0 = self.trainer, self.trainer.state.predictions
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            trainer.train_step()
        return trainer.state.predictions - p0, time.perf_counter() - start


class TorchRunner:
    """scripts/torch_peer.py on the same batches, continued from rep to rep."""

    def __init__(self, data, train_idx, vocab_size: int, cell: str, hidden: int, batch: int) -> None:
        import torch_peer

        self.peer, self.data, self.train_idx, self.batch = torch_peer, data, train_idx, batch
        self.model = torch_peer.build_model(cell, vocab_size, hidden, seed=SEED)
        self.steps, self.optimizer = 0, None

    def run(self, seconds: float) -> tuple[int, float]:
        out = self.peer.train(self.model, self.data, self.train_idx, self.batch, seconds=seconds, seed=SEED,
                              first_step=self.steps, optimizer=self.optimizer)
        self.steps += out["steps"]
        self.optimizer = out["optimizer"]
        return out["predictions"], out["seconds"]

    def close(self) -> None:
        return None


class CourseRunner:
    """scripts/course_rnn.py: one name per step, hidden `hidden`."""

    def __init__(self, data, train_idx, vocab_size: int, hidden: int) -> None:
        import course_rnn

        self.course, self.vocab_size, self.hidden = course_rnn, vocab_size, hidden
        self.names = [data.codes[data.offsets[i] : data.offsets[i + 1]] for i in train_idx]

    def run(self, seconds: float) -> tuple[int, float]:
        out = self.course.train(self.names, self.vocab_size, hidden=self.hidden, seconds=seconds, seed=SEED)
        return out["predictions"], out["seconds"]

    def close(self) -> None:
        return None


def train_worker(kind: str, data_path: str, threads: int, workers: int) -> None:
    """Serve training repetitions: one JSON request per stdin line, one JSON reply per stdout line.

    Request {"cell", "hidden", "batch", "seconds"}; reply {"predictions", "seconds"}.
    Runners are built (and warmed up) on first use and continue across repetitions;
    dinogen's use `workers` processes.
    """
    if kind == "torch":
        import torch

        torch.set_num_threads(threads)
    names, data, train_idx, vocab_size = load_dataset(data_path)
    runners = {}
    for line in sys.stdin:
        req = json.loads(line)
        key = (req["cell"], req["hidden"], req["batch"])
        if key not in runners:
            if kind == "dinogen":
                runners[key] = DinogenRunner(names, *key, workers)
            elif kind == "torch":
                runners[key] = TorchRunner(data, train_idx, vocab_size, *key)
            else:
                runners[key] = CourseRunner(data, train_idx, vocab_size, req["hidden"])
            runners[key].run(min(0.2, req["seconds"]))  # warm-up: caches, allocator, BLAS buffers
        predictions, seconds = runners[key].run(req["seconds"])
        print(json.dumps({"predictions": predictions, "seconds": seconds}), flush=True)
    for runner in runners.values():
        runner.close()


def sample_worker(data_path: str, plan_name: str, model_path: str) -> None:
    """Names per second of dinogen.sampling.sample: the default model, then each cell at plan.sample_hidden.

    Prints one JSON object: {label: {"ns": {N: names/s}, "mean_length": ...}}.
    """
    import numpy as np

    from dinogen import checkpoint, sampling
    from dinogen.data import read_names
    from dinogen.config import TrainConfig
    from dinogen.train import Trainer

    plan = PLANS[plan_name]
    models = {"default model": checkpoint.load(model_path)}
    names = read_names(data_path)
    for cell in CELLS:
        cfg = TrainConfig(cell=cell, hidden=plan.sample_hidden, batch_size=64, embed_dim=0, dropout=0.0,
                          steps=plan.sample_train_steps, eval_every=10**9, seed=SEED)
        trainer = Trainer(names, cfg)
        trainer.run()
        models[f"{cell} H{plan.sample_hidden}"] = trainer.checkpoint()
    results = {}
    for label, ckpt in models.items():
        params, cfg, vocab = ckpt.inference_params(), ckpt.model_config, ckpt.vocab
        rates, lengths = {}, []
        for n in plan.sample_ns:
            calls = max(1, plan.sample_calls // n)  # several calls for the small N, so each timing is long enough
            times = []
            for rep in range(plan.reps):
                rng = np.random.default_rng(rep)
                start = time.perf_counter()
                for _ in range(calls):
                    out = sampling.sample(params, cfg, vocab, n, rng)
                times.append((time.perf_counter() - start) / calls)
                lengths.extend(len(name) for name in out)
            rates[str(n)] = n / statistics.median(times)
        results[label] = {"ns": rates, "mean_length": float(np.mean(lengths)), "cell": cfg.cell,
                          "hidden": cfg.hidden}
    print(json.dumps(results))


def memory_worker(data_path: str, steps: int, hidden: int) -> None:
    """Train through the library as `dinogen train` does; print the peak RSS (MB) of this process."""
    import resource

    from dinogen.data import read_names
    from dinogen.config import TrainConfig
    from dinogen.train import Trainer

    trainer = Trainer(read_names(data_path), TrainConfig(hidden=hidden, batch_size=64, steps=steps, eval_every=10**9))
    trainer.run()
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes on Linux
    print(json.dumps({"peak_rss_mb": peak_kb / 1024, "names": len(trainer.data), "steps": trainer.step}))


# ---------------------------------------------------------------- the parent: plan, alternate, report


class Worker:
    """A long-lived train_worker child answering one repetition per request."""

    def __init__(self, kind: str, data: str, threads: int, env: dict, workers: int = 1) -> None:
        cmd = [sys.executable, __file__, "--worker", "train", "--kind", kind, "--data", data,
               "--worker-threads", str(threads), "--workers", str(workers)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     env=set_threads_env(env, threads), cwd=str(SCRIPTS))

    def rate(self, cell: str, hidden: int, batch: int, seconds: float) -> float:
        """Predictions per second of one repetition."""
        self.proc.stdin.write(json.dumps({"cell": cell, "hidden": hidden, "batch": batch, "seconds": seconds}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"benchmark worker died (exit {self.proc.wait()})")
        reply = json.loads(line)
        return reply["predictions"] / reply["seconds"]

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


def alternate(workers: dict[str, Worker], cfg: tuple, plan: Plan) -> dict[str, float]:
    """Median rate of each worker over plan.reps rounds, the workers taking turns within a round."""
    rates: dict[str, list[float]] = {name: [] for name in workers}
    for _ in range(plan.reps):
        for name, worker in workers.items():
            rates[name].append(worker.rate(*cfg, plan.rep_seconds))
            time.sleep(0.05)  # let the other process's spinning BLAS/OpenMP threads go idle
    return {name: statistics.median(r) for name, r in rates.items()}


def bench_training(data: str, plan: Plan, with_torch: bool, rows: list, notes: list, log) -> None:
    env = child_env()
    counts = sorted({*plan.parallel, *([os.cpu_count()] if (os.cpu_count() or 1) > max(plan.parallel) else [])})
    workers = {}
    for n in counts:  # dinogen with n processes of one BLAS thread, PyTorch with n threads
        workers[f"dinogen {n}"] = Worker("dinogen", data, 1, env, workers=n)
        if with_torch:
            workers[f"torch {n}"] = Worker("torch", data, n, env)
    try:
        for cell in CELLS:
            for hidden in plan.hiddens:
                for batch in plan.batches:
                    med = alternate(workers, (cell, hidden, batch), plan)
                    for n in counts:
                        peer = med.get(f"torch {n}")
                        rows.append(row("train", f"{cell} H{hidden} B{batch}, {n} worker{'s' * (n > 1)} / "
                                        f"{n} thread{'s' * (n > 1)}", med[f"dinogen {n}"], peer, "preds/s",
                                        "PyTorch" if peer else None))
                        log(rows[-1])
                    for n in counts[1:]:
                        rows.append(row("train", f"{cell} H{hidden} B{batch}, {n} workers against 1",
                                        med[f"dinogen {n}"], med["dinogen 1"], "preds/s", "dinogen, 1 worker"))
                        log(rows[-1])
    finally:
        for worker in workers.values():
            worker.close()
    course = {"dinogen": Worker("dinogen", data, 1, env), "course": Worker("course", data, 1, env)}
    try:
        med = alternate(course, ("rnn", plan.course_hidden, plan.batches[len(plan.batches) // 2]), plan)
    finally:
        for worker in course.values():
            worker.close()
    rows.append(row("train", f"rnn H{plan.course_hidden} B{plan.batches[len(plan.batches) // 2]}, 1 thread",
                    med["dinogen"], med["course"], "preds/s", "course-style"))
    log(rows[-1])
    if not with_torch:
        notes.append("PyTorch peer skipped: " + ("disabled by --no-torch." if torch_installed()
                                                 else "torch is not installed (pip install -e '.[bench]')."))


def run_worker(*args: str) -> dict:
    """Run a one-shot worker of this script on one BLAS thread; its JSON reply.

    A worker that fails stops the benchmark with the worker's own error output.
    """
    done = subprocess.run([sys.executable, __file__, "--worker", *args], capture_output=True, text=True,
                          env=set_threads_env(child_env(), 1), cwd=str(SCRIPTS))
    if done.returncode != 0:
        raise RuntimeError(f"benchmark worker {args[0]} failed (exit {done.returncode}):\n{done.stderr}")
    return json.loads(done.stdout)


def bench_sampling(data: str, plan_name: str, model: Path, rows: list, log) -> None:
    out = run_worker("sample", "--data", data, "--plan", plan_name, "--model", str(model))
    for label, result in out.items():
        for n, rate in result["ns"].items():
            rows.append(row("sample", f"{label} ({result['cell']} H{result['hidden']}), N={int(n):,}, "
                                      f"mean {result['mean_length']:.1f} chars", rate, None, "names/s"))
            log(rows[-1])


def bench_cli(model: Path, plan: Plan, rows: list, log) -> None:
    """Wall time of `dinogen sample --n 10` as a process, beside `python -c "import numpy"`."""
    exe = shutil.which("dinogen", path=str(Path(sys.executable).parent))
    dinogen_cmd = [exe] if exe else [sys.executable, "-m", "dinogen"]
    from dinogen.resources import ASSETS

    bundled = (ASSETS / "default.npz").is_file()
    cmds = {
        "dinogen": dinogen_cmd + ["sample", "--n", "10"] + ([] if bundled else ["-c", str(model)]),
        "numpy": [sys.executable, "-c", "import numpy"],
    }
    times: dict[str, list[float]] = {name: [] for name in cmds}
    env = child_env()
    with tempfile.TemporaryDirectory() as cwd:  # no ./dinogen.npz to pick up
        for _ in range(plan.cli_reps + 1):
            for name, cmd in cmds.items():
                start = time.perf_counter()
                subprocess.run(cmd, check=True, capture_output=True, cwd=cwd, env=env)
                times[name].append(time.perf_counter() - start)
    med = {name: statistics.median(t[1:] if len(t) > 1 else t) for name, t in times.items()}  # first run warms caches
    rows.append(row("cli", "dinogen sample --n 10 (s)" + ("" if bundled else ", -c temp default model"),
                    med["dinogen"], med["numpy"], "s", 'python -c "import numpy"'))
    log(rows[-1])


def bench_memory(data: str, plan: Plan, rows: list, log) -> None:
    """Peak RSS of training on the data and on a generated file of plan.memory_names names."""
    with tempfile.TemporaryDirectory() as tmp:
        generated = Path(tmp) / "generated.txt"
        write_generated_names(generated, plan.memory_names)
        for label, path in ((Path(data).name, data), (f"{plan.memory_names:,} generated names", str(generated))):
            out = run_worker("memory", "--data", path, "--steps", str(plan.memory_steps),
                             "--hidden", str(max(plan.hiddens)))
            rows.append(row("memory", f"train on {label} ({out['names']:,} names, {out['steps']} steps, "
                                      f"H{max(plan.hiddens)} B64) peak RSS", out["peak_rss_mb"], None, "MB"))
            log(rows[-1])


def write_generated_names(path: Path, count: int, seed: int = 7) -> None:
    """count random capitalised names of 3 to 16 letters, one per line."""
    import numpy as np

    rng = np.random.default_rng(seed)
    lengths = rng.integers(3, 17, count)
    letters = rng.integers(0, 26, int(lengths.sum())).astype(np.uint8) + ord("a")
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    letters[starts] -= 32  # capital first letter
    text = letters.tobytes().decode("ascii")
    bounds = np.append(starts, len(text))
    path.write_text("\n".join(text[bounds[i] : bounds[i + 1]] for i in range(count)) + "\n")


def default_model(data: str, tmp: Path, plan_name: str, notes: list) -> Path:
    """The bundled model, or a default model trained now to a temporary file."""
    from dinogen.resources import ASSETS

    bundled = ASSETS / "default.npz"
    if bundled.is_file():
        return bundled
    path = tmp / "default.npz"
    steps = ["--steps", "20", "--hidden", "8"] if plan_name == "tiny" else []
    subprocess.run([sys.executable, "-m", "dinogen", "train", data, "-q", "-o", str(path)] + steps,
                   check=True, env=child_env(), cwd=str(tmp))
    notes.append(f"dinogen/assets/default.npz does not exist yet: sampling and CLI use a default model "
                 f"(dinogen train {Path(data).name}{' ' + ' '.join(steps) if steps else ''}) trained to a temp file.")
    return path


# ---------------------------------------------------------------- table


def row(section: str, what: str, dinogen: float, peer: float | None, unit: str, peer_name: str | None = None) -> dict:
    ratio = dinogen / peer if peer else None
    return {"section": section, "what": what, "dinogen": dinogen, "peer": peer, "peer_name": peer_name,
            "ratio": ratio, "unit": unit}


def fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if unit == "s":
        return f"{value * 1000:,.0f} ms"
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def table(rows: list[dict]) -> str:
    """The rows as one Markdown table."""
    lines = ["| section | configuration | dinogen | peer | peer value | dinogen / peer |",
             "| --- | --- | ---: | --- | ---: | ---: |"]
    for r in rows:
        ratio = "-" if r["ratio"] is None else f"{r['ratio']:.2f}x"
        lines.append(f"| {r['section']} | {r['what']} | {fmt(r['dinogen'], r['unit'])} {r['unit'] if r['unit'] != 's' else ''}"
                     f" | {r['peer_name'] or '-'} | {fmt(r['peer'], r['unit'])} | {ratio} |")
    return "\n".join(lines)


def child_env() -> dict:
    """The environment for child processes: the scripts folder importable, the rest as given."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SCRIPTS), str(ROOT), env.get("PYTHONPATH")]))
    return env


def torch_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("torch") is not None


def machine() -> dict:
    import numpy

    info = {"python": platform.python_version(), "numpy": numpy.__version__, "cpus": os.cpu_count(),
            "platform": platform.platform(), "processor": platform.processor(),
            "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
            "OPENBLAS_L2_SIZE": os.environ.get("OPENBLAS_L2_SIZE")}
    if torch_installed():
        import importlib.metadata

        info["torch"] = importlib.metadata.version("torch")
    return info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--data", default=str(ROOT / "data" / "dinos.txt"), help="names to train on")
    parser.add_argument("--json", dest="json_path", help="also write the results here as JSON")
    parser.add_argument("--quick", action="store_true", help="training at hidden 128, batch 64 only")
    parser.add_argument("--tiny", action="store_true", help="minute sizes, for the smoke test")
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch peer")
    parser.add_argument("--only", choices=["train", "sample", "cli", "memory"], action="append",
                        help="run only these sections (repeatable)")
    parser.add_argument("--worker", choices=["train", "sample", "memory"], help=argparse.SUPPRESS)
    parser.add_argument("--kind", choices=["dinogen", "torch", "course"], help=argparse.SUPPRESS)
    parser.add_argument("--worker-threads", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--plan", default="full", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--hidden", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker == "train":
        return train_worker(args.kind, args.data, args.worker_threads, args.workers)
    if args.worker == "sample":
        return sample_worker(args.data, args.plan, args.model)
    if args.worker == "memory":
        return memory_worker(args.data, args.steps, args.hidden)
    run(args)


def run(args) -> None:
    if not Path(args.data).is_file():
        sys.exit(f"bench: {args.data} does not exist; give a file of names with --data.")
    args.data = str(Path(args.data).resolve())  # the workers run in other folders
    plan_name = "tiny" if args.tiny else "quick" if args.quick else "full"
    plan = PLANS[plan_name]
    sections = args.only or ["train", "sample", "cli", "memory"]
    with_torch = torch_installed() and not args.no_torch
    rows: list[dict] = []
    notes: list[str] = []
    started = time.perf_counter()

    def log(r: dict) -> None:
        print(f"  {r['section']:7s} {r['what']}: {fmt(r['dinogen'], r['unit'])}"
              + (f" vs {fmt(r['peer'], r['unit'])} ({r['ratio']:.2f}x)" if r["ratio"] else ""), file=sys.stderr)

    with tempfile.TemporaryDirectory() as tmp:
        if "train" in sections:
            bench_training(args.data, plan, with_torch, rows, notes, log)
        if "sample" in sections or "cli" in sections:
            model = default_model(args.data, Path(tmp), plan_name, notes)
            if "sample" in sections:
                bench_sampling(args.data, plan_name, model, rows, log)
            if "cli" in sections:
                bench_cli(model, plan, rows, log)
        if "memory" in sections:
            bench_memory(args.data, plan, rows, log)
    print(table(rows))
    for note in notes:
        print(f"\nnote: {note}")
    seconds = time.perf_counter() - started
    print(f"\n{plan_name} run, {seconds:.0f} s; data {args.data}")
    if args.json_path:
        result = {"plan": plan_name, "data": args.data, "seconds": seconds, "machine": machine(),
                  "rows": rows, "notes": notes}
        Path(args.json_path).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()

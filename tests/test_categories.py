"""Names by kind: one model for several lists, conditioned on each name's category (issue #16)."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from dinogen import checkpoint, gradcheck, model, sampling, scoring
from dinogen.cli import main
from dinogen.data import encode_names, merge_categories, read_lists, read_names, split_indices
from dinogen.errors import DinogenError

from conftest import TINY, saved, trained

QUAKERS = ["Quill", "Quince", "Quartz", "Quoll", "Quest", "Quiver"]  # a small, distinctive list: all start with Qu
OTHERS = ["Anna", "Berit", "Carla", "Dora", "Elke", "Frida", "Greta", "Hanna", "Ilse", "Jana", "Karin", "Lena",
          "Mona", "Nora", "Olga", "Petra", "Rita", "Sara", "Tina", "Ulla", "Vera", "Wanda"]


def write(path, names):
    path.write_text("\n".join(names) + "\n")
    return str(path)


@pytest.fixture(scope="module")
def lists(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lists")
    return write(folder / "quakers.txt", QUAKERS), write(folder / "others.txt", OTHERS)


@pytest.fixture(scope="module")
def kinds(lists):
    """A small RNN trained on two lists: six Qu- names and 22 others."""
    return trained(read_lists(list(lists)), steps=300, lr=1e-2, val_fraction=0, eval_every=300, seed=2)


@pytest.fixture(scope="module")
def kinds_checkpoint(kinds, tmp_path_factory):
    return saved(kinds, tmp_path_factory, "kinds.npz")


def run(*args, input=None):
    return CliRunner().invoke(main, [str(arg) for arg in args], input=input)


# ---- reading lists with categories -------------------------------------------


def test_several_files_are_a_category_each_named_for_their_stem(lists):
    names = read_lists(list(lists))
    assert names.category_names == ["quakers", "others"]
    assert names.names == QUAKERS + OTHERS
    assert names.categories == [0] * len(QUAKERS) + [1] * len(OTHERS)


def test_name_equals_path_names_the_category(lists):
    names = read_lists([f"q={lists[0]}", f"rest={lists[1]}"])
    assert names.category_names == ["q", "rest"]


def test_a_tsv_file_gives_each_line_its_category_in_order_of_first_appearance(tmp_path):
    path = tmp_path / "towns.tsv"
    path.write_text("Lyon\tFR\nBonn\tDE\nNice\tFR\n")
    names = read_lists([str(path)], "tsv")
    assert names.names == ["Lyon", "Bonn", "Nice"]
    assert names.category_names == ["FR", "DE"] and names.categories == [0, 1, 0]


def test_a_category_is_found_however_its_accents_are_composed(lists, tmp_path):
    out = tmp_path / "accents.npz"
    composed, decomposed = "M\u00e9lanie", "Me\u0301lanie"
    assert run("train", f"{decomposed}={lists[0]}", lists[1], "-o", out, *TINY).exit_code == 0
    for asked in (composed, decomposed, f" {decomposed} "):
        result = run("sample", "-c", out, "--category", asked, "--n", "2", "--seed", "1")
        assert result.exit_code == 0, result.stderr


def test_one_file_without_categories_reads_as_before(lists):
    assert read_lists([lists[0]]).categories is None
    assert read_lists([lists[0]]).names == read_names(lists[0]).names


@pytest.mark.parametrize("line", ["Lyon", "Lyon\tFR\textra", "\tFR", "Lyon\t", "Lyon\t \t"])
def test_a_tsv_line_without_exactly_one_tab_between_a_name_and_a_category_is_refused_by_its_number(tmp_path, line):
    path = tmp_path / "bad.tsv"
    path.write_text(f"Bonn\tDE\n{line}\n")
    with pytest.raises(DinogenError, match=r"bad.tsv line 2 is not a name, one tab and its category"):
        read_lists([str(path)], "tsv")


def test_an_empty_category_is_refused(lists, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    with pytest.raises(DinogenError, match="the category 'empty' .* holds no names"):
        read_lists([lists[0], str(empty)])


def test_a_tsv_category_whose_every_name_is_too_long_is_refused_not_dropped(tmp_path):
    path = tmp_path / "towns.tsv"
    path.write_text(f"Lyon\tFR\n{'X' * 80}\tDE\nBonn\tAT\n")
    with pytest.raises(DinogenError, match=r"towns.tsv: every name of the category 'DE' \(line 2 and on\) is longer"):
        read_lists([str(path)], "tsv")
    path.write_text(f"Lyon\tFR\n{'X' * 80}\tDE\nBonn\tDE\n")  # one of its names is kept: the category stays
    assert read_lists([str(path)], "tsv").category_names == ["FR", "DE"]


def test_a_list_whose_every_name_is_too_long_says_so_when_refused(lists, tmp_path):
    long = tmp_path / "long.txt"
    long.write_text("X" * 80 + "\n")
    with pytest.raises(DinogenError, match=r"the category 'long' .* holds no names \(1 name was longer than the max"):
        read_lists([lists[0], str(long)])


def test_a_category_name_left_empty_before_the_equals_sign_is_refused(lists):
    with pytest.raises(DinogenError, match="the category '' is empty"):
        read_lists([f"={lists[0]}", lists[1]])
    with pytest.raises(DinogenError, match="the category '' is empty"):
        read_lists([f"={lists[0]}"])


@pytest.mark.parametrize("form", ["files", "named", "tsv"])
def test_a_model_of_one_category_is_refused(lists, tmp_path, form):
    one_label = tmp_path / "one.tsv"
    one_label.write_text("Lyon\tFR\nNice\tFR\n")
    sources, categories = {"files": ([lists[0]], "files"), "named": ([f"q={lists[0]}"], None),
                           "tsv": ([str(one_label)], "tsv")}[form]
    from dinogen.config import TrainConfig
    from dinogen.train import Trainer

    with pytest.raises(DinogenError, match="a model of categories needs two or more"):
        Trainer(read_lists(sources, categories), TrainConfig(steps=1, hidden=4))
    result = run("train", *sources, *(["--categories", categories] if categories else []), *TINY)
    assert result.exit_code == 1 and "needs two or more" in result.stderr and result.stdout == ""


def test_eval_scores_the_file_of_one_category_under_that_category(lists, kinds_checkpoint):
    result = run("eval", f"quakers={lists[0]}", "-c", kinds_checkpoint)
    assert result.exit_code == 0, result.stderr
    assert "quakers:" in result.stdout and "accuracy" in result.stdout


def test_eval_of_a_category_the_model_lacks_is_a_usage_error_as_in_sample(lists, kinds_checkpoint):
    for result in (run("eval", f"pirates={lists[0]}", "-c", kinds_checkpoint),
                   run("sample", "-c", kinds_checkpoint, "--category", "pirates")):
        assert result.exit_code == 2
        assert "the model has no category 'pirates'" in result.stderr


def test_eval_of_several_files_names_the_file_of_an_unseen_character(lists, kinds_checkpoint, tmp_path):
    odd = write(tmp_path / "odd.txt", ["Qu#x"])
    result = run("eval", f"quakers={lists[0]}", f"others={odd}", "-c", kinds_checkpoint)
    assert result.exit_code == 1
    assert f"Error: {odd} line 1 ('Qu#x') has the character '#'" in result.stderr


def test_a_category_named_twice_is_refused(lists, tmp_path):
    other = tmp_path / "b" / "quakers.txt"
    other.parent.mkdir()
    other.write_text("Rex\n")
    with pytest.raises(DinogenError, match="the category 'quakers' is named twice"):
        read_lists([lists[0], str(other)])


def test_tsv_with_several_files_is_refused(lists):
    with pytest.raises(DinogenError, match="--categories tsv reads one file"):
        read_lists(list(lists), "tsv")
    result = run("train", *lists, "--categories", "tsv", *TINY)
    assert result.exit_code == 2 and "--categories tsv reads one file" in result.stderr


def test_a_category_named_on_the_command_line_is_stripped_and_normalised(lists):
    decomposed = "Zoe\u0308"  # Zoë written as e and a combining diaeresis, as macOS names files
    names = read_lists([f" {decomposed} ={lists[0]}", lists[1]])
    assert names.category_names == ["Zo\u00eb", "others"]


def test_the_command_line_turns_a_bad_category_file_into_one_sentence(tmp_path):
    result, _ = _train_tsv(tmp_path, "Bonn\tDE\nLyon FR\n")
    assert result.exit_code == 1
    assert "line 2 is not a name, one tab and its category" in result.stderr
    assert "Traceback" not in result.output


def test_training_on_a_tsv_category_of_only_long_names_is_one_sentence(tmp_path):
    result, out = _train_tsv(tmp_path, "Bonn\tDE\nLyon\tFR\nZug\tCH\n", "--max-name-length", "3")
    assert result.exit_code == 1 and result.stdout == ""
    assert "every name of the category 'DE' (line 1 and on) is longer than the maximum name length" in result.stderr
    assert "Traceback" not in result.output and not out.exists()


def _train_tsv(tmp_path, text, *flags):
    path = tmp_path / "t.tsv"
    path.write_text(text)
    out = tmp_path / "t.npz"
    return run("train", path, "--categories", "tsv", "-o", out, *TINY, *flags), out


def test_merge_keeps_line_numbers_and_counts_long_names_skipped():
    a = read_names(["Ann", "X" * 70, "Bo"])
    b = read_names(["Cy"])
    merged = merge_categories([("a", a), ("b", b)])
    assert merged.line_numbers == [1, 3, 1] and merged.skipped_long == 1


# ---- the split, the model and its gradients ----------------------------------


def test_the_split_holds_out_every_category_in_proportion():
    cats = np.array([0] * 9000 + [1] * 100 + [2] * 900)
    _, val = split_indices(len(cats), 0.1, seed=0, categories=cats)
    assert np.bincount(cats[val]).tolist() == [900, 10, 90]


def test_the_split_of_many_small_categories_holds_out_the_fraction_asked_not_one_of_each():
    cats = np.repeat(np.arange(20), 2)  # 20 categories of 2 names
    _, val = split_indices(len(cats), 0.1, seed=0, categories=cats)
    assert len(val) == 4 and np.bincount(cats[val]).max() == 1


def test_a_prefix_draws_each_category_as_often_as_names_of_it_start_so(kinds):
    ckpt = kinds.checkpoint()
    spec = sampling.SampleSpec(prefix="Qu")
    chunks = sampling.generate(ckpt.inference_params(), ckpt.model_config, ckpt.vocab, 100, spec, seed=1,
                               categories=ckpt.categories)
    drawn = [c for chunk in chunks for c in chunk.categories]
    assert drawn.count("quakers") > 80  # "Qu" is a quaker's start; the training share alone would give 21


def test_gradcheck_covers_a_conditioned_model_of_every_cell_with_dropout():
    configs = [cfg for cfg in gradcheck.standard_configs(("rnn", "gru", "lstm"), (1, 2)) if cfg.categories]
    assert {cfg.cell for cfg in configs} == {"rnn", "gru", "lstm"} and all(cfg.dropout for cfg in configs)
    for cfg in configs:
        results = gradcheck.check_model(cfg)
        assert "W_cat" in {r.name for r in results}
        assert all(r.passed for r in results), [r for r in results if not r.passed]


def test_a_broken_category_gradient_is_caught(monkeypatch):
    def unaccumulated(da, cache):  # = instead of +=: the names of one category do not add up
        cats, shape = cache
        dW_cat = np.zeros(shape, da.dtype)
        dW_cat[cats] = da.sum(axis=0)
        return dW_cat

    monkeypatch.setattr(model, "category_backward", unaccumulated)
    cfg = model.ModelConfig(7, "rnn", 5, 1, embed_dim=4, categories=2)
    rows = {r.name: r for r in gradcheck.check_model(cfg, lengths=(7, 2, 5, 1, 4, 3, 6))}
    assert not rows["W_cat"].passed


def test_two_workers_give_the_category_gradient_of_one(lists):
    from dinogen.config import TrainConfig
    from dinogen.data import make_batch
    from dinogen.train import Trainer

    names = read_lists(list(lists))
    trainer = Trainer(names, TrainConfig(cell="gru", hidden=8, embed_dim=4, dropout=0.0, batch_size=28, steps=2,
                                         eval_every=2, workers=2))
    batch = make_batch(trainer.data, trainer.schedule[0])
    nll, cache = model.forward(trainer.params, trainer.model_cfg, batch)
    alone = model.backward(np.full_like(nll, 1.0 / len(nll)), cache)["W_cat"]
    with trainer.workers_running():
        trainer.shared.gradients(0)
        shared = trainer.shared.summed_gradient()["W_cat"].copy()
    assert np.abs(alone).max() > 0
    np.testing.assert_allclose(shared, alone, rtol=1e-5, atol=1e-7)


# ---- the trained model: sampling, scoring, classifying -----------------------


def test_sampling_a_category_writes_names_of_that_category(kinds):
    cfg, table = kinds.model_cfg, kinds.checkpoint().categories
    spec = sampling.SampleSpec(category="quakers")
    chunks = list(sampling.generate(kinds.best or kinds.params, cfg, kinds.vocab, 20, spec, seed=4, categories=table))
    names = [name for chunk in chunks for name in chunk.names]
    assert {c for chunk in chunks for c in chunk.categories} == {"quakers"}
    assert sum(name.startswith("Qu") for name in names) >= 18


def test_without_a_category_each_name_is_drawn_under_one_in_the_training_shares(kinds_checkpoint):
    result = run("sample", "-c", kinds_checkpoint, "--n", "200", "--seed", "1", "--json")
    assert result.exit_code == 0
    records = [json.loads(line) for line in result.stdout.splitlines()]
    share = sum(r["category"] == "quakers" for r in records) / len(records)
    assert 0.1 < share < 0.35  # 6 of 28 names: 0.21
    quakers = [r["name"] for r in records if r["category"] == "quakers"]
    assert sum(name.startswith("Qu") for name in quakers) >= 0.8 * len(quakers)


def test_a_sampled_logprob_is_what_score_gives_under_its_category(kinds_checkpoint):
    sampled = json.loads(run("sample", "-c", kinds_checkpoint, "--n", "1", "--seed", "3", "--json",
                             "--category", "others").stdout)
    scored = json.loads(run("score", "-c", kinds_checkpoint, sampled["name"], "--category", "others", "--json").stdout)
    assert scored["logprob"] == pytest.approx(sampled["logprob"], abs=1e-4)
    assert scored["category"] == "others"


def test_score_without_a_category_is_the_mixture_over_the_categories(kinds):
    ckpt = kinds.checkpoint()
    params, cfg, table = ckpt.inference_params(), ckpt.model_config, ckpt.categories
    data = encode_names(["Quill", "Anna"], ckpt.vocab)
    per_category = scoring.logprob_by_category(params, cfg, data)
    mixture = scoring.score_names(params, cfg, ckpt.vocab, ["Quill", "Anna"], priors=table.priors).scored.logprob
    np.testing.assert_allclose(np.exp(mixture), np.exp(per_category) @ table.priors, rtol=1e-6)


def test_classify_ranks_a_name_of_the_small_distinctive_category_first_and_posteriors_sum_to_1(kinds_checkpoint):
    result = run("classify", "-c", kinds_checkpoint, "Quoll", "Marta", "--json")  # a name of the six, and not
    assert result.exit_code == 0
    first, second = [json.loads(line) for line in result.stdout.splitlines()]
    assert first["categories"][0]["category"] == "quakers"
    assert second["categories"][0]["category"] == "others"
    for record in (first, second):
        assert sum(c["posterior"] for c in record["categories"]) == pytest.approx(1.0)


def test_classify_prints_tab_separated_categories_likeliest_first_and_reads_stdin(kinds_checkpoint):
    result = run("classify", "-c", kinds_checkpoint, "--top", "1", input="Quince\n")
    assert result.exit_code == 0
    name, category, posterior = result.stdout.strip().split("\t")
    assert (name, category) == ("Quince", "quakers") and 0.5 < float(posterior) <= 1


def test_a_uniform_prior_moves_the_posterior_towards_the_small_category(kinds_checkpoint):
    def quakers(*flags):
        record = json.loads(run("classify", "-c", kinds_checkpoint, "Mara", "--json", *flags).stdout)
        return next(c["posterior"] for c in record["categories"] if c["category"] == "quakers")

    assert quakers("--uniform-prior") > quakers()


def test_classify_dash_alone_reads_stdin_and_beside_names_is_a_usage_error(kinds_checkpoint):
    alone = run("classify", "-", "-c", kinds_checkpoint, input="Quest\n")
    assert alone.exit_code == 0 and alone.stdout.split("\t")[0] == "Quest"
    mixed = run("classify", "quark", "-", "-c", kinds_checkpoint, input="quark\n")
    assert mixed.exit_code == 2 and mixed.stdout == "" and "cannot go with names given as arguments" in mixed.stderr


def test_classify_on_a_model_of_one_list_is_one_sentence(small_checkpoint):
    result = run("classify", "-c", small_checkpoint, "Rex")
    assert result.exit_code == 1 and "trained on one list" in result.stderr


def test_eval_with_categories_reports_each_one_and_the_accuracy(kinds_checkpoint, lists):
    result = run("eval", *lists, "-c", kinds_checkpoint, "--json")
    assert result.exit_code == 0
    report = json.loads(result.stdout)
    assert set(report["categories"]) == {"quakers", "others"}
    assert report["accuracy"] > report["majority_accuracy"] == pytest.approx(len(OTHERS) / (len(OTHERS) + 6))
    assert report["categories"]["quakers"]["names"] == len(QUAKERS)


def test_an_unknown_category_names_the_models_categories(kinds_checkpoint):
    for args in (["sample", "--category", "dinos"], ["score", "Rex", "--category", "dinos"]):
        result = run(*args, "-c", kinds_checkpoint)
        assert result.exit_code == 2 and "its categories are quakers, others" in result.stderr


def test_a_category_for_a_model_of_one_list_is_a_usage_error(small_checkpoint):
    result = run("sample", "-c", small_checkpoint, "--category", "boys")
    assert result.exit_code == 2 and "trained on one list" in result.stderr


def test_the_likeliest_names_of_a_category_are_of_that_category(kinds_checkpoint):
    result = run("sample", "-c", kinds_checkpoint, "--likeliest", "3", "--category", "quakers", "--json")
    assert result.exit_code == 0
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert all(r["category"] == "quakers" and r["name"].startswith("Qu") for r in records)


# ---- the checkpoint ------------------------------------------------------------


def test_info_lists_the_categories_with_their_counts(kinds_checkpoint):
    result = run("info", kinds_checkpoint)
    assert result.exit_code == 0 and "quakers 6, others 22" in result.stdout


def test_a_conditioned_checkpoint_keeps_each_names_category_and_format_2(kinds_checkpoint):
    ckpt = checkpoint.load(kinds_checkpoint)
    assert ckpt.meta["format_version"] == 2 and ckpt.model_config.categories == 2
    assert ckpt.data.categories.tolist() == [0] * len(QUAKERS) + [1] * len(OTHERS)


def test_a_run_of_one_list_says_nothing_of_categories_in_its_summary(tmp_path, lists):
    result = run("train", lists[1], "-o", tmp_path / "o.npz", "--json", *TINY)
    assert result.exit_code == 0 and "categories" not in json.loads(result.stdout)


def test_a_checkpoint_of_one_list_is_written_and_read_as_before(small_checkpoint):
    ckpt = checkpoint.load(small_checkpoint)
    assert ckpt.meta["format_version"] == 1 and "categories" not in ckpt.meta
    assert "categories" not in ckpt.meta["model"] and ckpt.categories is None


def test_the_bundled_model_of_an_earlier_version_still_loads_and_samples():
    result = run("sample", "--n", "3", "--seed", "1")
    assert result.exit_code == 0 and len(result.stdout.splitlines()) == 3


@pytest.mark.parametrize("table, problem", [
    ([{"name": "quakers", "names": 6}], "does not list the model's 2 categories"),
    ([{"name": "quakers", "names": 6}, {"name": "quakers", "names": 22}], "names a category twice"),
    ([{"name": "quakers", "names": 6}, {"name": "", "names": 22}], "which is no category name"),
    ([{"name": "quakers", "names": -1}, {"name": "others", "names": 22}], "expected a name and a count"),
    ([{"name": "quakers", "names": 0}, {"name": "others", "names": 22}], "expected a name and a count"),
    ([{"name": "quakers", "names": 10**400}, {"name": "others", "names": 22}], "expected a name and a count"),
    ([{"name": "quakers", "names": 7}, {"name": "others", "names": 21}], "counts of names are not those"),
    ([{"name": "quakers ", "names": 6}, {"name": "others", "names": 22}], "not written as read"),
    (None, "has 2 categories but no category table"),
])
def test_a_damaged_category_table_is_one_sentence(kinds, tmp_path, table, problem):
    ckpt = kinds.checkpoint()
    if table is None:
        del ckpt.meta["categories"]
    else:
        ckpt.meta["categories"] = table
    path = tmp_path / "bad.npz"
    checkpoint.save(path, ckpt)
    with pytest.raises(DinogenError, match=problem):
        checkpoint.load(path)


def test_names_categories_outside_the_table_are_refused(kinds, tmp_path):
    ckpt = kinds.checkpoint()
    ckpt.data.categories = ckpt.data.categories + 5
    path = tmp_path / "bad.npz"
    checkpoint.save(path, ckpt)
    with pytest.raises(DinogenError, match="data/categories holds categories outside 0 to 1"):
        checkpoint.load(path)


def test_resuming_needs_the_same_lists_in_the_same_order(lists, tmp_path):
    out = tmp_path / "r.npz"
    assert run("train", *lists, "-o", out, *TINY).exit_code == 0
    swapped = run("train", lists[1], lists[0], "--resume", out, "-o", out, "--steps", "5", "-q")
    assert swapped.exit_code == 1 and "is not the data this checkpoint was trained on" in swapped.stderr
    same = run("train", *lists, "--resume", out, "-o", out, "--steps", "5", "-q")
    assert same.exit_code == 0

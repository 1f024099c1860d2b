"""The summary of a sampled batch against the training data (sample --report)."""

import pytest

from dinogen import batch_report as report


def test_a_batch_summary_counts_unique_and_novel_names_and_lengths():
    summary = report.batch_summary(["Abcd", "Abcd", "Efghij", "Klm"], training_names=["Abcd", "Xy"])
    assert summary.names == 4
    assert summary.unique_share == 3 / 4
    assert summary.novel_share == 2 / 4
    assert summary.mean_length == pytest.approx((4 + 4 + 6 + 3) / 4)
    assert summary.training_mean_length == 3.0


def test_without_training_names_the_comparisons_are_unknown():
    summary = report.batch_summary(["Rexosaurus", "Bobosaurus"])
    assert summary.novel_share is None and summary.training_mean_length is None
    assert summary.endings[0].training_share is None


def test_the_dominant_ending_is_counted_once_at_its_full_length():
    names = ["Alosaurus", "Brontosaurus", "Stegosaurus", "Titanosaurus", "Icarus", "Iguanodon", "Trodon", "Ceratops"]
    endings = dict(report.common_endings(names))
    assert endings["saurus"] == 4
    assert not {"aurus", "urus", "rus"} & endings.keys()


def test_a_shorter_ending_stays_when_no_longer_one_covers_it():
    names = ["Iguanodon", "Trodon", "Megaladon", "Abcdon"]
    assert report.common_endings(names)[0] == ("don", 4)
    assert dict(report.common_endings(names + ["Ornithodon"]))["odon"] == 3  # 3 of 5 is not most of "don"


def test_an_ending_needs_two_names_longer_than_itself():
    assert report.common_endings(["Abcsaurus", "Rex"]) == []
    assert "saurus" not in dict(report.common_endings(["saurus", "Tosaurus"]))


def test_endings_are_compared_with_the_training_data():
    summary = report.batch_summary(["Alosaurus", "Bosaurus", "Cerops"], training_names=["Dosaurus", "Eops", "Fops", "G"])
    saurus = next(e for e in summary.endings if e.text == "saurus")
    assert saurus.share == pytest.approx(2 / 3) and saurus.training_share == pytest.approx(1 / 4)

"""Sparklines: a list of numbers as a line of block characters."""

import math

from dinogen.charts import BLOCKS, sparkline


def test_each_value_gets_one_block_from_lowest_to_highest():
    assert sparkline([0, 7, 3.5, 1]) == "▁█▅▂"


def test_a_falling_loss_curve_falls():
    line = sparkline([3.9, 3.1, 2.5, 2.2, 2.1, 2.05])
    assert line[0] == BLOCKS[-1] and line[-1] == BLOCKS[0]
    assert list(line) == sorted(line, reverse=True)


def test_more_values_than_width_are_averaged_into_buckets():
    assert sparkline([0, 0, 10, 10, 5, 5], width=3) == "▁█▅"
    assert len(sparkline(range(1000), width=40)) == 40


def test_a_shared_scale_keeps_two_lines_comparable():
    assert sparkline([1, 2], low=0, high=2) == "▅█"


def test_a_flat_line_is_drawn_at_mid_height():
    assert sparkline([2.0, 2.0, 2.0]) == "▄▄▄"


def test_missing_and_non_finite_values_are_left_out():
    assert sparkline([1.0, None, math.nan, math.inf, 0.0]) == "█▁"
    assert sparkline([]) == ""

"""Where a run stands goes into a checkpoint's metadata and comes back the same."""

import dataclasses
import json

from dinogen.run_state import RULES, RunState


def a_state() -> RunState:
    return RunState(step=120, seconds=3.5, elapsed=4.25, predictions=9_000, smooth_loss=2.1, smooth_ema=1.9,
                    smooth_norm=0.9, stale_evals=2, train_history=[(100, 2.2)], val_history=[(100, 2.3)],
                    best_val=(100, 2.3), clock_led=True)


def test_a_state_comes_back_from_its_metadata_unchanged_through_json():
    state = a_state()
    assert RunState.from_meta(json.loads(json.dumps(state.to_meta()))) == state


def test_every_number_or_flag_of_the_state_has_a_rule_for_checking_a_strangers_checkpoint():
    scalars = {f.name for f in dataclasses.fields(RunState)} - {"train_history", "val_history", "best_val"}
    assert scalars == set(RULES)


def test_every_field_of_the_state_is_written_to_the_metadata():
    written = set(a_state().to_meta())
    assert {"history", "best"} <= written and set(RULES) <= written

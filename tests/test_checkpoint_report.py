"""The rows of `dinogen info`: what a checkpoint holds."""

from dinogen import checkpoint
from dinogen import checkpoint_report as report
from dinogen.charts import BLOCKS


def test_checkpoint_rows_say_what_the_checkpoint_holds(small_checkpoint):
    rows = dict(report.checkpoint_rows(checkpoint.load(small_checkpoint)))
    assert rows["cell"] == "rnn, 1 layer of 32 hidden units"
    assert rows["format"] == "dinogen-checkpoint version 1"
    assert "1,424 names" in rows["data"] and len(rows["data sha256"]) == 17
    assert rows["training names"].startswith("stored")
    assert rows["training"].startswith("300 steps")
    assert "nats/char at step" in rows["best validation loss"]


def test_checkpoint_rows_say_when_no_names_were_held_out(small_checkpoint):
    ckpt = checkpoint.load(small_checkpoint)
    ckpt.meta["best"], ckpt.meta["data"]["val_names"] = None, 0
    assert dict(report.checkpoint_rows(ckpt))["best validation loss"].startswith("none: no names held out")


def test_checkpoint_rows_name_an_embedding_and_dropout(small_checkpoint):
    ckpt = checkpoint.load(small_checkpoint)
    ckpt.meta["model"].update(embed_dim=16, dropout=0.2)
    assert dict(report.checkpoint_rows(ckpt))["cell"] == "rnn, 1 layer of 32 hidden units, embedding 16, dropout 0.2"


def test_checkpoint_rows_draw_both_loss_curves_on_one_scale(small_checkpoint):
    rows = dict(report.checkpoint_rows(checkpoint.load(small_checkpoint)))
    train_line, val_line = rows["training loss (smoothed)"].split()[0], rows["validation loss"].split()[0]
    assert set(train_line + val_line) <= set(BLOCKS)
    assert train_line[0] == BLOCKS[-1]  # the smoothed training loss starts at ln V, the highest point
    assert "→" in rows["validation loss"]

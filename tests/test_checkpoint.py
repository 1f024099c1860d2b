"""Checkpoints: round trips, atomic saves, and files that must be refused."""

import hashlib
import io
import json
import math
import os
import threading
import zipfile

import numpy as np
import pytest

from dinogen import checkpoint, model, scoring
from dinogen.config import WEIGHT_LIMIT
from dinogen.errors import DinogenError

from conftest import with_member


def test_round_trip_gives_identical_predictions(small_trainer, small_checkpoint):
    loaded = checkpoint.load(small_checkpoint)
    original = small_trainer.checkpoint()
    for group in ("params", "best"):
        for key, value in getattr(original, group).items():
            assert np.array_equal(getattr(loaded, group)[key], value)
    assert loaded.vocab == small_trainer.vocab
    before = small_trainer.loss_on(small_trainer.val_idx, original.inference_params())
    total, count = model.total_nll(loaded.inference_params(), loaded.model_config, small_trainer.data, small_trainer.val_idx)
    assert total / count == before


def test_metadata_records_what_is_needed_to_continue(small_checkpoint):
    meta = checkpoint.load(small_checkpoint).meta
    assert meta["format_version"] == 1  # a model of one list: as before categories existed
    assert meta["step"] == 300
    assert meta["train"]["hidden"] == 32
    assert meta["history"]["val"] and meta["data"]["sha256"]


def test_optimizer_state_is_kept(small_checkpoint):
    optim = checkpoint.load(small_checkpoint).optim
    assert int(optim["t"]) == 300
    assert "m/W_hh.0" in optim and "v/W_hh.0" in optim


def test_a_failed_save_leaves_the_previous_checkpoint_untouched(small_trainer, tmp_path, monkeypatch):
    path = tmp_path / "model.npz"
    checkpoint.save(path, small_trainer.checkpoint())
    before = path.read_bytes()

    def fail_halfway(fd):  # the bytes are written, the disk gives up before they are safe
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint.os, "fsync", fail_halfway)
    with pytest.raises(DinogenError, match="previous file, if any, is unchanged"):
        checkpoint.save(path, small_trainer.checkpoint())
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model.npz"]


def test_an_interrupt_during_save_leaves_no_partial_file(small_trainer, tmp_path, monkeypatch):
    path = tmp_path / "model.npz"

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save(path, small_trainer.checkpoint())
    assert list(tmp_path.iterdir()) == []


def test_saving_into_a_missing_folder_is_a_clear_error(small_trainer, tmp_path):
    with pytest.raises(DinogenError, match="does not exist"):
        checkpoint.save(tmp_path / "no" / "model.npz", small_trainer.checkpoint())


def test_saving_under_a_file_says_it_is_not_a_folder(small_trainer, tmp_path):
    (tmp_path / "names.txt").write_text("Rex\n")
    with pytest.raises(DinogenError, match="names.txt is a file, not a folder"):
        checkpoint.save(tmp_path / "names.txt" / "model.npz", small_trainer.checkpoint())


@pytest.mark.parametrize("ending", ["/", "/."])
def test_a_path_naming_a_folder_is_refused_not_written_as_a_file(small_trainer, tmp_path, ending):
    with pytest.raises(DinogenError, match="it names a folder"):
        checkpoint.save(f"{tmp_path / 'model.npz'}{ending}", small_trainer.checkpoint())
    assert not (tmp_path / "model.npz").exists()


def test_a_file_that_is_not_a_checkpoint_is_refused(tmp_path):
    path = tmp_path / "names.npz"
    path.write_text("Tyrannosaurus\n")
    with pytest.raises(DinogenError, match="not a dinogen checkpoint"):
        checkpoint.load(path)


def test_a_device_is_refused_as_a_checkpoint_without_reading_it():
    with pytest.raises(DinogenError, match="checkpoint /dev/zero is a device, not a file"):
        checkpoint.load("/dev/zero")


def test_an_endless_pipe_is_refused_from_its_first_bytes_and_a_pipe_of_a_checkpoint_is_read(small_checkpoint):
    import subprocess
    import sys

    def info(source: str):
        return subprocess.run(f"{sys.executable} -m dinogen info -c {source}", shell=True, executable="/bin/bash",
                              capture_output=True, text=True, timeout=60)

    endless = info("<(yes)")
    assert endless.returncode == 1 and "not a dinogen checkpoint (not even a zip archive)" in endless.stderr
    piped = info(f"<(cat {small_checkpoint})")
    assert piped.returncode == 0 and "rnn" in piped.stdout


def test_a_large_file_that_is_not_a_zip_is_refused_from_its_first_bytes(tmp_path):
    import tracemalloc

    path = tmp_path / "video.npz"
    with open(path, "wb") as file:
        file.write(b"\x00\x00\x00\x18ftypmp42")
        file.truncate(200_000_000)  # 200 MB, sparse on disk
    tracemalloc.start()
    with pytest.raises(DinogenError, match="not even a zip archive"):
        checkpoint.load(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 1_000_000  # the first bytes only, not the 200 MB


def test_an_npz_not_written_by_dinogen_is_refused(small_checkpoint, tmp_path):
    with np.load(small_checkpoint, allow_pickle=False) as npz:
        np.savez(tmp_path / "plain.npz", **{k: npz[k] for k in npz.files})
    with pytest.raises(DinogenError, match="no checksum"):
        checkpoint.load(tmp_path / "plain.npz")


def test_a_truncated_checkpoint_is_refused(small_checkpoint, tmp_path):
    path = tmp_path / "cut.npz"
    path.write_bytes(small_checkpoint.read_bytes()[:2000])
    with pytest.raises(DinogenError):
        checkpoint.load(path)


def test_a_pickled_array_is_refused_not_executed(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, meta=np.array([{"format": "dinogen-checkpoint"}], dtype=object))
    with pytest.raises(DinogenError):
        checkpoint.load(path)


def test_a_sealed_file_with_a_pickled_array_is_refused_not_executed(tmp_path):
    path = tmp_path / "evil.npz"
    buffer = io.BytesIO()  # the writer refuses object arrays outright, so seal one by hand
    with zipfile.ZipFile(buffer, "w") as archive:
        with archive.open("meta.npy", "w") as member:
            np.lib.format.write_array(member, np.array([{"boom": 1}], dtype=object), allow_pickle=True)
        archive.comment = checkpoint.DIGEST_PREFIX + b"0" * checkpoint.DIGEST_LEN
    data = buffer.getvalue()
    path.write_bytes(data[:-64] + hashlib.sha256(data[:-64]).hexdigest().encode())
    with pytest.raises(DinogenError, match="not a readable dinogen checkpoint"):
        checkpoint.load(path)


def rewrite_meta(src, dst, change):
    with np.load(src, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    meta = json.loads(str(arrays["meta"][()]))
    change(meta)
    arrays["meta"] = np.array(json.dumps(meta))
    checkpoint.write_arrays(dst, arrays)


def test_a_newer_format_says_so(small_checkpoint, tmp_path):
    path = tmp_path / "future.npz"
    rewrite_meta(small_checkpoint, path, lambda meta: meta.update(format_version=99))
    with pytest.raises(DinogenError, match="newer dinogen"):
        checkpoint.load(path)


def test_a_vocabulary_that_does_not_fit_the_output_layer_is_refused(small_checkpoint, tmp_path):
    path = tmp_path / "vocab.npz"
    rewrite_meta(small_checkpoint, path, lambda meta: meta["vocab"].pop())
    with pytest.raises(DinogenError, match="vocabulary"):
        checkpoint.load(path)


def test_a_wrongly_shaped_or_missing_parameter_is_refused(small_checkpoint, tmp_path):
    with np.load(small_checkpoint, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["param/W_hh.0"] = arrays["param/W_hh.0"][:3]
    checkpoint.write_arrays(tmp_path / "shape.npz", arrays)
    with pytest.raises(DinogenError, match="param/W_hh.0 has shape"):
        checkpoint.load(tmp_path / "shape.npz")
    del arrays["param/W_hh.0"]
    checkpoint.write_arrays(tmp_path / "missing.npz", arrays)
    with pytest.raises(DinogenError, match="missing"):
        checkpoint.load(tmp_path / "missing.npz")


def test_non_finite_weights_are_refused(small_checkpoint, tmp_path):
    with np.load(small_checkpoint, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["param/b_y"] = arrays["param/b_y"].copy()
    arrays["param/b_y"][0] = np.nan
    checkpoint.write_arrays(tmp_path / "nan.npz", arrays)
    with pytest.raises(DinogenError, match="NaN"):
        checkpoint.load(tmp_path / "nan.npz")


def test_checkpoint_is_a_plain_npz_that_numpy_reads_without_pickle(small_checkpoint):
    with zipfile.ZipFile(small_checkpoint) as archive:
        names = archive.namelist()
        assert archive.comment.startswith(checkpoint.DIGEST_PREFIX)
    assert "meta.npy" in names and "param/W_xh.0.npy" in names and "best/W_xh.0.npy" in names


def load_arrays(path):
    with np.load(path, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def test_the_training_names_are_stored_compactly_and_read_back(small_trainer, small_checkpoint):
    arrays = load_arrays(small_checkpoint)
    assert arrays["data/codes"].dtype == np.uint8 and arrays["data/offsets"].dtype == np.int64
    assert checkpoint.load(small_checkpoint).training_names() == small_trainer.names.names


def test_the_stored_names_cover_the_validation_split_too(small_trainer, small_checkpoint):
    stored = set(checkpoint.load(small_checkpoint).training_names())
    held_out = {small_trainer.names.names[i] for i in small_trainer.val_idx}
    assert held_out and held_out <= stored


def test_a_checkpoint_without_training_names_still_loads(small_checkpoint, tmp_path):
    arrays = load_arrays(small_checkpoint)
    del arrays["data/codes"], arrays["data/offsets"]
    checkpoint.write_arrays(tmp_path / "old.npz", arrays)
    loaded = checkpoint.load(tmp_path / "old.npz")
    assert loaded.data is None and loaded.training_names() is None


@pytest.mark.parametrize("damage, message", [
    (lambda a: a.pop("data/offsets"), "not data/offsets"),
    (lambda a: a.update({"data/codes": a["data/codes"].astype(np.int16)}), "data/codes has shape"),
    (lambda a: a.update({"data/offsets": a["data/offsets"].astype(np.float64)}), "data/offsets has shape"),
    (lambda a: a.update({"data/offsets": a["data/offsets"][::-1].copy()}), "does not cut"),
    (lambda a: a.update({"data/codes": np.full_like(a["data/codes"], 250)}), "outside the vocabulary"),
    (lambda a: a.update({"data/codes": np.zeros_like(a["data/codes"])}), "outside the vocabulary"),
])
def test_damaged_training_names_are_refused(small_checkpoint, tmp_path, damage, message):
    arrays = load_arrays(small_checkpoint)
    damage(arrays)
    checkpoint.write_arrays(tmp_path / "damaged.npz", arrays)
    with pytest.raises(DinogenError, match=message):
        checkpoint.load(tmp_path / "damaged.npz")


def test_a_name_count_that_disagrees_with_the_metadata_is_refused(small_checkpoint, tmp_path):
    arrays = load_arrays(small_checkpoint)
    arrays["data/offsets"] = arrays["data/offsets"][:-1].copy()
    arrays["data/offsets"][-1] = len(arrays["data/codes"])
    checkpoint.write_arrays(tmp_path / "count.npz", arrays)
    with pytest.raises(DinogenError, match="the metadata"):
        checkpoint.load(tmp_path / "count.npz")


    with np.load(small_checkpoint, allow_pickle=False) as npz:
        assert npz["param/b_y"].dtype == np.float32


def test_concurrent_saves_to_one_path_always_leave_a_valid_file(small_trainer, tmp_path):
    path = tmp_path / "shared.npz"
    ckpt = small_trainer.checkpoint()
    errors = []

    def writer():
        try:
            for _ in range(5):
                checkpoint.save(path, ckpt)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert checkpoint.load(path).meta["step"] == ckpt.meta["step"]
    assert [p.name for p in tmp_path.iterdir()] == ["shared.npz"]


def test_a_saved_checkpoint_has_ordinary_file_permissions(small_trainer, tmp_path):
    path = tmp_path / "mode.npz"
    mask = os.umask(0o022)
    try:
        checkpoint.save(path, small_trainer.checkpoint())
    finally:
        os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o644


def test_a_checkpoint_written_over_a_private_one_stays_private(small_trainer, tmp_path):
    path = tmp_path / "private.npz"
    checkpoint.save(path, small_trainer.checkpoint())
    path.chmod(0o600)  # it holds the training names
    checkpoint.save(path, small_trainer.checkpoint())
    assert path.stat().st_mode & 0o777 == 0o600


def test_a_checkpoint_written_over_another_takes_its_read_and_write_bits_never_setuid(small_trainer, tmp_path):
    path = tmp_path / "odd.npz"
    checkpoint.save(path, small_trainer.checkpoint())
    path.chmod(0o6750)
    checkpoint.save(path, small_trainer.checkpoint())
    assert path.stat().st_mode & 0o7777 == 0o750


def test_a_name_at_the_file_system_s_limit_is_written(small_trainer, tmp_path):
    path = tmp_path / ("a" * 251 + ".npz")  # 255 bytes: the temporary file's name must be shorter
    checkpoint.save(path, small_trainer.checkpoint())
    assert checkpoint.is_sealed(path)


def test_another_user_s_checkpoint_in_a_sticky_folder_is_refused_before_training(small_trainer, tmp_path,
                                                                                 monkeypatch):
    folder = tmp_path / "shared"
    folder.mkdir()
    path = folder / "theirs.npz"
    checkpoint.save(path, small_trainer.checkpoint())
    folder.chmod(0o1777)  # as /tmp: only a file's owner may rename over it
    owner = path.stat().st_uid
    monkeypatch.setattr(os, "geteuid", lambda: owner + 1, raising=False)
    with pytest.raises(DinogenError, match="belongs to another user"):
        checkpoint.check_writable(path)


@pytest.mark.parametrize("name, compress", [("param/extra.npy", True), ("notes.txt", False), ("../../evil.npy", False)])
def test_a_member_the_format_does_not_define_or_a_compressed_one_is_refused_unread(small_checkpoint, tmp_path,
                                                                                  name, compress):
    path = with_member(small_checkpoint, tmp_path / "extra.npz", name, b"\0" * (1 << 20), compress)
    with pytest.raises(DinogenError, match="the format does not define|is compressed, which dinogen never writes"):
        checkpoint.load(path)


def test_a_member_the_metadata_does_not_call_for_is_refused_without_being_read(small_checkpoint, tmp_path):
    path = with_member(small_checkpoint, tmp_path / "extra.npz", "param/bomb.npy", b"\0" * 4096, False)
    with pytest.raises(DinogenError, match="it holds 'param/bomb', which its metadata does not call for"):
        checkpoint.load(path)


def _scaled(small_checkpoint, path, largest):
    """A copy of the checkpoint, sealed as dinogen seals, whose largest weight is `largest`."""
    from dataclasses import replace

    ckpt = checkpoint.load(small_checkpoint)
    factor = largest / max(float(np.abs(v).max()) for v in ckpt.params.values())
    scale = lambda group: None if group is None else {k: (v * factor).astype(v.dtype) for k, v in group.items()}  # noqa: E731
    checkpoint.save(path, replace(ckpt, params=scale(ckpt.params), best=scale(ckpt.best)))
    return path


def test_a_weight_above_the_limit_is_refused_as_no_training_writes_it(small_checkpoint, tmp_path):
    path = _scaled(small_checkpoint, tmp_path / "huge.npz", 2 * WEIGHT_LIMIT)
    with pytest.raises(DinogenError, match=r"holds a weight of 2e\+04, above the 10,000"):
        checkpoint.load(path)


def test_weights_below_the_limit_evaluate_and_sample_without_overflow_and_eval_json_stays_json(small_checkpoint, tmp_path):
    from click.testing import CliRunner

    from dinogen.cli import main

    path = _scaled(small_checkpoint, tmp_path / "large.npz", 0.9 * WEIGHT_LIMIT)
    names = tmp_path / "names.txt"
    names.write_text("Tyrannosaurus\nAnkylosaurus\n")
    result = CliRunner().invoke(main, ["eval", str(names), "-c", str(path), "--json"])
    assert result.exit_code == 0
    report = json.loads(result.stdout, parse_constant=lambda c: pytest.fail(f"{c} is not JSON"))
    assert report["nll"] > scoring.MAX_EXPONENT and report["perplexity"] is None  # exp(nll) is beyond a float
    text = CliRunner().invoke(main, ["eval", str(names), "-c", str(path)])
    assert text.exit_code == 0 and "perplexity inf" in text.stdout
    sampled = CliRunner().invoke(main, ["sample", "-c", str(path), "--n", "3"])
    assert sampled.exit_code == 0 and len(sampled.stdout.splitlines()) == 3 and "Traceback" not in sampled.output


def test_info_json_writes_a_nan_in_a_hand_written_metadata_field_as_null(small_checkpoint, tmp_path):
    from dataclasses import replace

    from click.testing import CliRunner

    from dinogen.cli import main

    ckpt = checkpoint.load(small_checkpoint)
    path = tmp_path / "nan.npz"
    checkpoint.save(path, replace(ckpt, meta={**ckpt.meta, "dinogen_version": math.nan}))
    result = CliRunner().invoke(main, ["info", "-c", str(path), "--json"])
    assert result.exit_code == 0
    info = json.loads(result.stdout, parse_constant=lambda c: pytest.fail(f"{c} is not JSON"))
    assert info["dinogen_version"] is None

"""Training steps shared by worker processes: the same gradients, reproducible runs, exact
resumes, one sentence when a worker fails, and no process or shared memory left behind."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from dinogen import checkpoint, model, optim, parallel
from dinogen.cli import main
from dinogen.config import TrainConfig
from dinogen.data import make_batch, read_names
from dinogen.recipe import GATES, workers_for
from dinogen.resume import resume
from dinogen.train import Trainer

from conftest import BUNDLED_NAMES

NAMES = read_names(BUNDLED_NAMES)
SMALL = dict(cell="lstm", hidden=16, embed_dim=8, batch_size=32, eval_every=10)


def children(pid: int = os.getpid()) -> set[int]:
    """The processes whose parent is pid."""
    found = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found |= {int(child) for child in (task / "children").read_text().split()}
    return found


def shared_segments() -> set[str]:
    return set(os.listdir("/dev/shm")) if os.path.isdir("/dev/shm") else set()


def relative(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / max(1e-12, np.linalg.norm(a) + np.linalg.norm(b)))


@pytest.mark.parametrize("loss_per", ["char", "name"])
@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_two_workers_give_the_gradient_of_one_up_to_float32_rounding(cell, loss_per):
    trainer = Trainer(NAMES, TrainConfig(**{**SMALL, "cell": cell}, dropout=0.0, steps=5, loss_per=loss_per, workers=2))
    batch = make_batch(trainer.data, trainer.schedule[0])
    nll, cache = model.forward(trainer.params, trainer.model_cfg, batch)
    per = len(nll) if loss_per == "char" else batch.x.shape[1]
    alone = model.backward(np.full_like(nll, 1.0 / per), cache)
    with trainer.workers_running():
        loss, norm, predictions = trainer.shared.gradients(0)
        shared = {name: g.copy() for name, g in trainer.shared.summed_gradient().items()}
    assert predictions == batch.n_predictions
    assert abs(loss - float(nll.mean())) < 1e-6 * abs(loss)
    assert abs(norm - float(np.sqrt(sum(np.vdot(g, g) for g in alone.values())))) < 1e-5 * norm
    for name in alone:
        assert relative(alone[name], shared[name]) < 1e-6, name


def test_the_same_seed_and_workers_give_the_same_parameters_bit_for_bit():
    runs = []
    for _ in range(2):
        trainer = Trainer(NAMES, TrainConfig(**SMALL, dropout=0.3, steps=25, workers=2))
        trainer.run()
        runs.append(trainer)
    for name in runs[0].params:
        assert np.array_equal(runs[0].params[name], runs[1].params[name]), name
    assert runs[0].best_val == runs[1].best_val


def test_workers_updating_their_slices_in_pieces_give_the_parameters_of_one_piece(monkeypatch):
    runs = []
    for chunk in (100, 10**9):  # the 16 x 64 weights of W_hh in pieces of 100 entries, across the workers' slices
        monkeypatch.setattr(optim, "ADAM_CHUNK", chunk)
        trainer = Trainer(NAMES, TrainConfig(**SMALL, dropout=0.3, weight_decay=0.1, steps=15, workers=2))
        trainer.run()
        runs.append(trainer.params)
    for name in runs[0]:
        assert np.array_equal(runs[0][name], runs[1][name]), name


@pytest.mark.parametrize("settings", [dict(), dict(optimizer="sgd", lr=0.5, clip_mode="value", clip=0.05),
                                      dict(clip=0.0, loss_per="name", lr=3e-4)])
def test_without_dropout_two_workers_train_as_one_does_up_to_rounding(settings):
    params = {}
    for workers in (1, 2):
        trainer = Trainer(NAMES, TrainConfig(**SMALL, dropout=0.0, steps=20, workers=workers, **settings))
        trainer.run()
        params[workers] = trainer.params
    for name in params[1]:
        assert relative(params[1][name], params[2][name]) < 1e-5, name


def test_a_batch_of_fewer_names_than_processes_still_trains():
    trainer = Trainer(NAMES, TrainConfig(**{**SMALL, "batch_size": 2}, steps=3, workers=3))
    trainer.run()
    assert trainer.step == 3 and children() == set()


def test_an_interrupted_run_with_workers_resumes_bit_for_bit(tmp_path):
    cfg = TrainConfig(**SMALL, dropout=0.3, steps=40, workers=2)
    whole = Trainer(NAMES, cfg)
    whole.run()
    interrupted = Trainer(NAMES, cfg)
    interrupted.run(should_stop=lambda: interrupted.step >= 17)
    path = tmp_path / "half.npz"
    checkpoint.save(path, interrupted.checkpoint())
    continued, _ = resume(NAMES, checkpoint.load(path), {})
    assert continued.cfg.workers == 2
    continued.run()
    for name in whole.params:
        assert np.array_equal(whole.params[name], continued.params[name]), name
    assert continued.best_val == whole.best_val


def test_a_checkpoint_from_before_workers_resumes_with_one(tmp_path):
    trainer = Trainer(NAMES, TrainConfig(**SMALL, steps=5, workers=1))
    trainer.run()
    ckpt = trainer.checkpoint()
    del ckpt.meta["train"]["workers"]
    path = tmp_path / "old.npz"
    checkpoint.save(path, ckpt)
    continued, _ = resume(NAMES, checkpoint.load(path), {"steps": 8})
    assert continued.cfg.workers == 1


def test_a_run_leaves_no_process_and_no_shared_memory_segment():
    before = shared_segments()
    trainer = Trainer(NAMES, TrainConfig(**SMALL, steps=12, workers=2))
    seen = []
    trainer.run(on_progress=lambda p: seen.append(children()))
    assert all(len(found) == 1 for found in seen)  # one worker beside this process during the run
    assert children() == set() and shared_segments() == before
    assert all(p.base is None for p in trainer.params.values())  # private memory again


def killing_worker_at(step: int):
    """An on_progress callback that kills the worker with SIGKILL after `step` steps."""

    def on_progress(p):
        if p.step == step:
            for pid in children():
                os.kill(pid, signal.SIGKILL)

    return on_progress


def test_a_killed_worker_stops_the_run_with_one_sentence_and_leaves_it_resumable():
    trainer = Trainer(NAMES, TrainConfig(**SMALL, steps=30, workers=2))
    with pytest.raises(parallel.WorkerFailed, match=r"worker process 1 \(pid \d+\) was killed by SIGKILL at step 6") as err:
        trainer.run(on_progress=killing_worker_at(5))
    assert err.value.consistent and trainer.step == 5
    assert children() == set()
    trainer.checkpoint()  # every weight finite, the state of step 5


def failing_in_the_worker(monkeypatch, error: BaseException):
    real = parallel.SharedSteps._gradients

    def gradients(self, k, step):
        if k == 1 and step == 3:
            raise error
        real(self, k, step)

    monkeypatch.setattr(parallel.SharedSteps, "_gradients", gradients)  # before the fork: the worker has it too


def test_a_worker_that_raises_stops_the_run_with_its_error_in_one_sentence(monkeypatch):
    failing_in_the_worker(monkeypatch, ValueError("a bug"))
    trainer = Trainer(NAMES, TrainConfig(**SMALL, steps=30, workers=2))
    with pytest.raises(parallel.WorkerFailed, match=r"failed at step 4 \(ValueError: a bug\)"):
        trainer.run()
    assert children() == set() and trainer.step == 3


def test_a_worker_out_of_memory_is_the_out_of_memory_sentence(monkeypatch, tmp_path):
    failing_in_the_worker(monkeypatch, MemoryError())
    out = tmp_path / "m.npz"
    result = CliRunner().invoke(main, ["train", str(BUNDLED_NAMES), "-o", str(out), "--steps", "30", "--hidden", "8",
                                       "--workers", "2", "-q"])
    assert result.exit_code == 1
    assert "not enough memory" in result.stderr and "--batch-size" in result.stderr and "Traceback" not in result.stderr
    assert children() == set()


def test_the_cli_saves_the_last_whole_step_when_a_worker_dies(monkeypatch, tmp_path):
    real = parallel.SharedSteps.gradients

    def gradients(self, step):
        if step == 7:
            for pid, _, _ in self.children:
                os.kill(pid, signal.SIGKILL)
        return real(self, step)

    monkeypatch.setattr(parallel.SharedSteps, "gradients", gradients)
    out = tmp_path / "k.npz"
    result = CliRunner().invoke(main, ["train", str(BUNDLED_NAMES), "-o", str(out), "--steps", "30", "--hidden", "8",
                                       "--workers", "2", "-q"])
    assert result.exit_code == 1 and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and "killed by SIGKILL at step 8" in errors[0] and f"--resume {out}" in errors[0]
    assert checkpoint.load(out).meta["step"] == 7
    assert children() == set()


def test_workers_default_to_one_per_core_with_enough_names_and_work_each():
    assert workers_for(64, "lstm", 512, available=2) == 2
    assert workers_for(32, "lstm", 512, available=16) == 2  # 16 names a share at least
    assert workers_for(512, "lstm", 512, available=64) == 8
    assert workers_for(8, "lstm", 512, available=4) == 1
    assert workers_for(64, "lstm", 512, available=1) == 1
    assert workers_for(32, "rnn", 32, available=2) == 1  # a step too short to share


def test_the_recipe_knows_every_cell_s_gates():
    from dinogen.cells import CELLS

    assert GATES == {name: cell.gates for name, cell in CELLS.items()}


def start_training(tmp_path, *flags):
    """`dinogen train` with two workers, returned once its first checkpoint is written, and its workers."""
    out = tmp_path / "sig.npz"
    command = [sys.executable, "-m", "dinogen", "train", str(BUNDLED_NAMES), "-o", str(out), "--steps", "10000000",
               "--hidden", "16", "--eval-every", "20", "--workers", "2", *flags]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not out.exists() and time.monotonic() < deadline:  # wait until training is under way
        time.sleep(0.05)
    workers = children(process.pid)
    assert len(workers) == 1
    return process, out, workers


def gone(pids: set[int]) -> bool:
    return not any(Path(f"/proc/{pid}").exists() for pid in pids)


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_with_workers_saves_and_leaves_no_process_behind(tmp_path, sig, code):
    before = shared_segments()
    process, out, workers = start_training(tmp_path)
    process.send_signal(sig)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == code and "interrupted at step" in stderr and "Traceback" not in stderr
    assert checkpoint.load(out).meta["step"] > 0
    assert gone(workers) and shared_segments() == before


def test_ctrl_c_to_the_whole_process_group_stops_as_one_ctrl_c(tmp_path):
    process, out, workers = start_training(tmp_path)
    for pid in (process.pid, *workers):  # what a terminal's Ctrl-C does: every process of the group gets it
        os.kill(pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130 and "interrupted at step" in stderr
    assert gone(workers)


def test_a_worker_killed_from_outside_is_one_sentence_and_a_resumable_checkpoint(tmp_path):
    process, out, workers = start_training(tmp_path)
    for pid in workers:
        os.kill(pid, signal.SIGKILL)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 1 and "Traceback" not in stderr
    assert "was killed by SIGKILL" in stderr
    assert "--resume" in stderr or "keeps the last good state" in stderr  # killed during an update: the last saved
    assert checkpoint.load(out).meta["step"] > 0
    assert gone(workers)


def test_a_worker_holds_no_pipe_of_another_run_so_each_run_ends_alone():
    first = Trainer(NAMES, TrainConfig(**SMALL, steps=5, workers=2))
    second = Trainer(NAMES, TrainConfig(**SMALL, steps=5, workers=2))
    with first.workers_running(), second.workers_running():
        (_, to_first, from_first), = first.shared.children
        (second_worker, _, _), = second.shared.children
        second.shared.gradients(0)  # the worker has answered, so it is past its start
        first_pipes = {f"pipe:[{os.fstat(fd).st_ino}]" for fd in (to_first, from_first)}
        held = {os.readlink(link) for link in Path(f"/proc/{second_worker}/fd").iterdir()}
        assert not first_pipes & held
    assert children() == set()


def test_two_workers_give_the_validation_loss_of_one_up_to_rounding():
    trainer = Trainer(NAMES, TrainConfig(**SMALL, steps=5, workers=2))
    alone = trainer.loss_on(trainer.val_probe)
    with trainer.workers_running():
        shared = trainer.shared.validation_loss(0)
    assert abs(shared - alone) < 1e-6 * alone


def test_a_worker_that_fails_in_an_evaluation_is_saved_evaluated_so_resuming_misses_nothing(monkeypatch, tmp_path):
    flags = ["--steps", "30", "--eval-every", "10", "--hidden", "8", "--workers", "2", "-q"]
    whole = tmp_path / "whole.npz"
    assert CliRunner().invoke(main, ["train", str(BUNDLED_NAMES), "-o", str(whole), *flags]).exit_code == 0
    real = parallel.SharedSteps._evaluate

    def evaluate(self, k):
        if k == 1:  # the worker's first evaluation: the one after step 10
            raise ValueError("boom")
        real(self, k)

    monkeypatch.setattr(parallel.SharedSteps, "_evaluate", evaluate)
    out = tmp_path / "failed.npz"
    result = CliRunner().invoke(main, ["train", str(BUNDLED_NAMES), "-o", str(out), *flags])
    assert result.exit_code == 1 and "failed in the evaluation after step 10 (ValueError: boom)" in result.stderr
    monkeypatch.undo()
    saved = checkpoint.load(out)
    assert saved.meta["step"] == 10 and [s for s, _ in saved.meta["history"]["val"]] == [10]
    result = CliRunner().invoke(main, ["train", str(BUNDLED_NAMES), "--resume", str(out), "-o", str(out), *flags])
    assert result.exit_code == 0
    resumed, expected = checkpoint.load(out), checkpoint.load(whole)
    assert [s for s, _ in resumed.meta["history"]["val"]] == [s for s, _ in expected.meta["history"]["val"]]
    for name in expected.params:
        assert np.array_equal(resumed.params[name], expected.params[name]), name


def test_without_fork_the_default_is_one_process_and_more_is_one_sentence(monkeypatch):
    from dinogen import recipe
    from dinogen.errors import DinogenError

    monkeypatch.delattr(os, "fork")
    assert recipe.cores() == 1
    with pytest.raises(DinogenError, match="--workers above 1 needs os.fork"):
        TrainConfig(workers=2).check()


def test_workers_wait_on_descriptors_past_1024():
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1200:
        pytest.skip("the open-file limit is below 1,200")
    spare = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    try:
        trainer = Trainer(NAMES, TrainConfig(**SMALL, steps=4, workers=2))
        trainer.run(on_progress=lambda p: time.sleep(0.02))  # longer than the polling: the worker sleeps in poll
        assert trainer.step == 4
    finally:
        for fd in spare:
            os.close(fd)


def test_a_worker_dies_with_its_parent_killed_by_sigkill(tmp_path):
    process, out, workers = start_training(tmp_path)
    process.kill()
    process.communicate(timeout=60)
    deadline = time.monotonic() + 30
    while not gone(workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gone(workers)

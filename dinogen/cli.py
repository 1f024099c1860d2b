"""The `dinogen` command: a thin shell over the library.

stdout carries only results (names, scores, JSON, tables asked for); progress,
logs and errors go to stderr. NumPy, rich and tqdm are imported inside the
commands that use them, so `dinogen sample` starts quickly.

Exit codes: 0 success, 1 runtime error (bad file, bad checkpoint, failed check),
2 usage error (a bad flag or argument).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import re
import shlex
import sys
from pathlib import Path

import click

from dinogen import __version__
from dinogen.diagnostics import guarded_stderr
from dinogen.config import (BUG_NAMES, CATEGORY_FORMS, CELL_NAMES, DEFAULT_BEAM_WIDTH, DEFAULT_MAX_LEN, DROUGHT,
                            ENCODING, GRADCHECK_LAYERS, LONGEST_NAME_LIMIT, MAX_NAME_LENGTH, MAX_SCORED_LENGTH,
                            PRESETS, RULES, TrainConfig, config_from)
from dinogen.recipe import REFIT_BELOW
from dinogen.errors import DinogenError, SettingsConflict, plural, shown
from dinogen.resources import DEFAULT_CHECKPOINT
from dinogen.threads import DEFAULT_THREADS, set_blas_threads

EXIT_CODES = (
    "Exit codes: 0 success; 1 runtime error (a bad file or checkpoint, names skipped or not found); "
    "2 usage error (a bad flag or argument); 130/143 training interrupted (checkpoint saved)."
)


class FiniteRange(click.FloatRange):
    """A float range that also refuses nan and inf, which pass every comparison test unseen."""

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


class WholeRange(click.IntRange):
    """An integer range that says "whole number" (Click says "integer range") and, when the
    value came from an environment variable, names the variable."""

    name = "whole number"

    def convert(self, value, param, ctx):
        try:
            return super().convert(value, param, ctx)
        except click.BadParameter as exc:
            source = ctx.get_parameter_source(param.name) if ctx is not None and param is not None else None
            if source is click.core.ParameterSource.ENVIRONMENT and param.envvar:
                bounds = [f"at least {self.min}"] if self.min is not None else []
                bounds += [f"at most {self.max}"] if self.max is not None else []
                raise click.UsageError(f"{param.envvar}={value!r} is not a whole number {' and '.join(bounds)}; "
                                       f"set it to one, or unset it.", ctx) from None
            raise exc


NAME_LENGTH = WholeRange(min=1, max=LONGEST_NAME_LIMIT)  # --max-name-length of every command that reads names


def setting_options(*names: str):
    """Options of `train` for these TrainConfig settings, built from config.RULES: the
    type, range or choices, the help, and the default stated from TrainConfig (or how
    the recipe chooses it). Every option defaults to None: not given."""
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}

    def option(name: str):
        rule, default = RULES[name], defaults[name]
        flag = "--" + name.replace("_", "-")
        if rule.kind is bool:
            return click.option(flag, is_flag=True, default=None, help=rule.help)
        if rule.choices is not None:
            kind = click.Choice(list(rule.choices))
        else:
            bounds = dict(min=rule.low, max=rule.high, min_open=rule.low_open, max_open=rule.high_open)
            kind = WholeRange(**bounds) if rule.kind is int else FiniteRange(**bounds)
        stated = f"(default: {rule.chosen})" if default is None else f"(default {default:g})" if isinstance(
            default, float) else f"(default {default})"
        return click.option(flag, type=kind, default=None, help=f"{rule.help} {stated}")

    def decorate(command):
        for name in reversed(names):
            command = option(name)(command)
        return command

    return decorate


def _known_encoding(ctx, param, value: str) -> str:
    """--encoding must name a codec Python knows: a usage error now, not after loading a model."""
    from dinogen.data import text_codec

    try:
        text_codec(value)
    except DinogenError as exc:
        raise click.BadParameter(str(exc)) from None
    return value


def encoding_option(what: str):
    """--encoding of the commands that read names to score: score, classify, eval."""
    return click.option("--encoding", default=ENCODING, show_default=True, callback=_known_encoding,
                        help=f"Text encoding of {what}.")


def scored_length_option(help: str):
    """--max-name-length of the commands that read names to score: score, classify, eval."""
    return click.option("--max-name-length", type=NAME_LENGTH, default=MAX_SCORED_LENGTH, show_default=True, help=help)


class WritesWhileParsing:
    """--help and --version write while the arguments are parsed, before any command
    runs: a failed write ends as one of results does (a closed pipe quietly with 0, a
    full disk in one sentence and exit 1)."""

    def make_context(self, info_name, args, parent=None, **extra):
        try:
            return super().make_context(info_name, args, parent, **extra)
        except BrokenPipeError:
            _silence_stdout()
            raise click.exceptions.Exit(0) from None
        except OSError as exc:
            _silence_stdout()
            raise click.ClickException(f"cannot write the results: {exc.strerror or exc}.") from None


class DinogenCommand(WritesWhileParsing, click.Command):
    """Every subcommand: its --help fails as the group's does."""


class DinogenGroup(WritesWhileParsing, click.Group):
    """Turns the library's errors into one clean line on stderr and exit 1,
    a closed stdout pipe (`| head`) into a quiet exit 0, Ctrl-C into a quiet
    exit 130, and running out of memory or any other system error into one line
    and exit 1."""

    command_class = DinogenCommand

    def main(self, *args, **kwargs):
        with guarded_stderr():  # before anything is parsed or written: a lost stderr never ends the work
            return super().main(*args, **kwargs)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except DinogenError as exc:
            raise click.ClickException(shown(str(exc))) from None
        except click.ClickException as exc:  # every sentence, a path or a value from a stranger's file in it too,
            exc.message = shown(exc.message)  # reaches the terminal with its control characters written out
            raise
        except BrokenPipeError:
            _silence_stdout()
            ctx.exit(0)
        except KeyboardInterrupt:  # Ctrl-C outside training (which saves first): what was printed stays, quietly
            ctx.exit(130)
        except MemoryError:
            remedy = OUT_OF_MEMORY.get(ctx.invoked_subcommand, "command; free some memory and try again")
            raise click.ClickException(f"not enough memory for this {remedy}.") from None
        except OSError as exc:  # not expected: the library reports its file errors, _results the writes
            where = f" ({exc.filename})" if exc.filename else ""
            raise click.ClickException(f"{exc.strerror or exc}{where}.") from None


@contextlib.contextmanager
def _results():
    """Around every write of results to stdout: a write that fails (a full disk, an
    encoding without the characters, stdout closed) is one sentence and exit 1. A
    closed pipe passes on to DinogenGroup, which ends quietly."""
    if sys.stdout is None:  # started with stdout closed (>&-)
        raise click.ClickException("standard output is closed, so the results have nowhere to go.")
    try:
        yield
    except BrokenPipeError:
        raise
    except OSError as exc:
        _silence_stdout()
        raise click.ClickException(f"cannot write the results: {exc.strerror or exc}.") from None
    except UnicodeEncodeError as exc:
        _silence_stdout()
        raise click.ClickException(
            f"the output's encoding ({exc.encoding}) cannot write {exc.object[exc.start : exc.end]!r}; "
            "set PYTHONIOENCODING=utf-8."
        ) from None


def _emit(text: str) -> None:
    """One result (a line or several) on stdout, flushed at once so a pipe sees it."""
    with _results():
        sys.stdout.write(text + "\n")
        sys.stdout.flush()


def _console(stderr: bool = False, pipe_width: int | None = None):
    """A rich Console that styles only on a terminal, and never with NO_COLOR set.

    rich itself drops colours under NO_COLOR but keeps bold and italic; without
    a colour system it writes no escape codes at all. pipe_width: the width of the
    output when it is not a terminal (rich's default is 80 columns).
    """
    from rich.console import Console

    class QuietPipeConsole(Console):
        def on_broken_pipe(self) -> None:  # rich exits 1 at once; DinogenGroup ends a closed pipe quietly, with 0
            self.quiet = True  # as rich's own: nothing more is written to the closed pipe
            raise BrokenPipeError

    plain = os.environ.get("NO_COLOR", "") != ""
    console = QuietPipeConsole(stderr=stderr, color_system=None if plain else "auto")
    if pipe_width and not console.is_terminal:
        console = QuietPipeConsole(stderr=stderr, color_system=None if plain else "auto", width=pipe_width)
    return console


def _json(value, **options) -> str:
    """value as JSON, whose numbers have no NaN or infinity: those are written as null (a
    perplexity beyond the floats' range, a NaN in a metadata field written by hand)."""
    def finite(v):
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: finite(x) for k, x in v.items()}
        return [finite(x) for x in v] if isinstance(v, (list, tuple)) else v

    return json.dumps(finite(value), allow_nan=False, **options)


def _silence_stdout() -> None:
    """After a failed write, point stdout at /dev/null so the interpreter's final flush is quiet."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


@click.group(
    cls=DinogenGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog=EXIT_CODES,
)
@click.version_option(__version__, "--version", prog_name="dinogen")
@click.option("--threads", type=WholeRange(min=1), envvar="DINOGEN_THREADS", default=None,
              help=f"BLAS threads [default: {DEFAULT_THREADS}, or $DINOGEN_THREADS]; one is fastest for models this small.")
def main(threads: int | None) -> None:
    """Train a character-level RNN on a list of names and sample new ones.

    \b
    Examples:
      dinogen train names.txt           # writes dinogen.npz
      dinogen sample --n 10             # ten new names, one per line
      dinogen gradcheck                 # prove the gradients
    """
    set_blas_threads(threads)


# File and folder names complete in the shell; dinogen checks the file itself, with a sentence for each problem.
A_PATH = click.Path(allow_dash=True, readable=False)  # readability: dinogen's own sentence, exit 1
OUT_OF_MEMORY = {  # command -> what to ask for less of when memory runs out
    "train": "model or batch; try a smaller --hidden, --layers or --batch-size",
    "sample": "request; try a smaller --n, --max-len or --beam-width",
    "score": "input; try a smaller --max-name-length",
    "eval": "file; try a smaller --max-name-length",
    "gradcheck": "check; try fewer --cell or --layers",
}
MAX_BEAM_WIDTH = 65536  # widest --beam-width: about 2 GB for the bundled model (rows of state and gates)
INFO_PIPE_WIDTH = 400  # columns of `info` on a pipe: long enough that a value stays on one line



@main.command(epilog=EXIT_CODES)
@click.argument("data", nargs=-1, type=A_PATH)
@click.option("--categories", "categories", type=click.Choice(CATEGORY_FORMS), default=None,
              help="files: each DATA file is a category (the default for several); tsv: one file of "
                   "name<TAB>category lines.")
@click.option("--out", "-o", default=None, metavar="PATH", type=A_PATH,
              help=f"Checkpoint to write (default {DEFAULT_CHECKPOINT}; with --resume, the checkpoint resumed).")
@setting_options("steps", "max_seconds", "batch_size", "hidden", "layers", "cell", "embed_dim", "dropout", "lr",
                 "schedule", "weight_decay", "optimizer", "clip", "seed", "val_fraction", "eval_every", "patience",
                 "workers")
@click.option("--preset", type=click.Choice(list(PRESETS)), default=None,
              help="course: the classic notebook's settings; best: the default, then a second run on every name "
                   "for the epochs that did best. Flags override.")
@setting_options("lowercase")
@click.option("--resume", "resume_path", default=None, metavar="PATH", type=A_PATH,
              help="Continue the run saved in this checkpoint exactly (--steps and --max-seconds count the whole run).")
@click.option("--encoding", default=ENCODING, callback=_known_encoding,
              help=f"Text encoding of DATA (default {ENCODING}).")
@click.option("--max-name-length", type=NAME_LENGTH, default=MAX_NAME_LENGTH,
              help=f"Skip (and count) names longer than this (default {MAX_NAME_LENGTH}).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no summary on stderr.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object on stdout.")
def train(data, categories, out, quiet, as_json, encoding, preset, resume_path, max_name_length, **options) -> None:
    """Train a model on DATA, a text file with one name per line.

    DATA defaults to the bundled data/dinos.txt; `-` reads standard input. Several
    files train one model of several categories, a file each (named for its stem,
    or `name=path`), and so does one file of name<TAB>category lines with
    --categories tsv; `sample --category` then chooses one. Case is
    kept unless --lowercase is given. 10% of the names (seeded) are held out for
    validation. Without flags, the length, the dropout, the batch size and the
    stopping rule are chosen for the list's size, within 10 minutes; the summary
    says what was chosen and why training stopped. The checkpoint keeps the latest
    parameters and the ones with the best validation loss; sample and eval use the
    best. Defaults are shown in parentheses; a --preset changes them, and explicit
    flags override the preset.

    \b
    Examples:
      dinogen train                            # bundled dinosaur names
      dinogen train names.txt --preset best -o names.npz
      cat towns.txt | dinogen train - --max-seconds 60 --json
      dinogen train boys.txt girls.txt -o first.npz
      dinogen train towns.tsv --categories tsv
    """
    from dinogen import checkpoint
    from dinogen.data import read_lists
    from dinogen.resources import bundled_names
    from dinogen.resume import resume
    from dinogen.train import Trainer

    back_to_resumed = out is None and resume_path not in (None, "-")  # `-` is refused when read
    if out is None:  # a resumed run goes on in its own file, not in ./dinogen.npz over another model
        out = resume_path if back_to_resumed else DEFAULT_CHECKPOINT
    try:
        checkpoint.check_writable(out)
    except DinogenError as exc:
        if not back_to_resumed:
            raise click.BadParameter(str(exc), param_hint="--out") from None
        checkpoint.load(resume_path)  # a file that is no checkpoint says so first
        raise click.UsageError(f"{str(exc).rstrip('.')}; without -o a resumed run is written back to the checkpoint "
                               "it resumes, so give -o PATH.") from None
    if as_json and sys.stdout is None:  # started with stdout closed (>&-): say so before training, not after
        raise click.ClickException("standard output is closed, so the --json summary has nowhere to go.")
    sources = list(data) or [str(bundled_names())]
    _check_category_form(categories, sources)

    def read(lowercase: bool):
        return read_lists(sources, categories, lowercase=lowercase, encoding=encoding, max_length=max_name_length)

    if resume_path is not None:
        saved = checkpoint.load(resume_path)
        if preset is not None:
            raise click.BadParameter("a preset cannot be applied to a resumed run; give the flags to change.", param_hint="--preset")
        lowercase = saved.lowercase
        names = read(lowercase)
        try:
            trainer, changed = resume(names, saved, options)
        except SettingsConflict as exc:  # flags that contradict the run, or cannot go with its settings
            raise click.UsageError(str(exc)) from None
        if not quiet:
            click.echo(f"resuming {resume_path} at step {trainer.step} of {trainer.cfg.steps}", err=True)
            for key, old, new in changed:
                click.echo(f"  changed: --{key.replace('_', '-')} {new} (was {old})", err=True)
    else:
        cfg = config_from(preset, **options)
        try:
            cfg.check()
        except SettingsConflict as exc:  # settings that cannot go together, such as --patience without validation
            raise click.UsageError(str(exc)) from None
        names = read(cfg.lowercase)
        trainer = Trainer(names, cfg)
    if names.skipped_long and not quiet:
        click.echo(f"warning: skipped {plural(names.skipped_long, 'name')} longer than {max_name_length} characters.",
                   err=True)

    with _StopSignals() as stop:  # across both stages of --preset best: a signal between them is kept too
        try:
            _train_stages(trainer, out, quiet, as_json, stop,
                          lambda path: _resume_command(data, categories, encoding, max_name_length, path))
        except KeyboardInterrupt:  # a second signal outside a stage: what is on disk is whole
            click.echo(f"aborted at once; {out} holds the last complete checkpoint.", err=True)
            sys.exit(128 + (stop.abort_signum or 2))


def _train_stages(trainer, out: str, quiet: bool, as_json: bool, stop: "_StopSignals", continue_with) -> None:
    """The run, and --preset best's refit after it; exits 128 + the signal when one stops it.
    continue_with(path): the command that continues the run saved at path."""
    from dinogen.train import Trainer, refit_config

    first_run = None  # the summary of the run that found the length, when a refit follows it
    while True:
        summary = _train_stage(trainer, out, quiet, stop, first_run is not None)
        out = summary["checkpoint"]  # out, or a rescue beside it when out stopped taking the checkpoint
        interrupted = trainer.stop_reason == "interrupted"  # a signal after the stage ended stops only what follows
        if first_run is not None:  # the refit's settings were all given by the first run: show what it chose
            summary["first_run"], summary["chosen"] = first_run, first_run["chosen"]
        if as_json and (interrupted or not trainer.refits):
            _emit(json.dumps(summary))
        if not quiet:
            _print_train_summary(summary, trainer.cfg)
        if interrupted:
            before_refit = first_run is not None and trainer.step == 0
            where = (f"before the refit trained: {out} keeps the first run" if before_refit
                     else f"at step {trainer.step}: saved {out}")
            click.echo(f"interrupted {where}; continue with `{continue_with(out)}`.", err=True)
            sys.exit(128 + stop.signum)
        if not trainer.refits:
            if trainer.cfg.refit and not quiet:
                why = (f"--preset best refits lists of fewer than {REFIT_BELOW:,} names" if len(trainer.val_idx)
                       else "no name was held out for validation, so this run trained on every name already")
                click.echo(f"no refit: {why}.", err=True)
            return
        first_run = {k: summary[k] for k in ("steps", "seconds", "best_step", "best_val_loss", "stop_reason", "chosen")}
        trainer = Trainer(trainer.names, refit_config(trainer))
        if stop.signum is not None:  # after the first run ended, before the refit began: keep the first run
            if as_json:
                _emit(json.dumps(summary))
            click.echo(f"interrupted before the refit: {out} keeps the first run; continue with "
                       f"`{continue_with(out)}`.", err=True)
            sys.exit(128 + stop.signum)
        if not quiet:
            click.echo(f"refit: training again on all {len(trainer.data):,} names for {trainer.cfg.steps:,} steps "
                       "(the epochs of the best validation loss, along a whole cosine)", err=True)


def _check_category_form(categories: str | None, sources: list[str]) -> None:
    """A usage error for --categories tsv with more than one file."""
    if categories == "tsv" and len(sources) != 1:
        raise click.UsageError(f"--categories tsv reads one file with a category column, not {len(sources)}; give "
                               "one file, or several without --categories tsv.")


def _train_stage(trainer, out: str, quiet: bool, stop: "_StopSignals", refit: bool = False) -> dict:
    """Run trainer with a progress bar, writing `out` at every evaluation and at the end;
    returns the summary. A diverging run and a second Ctrl-C are one sentence each.
    refit: a first run saved `out` before this one."""
    from dinogen import checkpoint
    from dinogen.parallel import WorkerFailed
    from dinogen.train import Diverged

    saved_at: list[int] = []  # steps at which this run wrote `out`

    def save(t) -> None:
        nonlocal out
        try:
            checkpoint.save(out, t.checkpoint())
        except DinogenError as exc:  # out stopped being writable or ours during the run: keep the run elsewhere
            rescue = _rescue(t, out)
            if rescue is None:
                raise
            click.echo(f"warning: {out} no longer takes this run's checkpoint ({str(exc).rstrip('.')}); "
                       f"the run goes on in {rescue}.", err=True)
            out = rescue
        saved_at.append(t.step)

    def last_good() -> str:
        """Where the last good state is, after a failure that left this run's state unusable."""
        return (f"{out} keeps the last good state, from step {saved_at[-1]}" if saved_at
                else f"{out} keeps the first run, before the refit" if refit else "no checkpoint was written")

    try:
        label = f"{trainer.cfg.cell} {trainer.cfg.hidden}, dropout {trainer.cfg.dropout:g}"
        if quiet:
            bar = contextlib.nullcontext()
        elif sys.stderr is not None and sys.stderr.isatty():
            bar = _progress_bar(trainer.cfg.steps, True, trainer.step, label)
        else:
            bar = _progress_lines(trainer.cfg.steps, label)
        with bar as on_progress:
            summary = trainer.run(on_progress, on_evaluate=save, should_stop=stop.requested)
        if not (refit and trainer.step == 0):  # a refit stopped before its first step: out keeps the first run
            save(trainer)
    except Diverged as exc:
        raise click.ClickException(f"{str(exc).rstrip('.')}; {last_good()}.") from None
    except WorkerFailed as exc:
        if exc.consistent:  # it failed before the update: the state after the last whole step is intact
            if exc.evaluation_owed:  # in this process alone now, as the resumed run will not make it
                trainer.evaluate()
            save(trainer)
            raise click.ClickException(f"{exc}; saved {out} at step {trainer.step}: continue with "
                                       f"--resume {out} -o {out}.") from None
        raise click.ClickException(f"{exc}; {last_good()}.") from None
    except KeyboardInterrupt:  # a second signal
        click.echo(f"aborted at once; {out} holds the last complete checkpoint, if any.", err=True)
        sys.exit(128 + (stop.abort_signum or 2))  # 130 for SIGINT, 143 for SIGTERM
    summary["checkpoint"] = str(out)
    return summary


RESCUES = 9  # names tried for a run whose checkpoint can no longer be written where asked


def _rescue(trainer, out: str) -> str | None:
    """Where a run goes on saving when `out` stopped taking its checkpoint during the run (a
    file of the user's written there, a folder or a link put in its place): a new file beside
    it, named after it; the path saved, or None when none would take it (a full disk)."""
    from dinogen import checkpoint

    path = Path(out)
    for k in range(1, RESCUES + 1):
        candidate = path.with_name(f"{path.stem}.rescued{f'-{k}' if k > 1 else ''}{path.suffix or '.npz'}")
        if os.path.lexists(candidate):  # never over a file, not even an earlier rescue of another run
            continue
        try:
            checkpoint.save(candidate, trainer.checkpoint())
        except DinogenError:
            return None
        return str(candidate)
    return None


def _resume_command(data: tuple[str, ...], categories: str | None, encoding: str, max_name_length: int,
                    out: str) -> str:
    """The shell command that continues an interrupted run: the same names, read the same way."""
    words = ["dinogen", "train"]
    if categories:
        words += ["--categories", categories]
    if encoding != ENCODING:
        words += ["--encoding", encoding]
    if max_name_length != MAX_NAME_LENGTH:
        words += ["--max-name-length", str(max_name_length)]
    names = ["--", *data] if data else []  # after --: a file named -x.txt is not an option
    return shlex.join([*words, "--resume", str(out), "-o", str(out), *names])


class _StopSignals:
    """Ctrl-C (SIGINT) or SIGTERM asks training to stop after the current step;
    a second one aborts at once."""

    def __init__(self) -> None:
        self.signum: int | None = None  # the first signal: stop after the current step
        self.abort_signum: int | None = None  # the second: abort at once
        self._previous: dict = {}

    def requested(self) -> bool:
        return self.signum is not None

    def _handle(self, signum, frame) -> None:
        if self.signum is not None:
            self.abort_signum = signum
            raise KeyboardInterrupt
        self.signum = signum

    def __enter__(self):
        import signal

        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        import signal

        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class _progress_lines:
    """On a stderr that is not a terminal (a pipe, a log file): one line of progress
    every EVERY_SECONDS instead of a bar, as pip and many trainers do."""

    EVERY_SECONDS = 30.0

    def __init__(self, total: int, label: str) -> None:
        import time

        self.total, self.label, self.clock, self.last = total, label, time.monotonic, time.monotonic()

    def __enter__(self):
        return self.update

    def __exit__(self, *exc) -> None:
        return None

    def update(self, p) -> None:
        now = self.clock()
        if now - self.last >= self.EVERY_SECONDS:
            self.last = now
            val = "-" if p.val_loss is None else f"{p.val_loss:.3f}"
            click.echo(f"{self.label}: step {p.step:,} of {p.steps:,}, smooth loss {p.smooth_loss:.3f}, val {val}, "
                       f"{p.chars_per_sec:,.0f} chars/s", err=True)


BAR_LOG_WIDTH = 160  # columns of the bar on a terminal that reports none: a log, which does not wrap


class _progress_bar:
    """A tqdm bar on stderr fed by Trainer progress callbacks (or nothing when off)."""

    REFRESH_EVERY = 25  # steps between postfix updates; a step can be under a millisecond

    def __init__(self, total: int, enabled: bool, initial: int = 0, label: str | None = None) -> None:
        self.total, self.enabled, self.initial, self.label, self.bar = total, enabled, initial, label, None

    def __enter__(self):
        if not self.enabled:
            return None
        from tqdm import tqdm

        import shutil

        try:
            size = os.get_terminal_size(sys.stderr.fileno())  # the bar's own terminal, not stdout's
        except (OSError, ValueError):
            size = shutil.get_terminal_size(fallback=(0, 0))
        # A terminal that reports 0 columns or rows (CI logs, some IDEs) would get no bar at all from tqdm.
        sized = {"dynamic_ncols": True} if size.columns > 0 and size.lines > 0 else {"ncols": BAR_LOG_WIDTH,
                                                                                   "nrows": 24}
        tqdm.monitor_interval = 0  # no monitor thread: the training's worker processes are forked after this
        self.bar = tqdm(total=self.total, initial=self.initial, file=sys.stderr, unit="step", leave=False,
                        desc=self.label, **sized)
        return self.update

    def update(self, p) -> None:
        self.bar.update(p.step - self.bar.n)
        if p.step % self.REFRESH_EVERY == 0 or p.step == p.steps:
            val = "-" if p.val_loss is None else f"{p.val_loss:.3f}"
            self.bar.set_postfix_str(f"smooth loss {p.smooth_loss:.3f} val {val} {p.chars_per_sec:,.0f} chars/s",
                                     refresh=False)

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()


def _smoothed_note(s: dict, cfg) -> str:
    """How the summary's training loss (up to 5,000 training names, no dropout) relates to the bar's smoothed one."""
    dropout = f", with dropout {cfg.dropout:g}" if cfg.dropout else ""
    return f"smoothed in the bar{dropout}: {s['smooth_loss']:.4f}"


def _print_train_summary(s: dict, cfg) -> None:
    def both(nats) -> str:
        return "-" if nats is None else f"{nats:.4f} nats ({nats / math.log(2):.4f} bits)"

    click.echo(
        f"trained {s['steps_run']:,} step{'s' * (s['steps_run'] != 1)}"
        + (f" (to step {s['steps']:,})" if s["steps_run"] != s["steps"] else "")
        + f" in {s['seconds']:.1f} s ({s['chars_per_sec']:,.0f} chars/s)"
        + f"\nstopped              {_stop_reason(s, cfg)}"
        + ("\nnote                 the time limit, not the steps, set the learning rate for part of the run, so "
           "a rerun or a resume can differ; give --steps and a larger --max-seconds to pin it" if s["clock_led"] else "")
        + f"\nmodel                {_model_line(cfg)}"
        + (f"\ncategories           {_categories_line(s['categories'])}" if s.get("categories") else "")
        + (f"\nchosen for the list  {_chosen_line(s)}" if _chosen_line(s) else "")
        + f"\ntraining loss        {both(s['train_loss'])} per char ({_smoothed_note(s, cfg)})"
        + (f"\nvalidation loss      {both(s['val_loss'])}"
           f"\nbest validation      {both(s['best_val_loss'])} at step {_count(s['best_step'])} (kept for sampling)"
           f"\nbigram baseline      {both(s['bigram_loss'])}"
           if s["val_loss"] is not None else
           f"\nfirst run's best     {both(s['first_run']['best_val_loss'])} at step {_count(s['first_run']['best_step'])}, "
           "on the validation names, which the refit then trained on: its last parameters are kept for sampling"
           if s.get("first_run") else
           f"\nvalidation           not evaluated yet ({plural(s['val_names'], 'name')} held out): the latest parameters "
           "are kept for sampling until an evaluation finds better ones"
           if s["val_names"] else
           f"\nvalidation           none held out ({_val_fraction_note(s, cfg)}): "
           "the last parameters are kept for sampling")
        + f"\nuniform baseline     {both(s['uniform_loss'])}"
        f"\ncheckpoint: {s['checkpoint']}",
        err=True,
    )


def _categories_line(categories: dict) -> str:
    """The categories a run was conditioned on, with their names: "2 (boys 1,219, girls 4,275), each a row of W_cat"."""
    listed = ", ".join(f"{name} {count:,}" for name, count in categories.items())
    return f"{len(categories)} ({listed if len(listed) <= 120 else listed[:119] + '…'}); sample --category chooses"


def _count(value) -> str:
    return "-" if value is None else f"{value:,}"


def _val_fraction_note(s: dict, cfg) -> str:
    if cfg.val_fraction == 0:
        return "--val-fraction 0"
    return f"--val-fraction {cfg.val_fraction:g} of {plural(s['train_names'], 'name')} rounds to none"


def _stop_reason(s: dict, cfg) -> str:
    """Why training stopped, in words."""
    if s["stop_reason"] == "steps":
        if s.get("first_run"):
            return f"after the {cfg.steps:,} steps that the first run's best took, scaled to every name (--preset best)"
        chosen = "steps" in s["chosen"]
        return f"after {cfg.steps:,} steps" + (f", the {s['epochs']:.0f} epochs chosen for the list" if chosen else "")
    if s["stop_reason"] == "time":
        return (f"at the time limit of {cfg.max_seconds:g} s (--max-seconds), after {s['steps']:,} of {cfg.steps:,} "
                "steps; the learning rate followed the clock to its floor")
    if s["stop_reason"] == "patience":
        return (f"early, at step {s['steps']:,} of {cfg.steps:,}: no better validation loss in {cfg.patience} "
                "evaluations (--patience)")
    return f"interrupted at step {s['steps']:,} of {cfg.steps:,}"


def _model_line(cfg) -> str:
    return (f"{cfg.cell} {cfg.hidden}" + (f" x {cfg.layers} layers" if cfg.layers > 1 else "")
            + (f", embedding {cfg.embed_dim}" if cfg.embed_dim else "")
            + f", dropout {cfg.dropout:g}, weight decay {cfg.weight_decay:g}, batch {cfg.batch_size}, "
            f"{cfg.optimizer} lr {cfg.lr:g} ({cfg.schedule})"
            + (f", {cfg.workers} processes (--workers)" if cfg.workers > 1 else ""))


CHOSEN_WORDS = {  # settings the data decides when no flag gives them: how the summary names them
    "dropout": ("dropout", "--dropout"),
    "batch_size": ("batch", "--batch-size"),
    "eval_every": ("evaluation every {} steps", "--eval-every"),
    "steps": ("{:,} steps", "--steps"),
    "patience": ("patience {}", "--patience"),
    "max_seconds": ("time limit {:g} s", "--max-seconds"),
}


def _chosen_line(s: dict) -> str:
    """The settings chosen for this list, and the flags that would override them."""
    names = s["train_names"] + s["val_names"]
    parts, flags = [], []
    for key, value in s["chosen"].items():
        if key in CHOSEN_WORDS and value is not None:
            words, flag = CHOSEN_WORDS[key]
            parts.append(words.format(value) if "{" in words else f"{words} {value:g}")
            flags.append(flag)
    return f"{plural(names, 'name')}: {', '.join(parts)} (override with {', '.join(flags)})" if parts else ""


def checkpoint_option(verb: str):
    return click.option(
        "--checkpoint", "-c", "ckpt_path", default=None, metavar="PATH", type=A_PATH,
        help=f"Checkpoint to {verb} [default: ./{DEFAULT_CHECKPOINT}, else the bundled model].",
    )


def latest_option(command):
    return click.option(
        "--latest", is_flag=True, help="Use the latest parameters, not those with the best validation loss."
    )(command)


@main.command(epilog=EXIT_CODES)
@click.option("--n", "-n", "count", type=WholeRange(min=1), default=10, show_default=True, help="Names to sample.")
@checkpoint_option("sample from")
@click.option("--seed", type=WholeRange(min=0), default=None,
              help="Seed; the same seed and checkpoint give the same names.")
@click.option("--temperature", "-t", type=FiniteRange(min=0, min_open=True), default=1.0, show_default=True,
              help="Below 1 is safer and more typical, above 1 more adventurous.")
@click.option("--top-k", type=WholeRange(min=1), default=None,
              help="Draw each character only among the K likeliest.")
@click.option("--top-p", type=FiniteRange(0, 1, min_open=True), default=None,
              help="Nucleus: draw only among the likeliest characters that together hold probability P.")
@click.option("--prefix", default="", help="Names start with this; the model continues it with at least one character.")
@click.option("--suffix", default="", help="Names end with this.")
@click.option("--contains", default="", help="Names hold this somewhere.")
@click.option("--min-len", type=WholeRange(min=1), default=1, show_default=True,
              help="Shortest name, in characters.")
@click.option("--max-len", type=WholeRange(1, 1000), default=DEFAULT_MAX_LEN, show_default=True,
              help="Longest name, in characters.")
@click.option("--novel", is_flag=True, help="Only names that are not in the training data (in none of its lists).")
@click.option("--unique", is_flag=True, help="No name twice.")
@click.option("--category", default=None, metavar="NAME",
              help="With a model of several lists: names of this one [default: each drawn in the lists' shares].")
@click.option("--max-attempts", type=WholeRange(min=1), default=None,
              help="Candidates to draw in all before giving up [default: no total; give up after "
                   f"{DROUGHT:,} in a row without a name that passes].")
@click.option("--likeliest", type=WholeRange(min=1), default=None, metavar="N",
              help="Instead of sampling, the N names the model finds likeliest, likeliest first (a beam search; "
                   "the constraints apply).")
@click.option("--beam-width", type=WholeRange(1, MAX_BEAM_WIDTH), default=None,
              help=f"With --likeliest: hypotheses kept per step [default: {DEFAULT_BEAM_WIDTH}]; wider misses less and takes longer.")
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object per line: name, nll (per character), logprob (total), novel, and category "
                   "with a model of several lists.")
@click.option("--report", is_flag=True, help="After the names, a table about the batch on stderr.")
@click.option("--verbose", "-v", is_flag=True, help="Say on stderr which checkpoint is used.")
@latest_option
def sample(count, ckpt_path, seed, as_json, report, verbose, latest, likeliest, beam_width, **steering) -> None:
    """Sample new names, one per line on stdout, written as they are drawn.

    Constraints (--suffix, --contains, --min-len, --max-len, --novel, --unique)
    work by drawing again; when they cannot be met within --max-attempts, the
    names found are printed and the command fails. --temperature, then --top-k,
    then --top-p reshape each draw; the logprob and nll of --json are the model's
    own, the numbers `dinogen score` gives.

    --likeliest N searches instead for the N likeliest names meeting the
    constraints, each once, likeliest first; a note on stderr says when the beam
    cannot prove that none likelier was missed.

    \b
    Examples:
      dinogen sample --n 10 --seed 7
      dinogen sample --prefix Tyr --novel --unique --n 5 --json
      dinogen sample --n 1000 --suffix saurus --top-p 0.9 --report | sort | head
      dinogen sample --likeliest 10 --prefix Tyr
      dinogen sample --category girls --n 5     # a model trained on boys.txt girls.txt
    """
    _check_likeliest_flags(click.get_current_context(), likeliest, beam_width)
    from dinogen import checkpoint, sampling
    from dinogen.resources import resolve_checkpoint

    path, why = resolve_checkpoint(ckpt_path)
    if verbose:
        click.echo(f"checkpoint: {path} ({why})", err=True)
    ckpt = checkpoint.load(path)
    spec = sampling.SampleSpec(**steering).for_model(ckpt.lowercase)
    try:
        spec.check(ckpt.vocab)
    except DinogenError as exc:
        raise click.UsageError(str(exc)) from None
    _check_category(ckpt, spec.category)
    training_names = ckpt.training_names() if spec.novel or as_json or report else None
    params, cfg = ckpt.inference_params(latest), ckpt.model_config
    if likeliest is not None:
        _write_likeliest(params, cfg, ckpt.vocab, likeliest, spec, beam_width, training_names, as_json, report,
                         ckpt.categories)
        return
    chunks = sampling.generate(params, cfg, ckpt.vocab, count, spec, seed, training_names,
                               on_search=_SearchNotes(count, spec.max_attempts), categories=ckpt.categories)
    drawn: list[str] = []
    try:
        for chunk in chunks:
            _write_chunk(chunk, as_json)
            if report:
                drawn.extend(chunk.names)
    except DinogenError:
        if report and drawn:
            _print_batch_report(drawn, training_names)
        raise
    if report:
        _print_batch_report(drawn, training_names)


SAMPLING_ONLY = {"count": "--n", "seed": "--seed", "temperature": "--temperature", "top_k": "--top-k",
                 "top_p": "--top-p", "max_attempts": "--max-attempts"}  # sample's parameters --likeliest has no use for


def _check_likeliest_flags(ctx: click.Context, likeliest: int | None, beam_width: int | None) -> None:
    """A usage error for --beam-width without --likeliest, or --likeliest with a flag that only sampling uses."""
    if likeliest is None:
        if beam_width is not None:
            raise click.UsageError("--beam-width applies only with --likeliest.")
        return
    given = [flag for name, flag in SAMPLING_ONLY.items()
             if ctx.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT]
    if given:
        raise click.UsageError(f"{', '.join(given)} cannot go with --likeliest, which finds the N names the model "
                               "itself finds likeliest, the same every time.")


def _check_category(ckpt, category: str | None) -> None:
    """A usage error for --category on a model of one list or naming no category of the model."""
    if category is None:
        return
    if ckpt.categories is None:
        raise click.BadParameter("this model was trained on one list, so it has no categories; leave --category out.",
                                 param_hint="--category")
    try:
        ckpt.categories.index(category)
    except DinogenError as exc:
        raise click.BadParameter(str(exc), param_hint="--category") from None


def _write_likeliest(params, cfg, vocab, n: int, spec, beam_width: int | None, training_names, as_json: bool,
                     report: bool, categories) -> None:
    """The n likeliest names on stdout; a sentence on stderr when the beam cannot prove them the likeliest."""
    from dinogen.likeliest import likeliest, shortfall

    width = beam_width or DEFAULT_BEAM_WIDTH
    found = likeliest(params, cfg, vocab, n, spec, width, training_names, categories)
    _write_chunk(found.scored, as_json)
    if report and found.scored.names:
        _print_batch_report(found.scored.names, training_names)
    problem = shortfall(found, n, spec, width)
    if problem is not None:
        raise DinogenError(problem)
    if not found.exact:
        click.echo(f"note: the beam of width {width:,} dropped a candidate likelier than the last name, so "
                   "likelier names may exist; a wider --beam-width finds them or rules them out.", err=True)


class _SearchNotes:
    """While sampling finds nothing, a line on stderr every EVERY_SECONDS: how far the
    search has gone and where it will give up, so a hard request is not silence."""

    EVERY_SECONDS = 5.0

    def __init__(self, wanted: int, max_attempts: int | None) -> None:
        import time

        self.wanted, self.max_attempts, self.clock = wanted, max_attempts, time.monotonic
        self.last = self.clock()

    def __call__(self, found: int, tried: int, drought: int) -> None:
        now = self.clock()
        if drought == 0 or now - self.last < self.EVERY_SECONDS:
            return
        self.last = now
        limit = (f"gives up at {self.max_attempts:,} in all" if self.max_attempts is not None
                 else f"gives up after {DROUGHT:,} in a row without a name")
        click.echo(f"still searching: {found:,} of {plural(self.wanted, 'name')} found in {plural(tried, 'candidate')}, "
                   f"{drought:,} since the last one that passed ({limit})", err=True)


def _write_chunk(chunk, as_json: bool) -> None:
    """Names (or JSON lines) on stdout."""
    _write_lines([json.dumps(r, ensure_ascii=False) for r in chunk.records()] if as_json else chunk.names)


def _write_lines(lines: list[str]) -> None:
    """Result lines on stdout, flushed at once so a pipe sees them."""
    if lines:
        _emit("\n".join(lines))


def _print_batch_report(names: list[str], training_names: list[str] | None) -> None:
    from rich.table import Table
    from rich.text import Text  # names are shown as they are, never read as rich markup

    from dinogen.batch_report import batch_summary

    summary = batch_summary(names, training_names)
    table = Table(title=f"{summary.names:,} sampled names")
    for column in ("", "sampled", "training data"):
        table.add_column(column, justify="right" if column else "left")
    table.add_row("unique", _share(summary.unique_share), "")
    table.add_row("novel", _share(summary.novel_share), "")
    table.add_row("mean length", f"{summary.mean_length:.1f}", _fmt_num(summary.training_mean_length, ".1f"))
    for ending in summary.endings:
        table.add_row(Text(f"ends in -{ending.text}"), _share(ending.share), _share(ending.training_share))
    _console(stderr=True).print(table)


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _fmt_num(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


@main.command(epilog=EXIT_CODES)
@click.argument("names", nargs=-1)
@checkpoint_option("score with")
@encoding_option("standard input")
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object per line: name, nll, logprob, novel, and category with --category.")
@scored_length_option("Skip (and report) names longer than this.")
@click.option("--explain", is_flag=True,
              help="For each position of each name: the model's probability for it, its surprise in bits and the "
                   "likeliest alternatives (a heat strip on a colour terminal).")
@click.option("--category", default=None, metavar="NAME",
              help="With a model of several lists: score as a name of this one [default: over all, in their shares].")
@latest_option
def score(names, ckpt_path, encoding, as_json, latest, max_name_length, explain, category) -> None:
    """How likely the model finds each name: NAMES, or one per line on stdin (no NAMES, or `-`).

    Prints, tab-separated: the name, its NLL per character in nats (the end token
    included, as eval counts), its total log-probability, and `novel` or `known`
    when the checkpoint stores its training names. A name with a character the
    model never saw is reported on stderr and skipped, and the exit code is then 1.
    A model of several lists scores P(name | --category), or without it
    P(name) = sum over the categories of P(category) P(name | category).

    \b
    Examples:
      dinogen score Tyrannosaurus Velociraptor
      dinogen sample --n 100 | dinogen score | sort -t$'\\t' -k2 -g | head -n 5
      dinogen score --json < names.txt
    """
    from dinogen import checkpoint
    from dinogen.resources import resolve_checkpoint

    path, _ = resolve_checkpoint(ckpt_path)
    ckpt = checkpoint.load(path)
    _check_category(ckpt, category)
    if explain and ckpt.categories is not None and category is None:
        raise click.UsageError("this model has categories, and a name's explanation depends on which; "
                               f"give --category ({', '.join(ckpt.categories.names)}).")
    which = None if category is None else ckpt.categories.index(category)
    training_names = ckpt.training_names()
    known = None if training_names is None else set(training_names)
    counts = {"names": 0, "skipped": 0}
    for chunk in _name_chunks(names, ckpt, encoding, max_name_length):  # written as they arrive: a filter
        if explain:
            _explain_chunk(ckpt, latest, chunk, as_json, counts, which)
        else:
            _score_chunk(ckpt, latest, known, chunk, as_json, counts, which)
    _fail_on_skipped(counts)


def _name_chunks(names: tuple[str, ...], ckpt, encoding: str, max_name_length: int):
    """Lists of the names to score, each answered before the next is read: one at a time from a terminal."""
    typed = names in ((), ("-",)) and sys.stdin is not None and sys.stdin.isatty()
    return _chunks(_names_to_read(names, ckpt, encoding, max_name_length), 1 if typed else SCORE_CHUNK)


def _names_to_read(names: tuple[str, ...], ckpt, encoding: str, max_name_length: int):
    """StreamedLines of the names given as arguments, or of standard input as it comes (no names, or `-`)."""
    from dinogen.data import argument_names, open_text_stream, stream_names

    if len(names) > 1 and "-" in names:
        raise click.UsageError("`-` (standard input) cannot go with names given as arguments; "
                               "give either the names or `-`.")
    if names and names != ("-",):  # `-` alone means standard input, as for train and eval
        files = [arg for arg in names if os.path.isfile(arg)]
        if files:
            click.echo(f"note: {files[0]} is a file, scored here as a name; to score the names in it, "
                       f"use `dinogen score < {files[0]}` or `dinogen eval {files[0]}`.", err=True)
        return argument_names(names, lowercase=ckpt.lowercase, max_length=max_name_length)
    if sys.stdin is None:
        raise click.ClickException("standard input is closed, so there are no names to read; give them as arguments.")
    if sys.stdin.isatty():
        click.echo("reading names from standard input, one per line (Ctrl-D to end)", err=True)
    return stream_names(open_text_stream(sys.stdin.buffer, encoding), lowercase=ckpt.lowercase,
                        max_length=max_name_length)


def _fail_on_skipped(counts: dict) -> None:
    """Exit 1 with one sentence when some names were skipped (each said why on stderr)."""
    if counts["skipped"]:
        raise click.ClickException(
            f"{counts['skipped']} of {plural(counts['names'], 'name')} {'was' if counts['names'] == 1 else 'were'} "
            "skipped; the lines above say why."
        )


SCORE_CHUNK = 256  # names scored together from a stream; results are written after each chunk


def _chunks(items, size: int):
    """Lists of up to `size` items of an iterable, as soon as each is full (or the items end)."""
    chunk = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _readable(ckpt, chunk, counts: dict) -> list[str]:
    """The names of a chunk of StreamedLines that the model can read; each other one is said
    on stderr and counted as skipped."""
    names = []
    for line in chunk:
        unknown = None if line.name is None else ckpt.vocab.unknown(line.name)
        if line.name is None:
            click.echo(f"skipped {line.where} {line.line}: it {line.problem}", err=True)
        elif unknown is not None:
            click.echo(f"skipped {line.name!r}: the model never saw the character {unknown!r}", err=True)
        else:
            names.append(line.name)
    counts["names"] += len(chunk)
    counts["skipped"] += len(chunk) - len(names)
    return names


def _score_chunk(ckpt, latest: bool, known, chunk, as_json: bool, counts: dict, category: int | None) -> None:
    """Score one chunk of StreamedLines, report the refused ones on stderr, write the results."""
    from dinogen import scoring

    names = _readable(ckpt, chunk, counts)
    priors = None if ckpt.categories is None else ckpt.categories.priors
    scores = scoring.score_names(ckpt.inference_params(latest), ckpt.model_config, ckpt.vocab, names, known,
                                 category, priors)
    if category is not None:
        scores.scored.categories = [ckpt.categories.names[category]] * len(names)
    records = scores.scored.records()
    if as_json:
        _write_lines([json.dumps(r, ensure_ascii=False) for r in records])
    else:
        _write_lines(["\t".join(_score_fields(r)) for r in records])


def _explain_chunk(ckpt, latest: bool, chunk, as_json: bool, counts: dict, category: int | None) -> None:
    """score --explain: each name of a chunk of StreamedLines, position by position."""
    from dinogen.explain import explain

    console = _console()
    colour = console.is_terminal and console.color_system is not None and not as_json
    for name in _readable(ckpt, chunk, counts):
        found = explain(ckpt.inference_params(latest), ckpt.model_config, ckpt.vocab, name, category=category)
        if as_json:
            _emit(json.dumps(found.record(), ensure_ascii=False))
            continue
        if colour:
            with _results():
                console.print(_heat_strip(found), highlight=False)
        _emit("\n".join(_explanation_lines(found)))


def _explanation_lines(found) -> list[str]:
    """The plain, aligned table of score --explain."""
    def shown_char(char: str) -> str:
        return "<end>" if char == "" else char

    lines = [f"{found.name}  logprob {found.logprob:.4f}  nll {found.nll:.4f}",
             "  pos  char   prob   bits   likeliest here"]
    for i, p in enumerate(found.positions, start=1):
        top = "  ".join(f"{shown_char(c)} {q:.3f}" for c, q in p.top)
        lines.append(f"  {i:>3}  {shown_char(p.char):<5}  {p.prob:.3f}  {p.bits:5.2f}  {top}")
    return lines


def _heat_strip(found):
    """The name with each character (and the end) on a colour from red (unlikely) to green (likely)."""
    from rich.text import Text

    strip = Text()
    for p in found.positions:
        level = min(1.0, max(0.0, p.prob / 0.5))  # 0.5 or more counts as fully expected
        red, green = int(255 * (1 - level)), int(200 * level)
        strip.append("⏎" if p.char == "" else p.char, style=f"bold black on rgb({red},{green},0)")
    return strip


def _score_fields(record: dict) -> list[str]:
    fields = [record["name"], f"{record['nll']:.4f}", f"{record['logprob']:.4f}"]
    if record["novel"] is not None:
        fields.append("novel" if record["novel"] else "known")
    return fields


@main.command(epilog=EXIT_CODES)
@click.argument("ckpt_arg", metavar="[CHECKPOINT]", required=False, type=A_PATH)
@checkpoint_option("describe; the same as CHECKPOINT, as the other commands take it")
@click.option("--json", "as_json", is_flag=True, help="Print the metadata as one JSON object.")
def info(ckpt_arg, ckpt_path, as_json) -> None:
    """What a checkpoint holds: model, vocabulary, data, training and loss curves.

    CHECKPOINT (or -c PATH) defaults to ./dinogen.npz, else the bundled model.

    \b
    Examples:
      dinogen info dinogen.npz
      dinogen info -c names.npz --json | jq .best
    """
    from dinogen import checkpoint
    from dinogen.model import count_params
    from dinogen.resources import resolve_checkpoint

    if ckpt_arg is not None and ckpt_path is not None and ckpt_arg != ckpt_path:
        raise click.UsageError("give the checkpoint once: as CHECKPOINT or as -c PATH.")
    path, _ = resolve_checkpoint(ckpt_path if ckpt_path is not None else ckpt_arg)
    ckpt = checkpoint.load(path)
    if as_json:
        extra = {"parameters": count_params(ckpt.inference_params()), "training_names_stored": ckpt.data is not None}
        text = _json(dict(ckpt.meta, **extra), ensure_ascii=False)  # JSON escapes C0 itself; DEL and C1 too:
        _emit(re.sub("[\x7f-\x9f]", lambda m: f"\\u{ord(m.group()):04x}", text))
        return
    from rich.table import Table
    from rich.text import Text

    from dinogen.checkpoint_report import checkpoint_rows

    table = Table(title=Text(str(path)), show_header=False)  # Text: paths and names are never read as markup
    table.add_column(style="bold")
    table.add_column()
    console = _console(pipe_width=INFO_PIPE_WIDTH)
    for label, value in checkpoint_rows(ckpt, full=not console.is_terminal):  # a pipe gets every character
        table.add_row(label, Text(value, overflow="fold"))
    with _results():
        console.print(table)


@main.command(epilog=EXIT_CODES)
@click.argument("names", nargs=-1)
@checkpoint_option("classify with")
@encoding_option("standard input")
@click.option("--uniform-prior", is_flag=True,
              help="Take every category as equally likely beforehand, not in its share of the training names.")
@click.option("--top", type=WholeRange(min=1), default=None, metavar="K", help="Only the K likeliest categories.")
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object per line: name, and categories with their posterior and logprob.")
@scored_length_option("Skip (and report) names longer than this.")
@latest_option
def classify(names, ckpt_path, encoding, uniform_prior, top, as_json, max_name_length, latest) -> None:
    """Which list each name most likely comes from: NAMES, or one per line on stdin.

    For a model trained on several lists (`train boys.txt girls.txt`): Bayes'
    rule with the model's P(name | category) and each category's share of the
    training names (--uniform-prior: equal shares). Prints, tab-separated, the
    name and then each category with its posterior probability, likeliest first.

    \b
    Examples:
      dinogen classify Jordan Maria -c first.npz
      dinogen classify --json < unknown.txt
    """
    import numpy as np

    from dinogen import checkpoint, scoring
    from dinogen.data import encode_names
    from dinogen.resources import resolve_checkpoint

    path, _ = resolve_checkpoint(ckpt_path)
    ckpt = checkpoint.load(path)
    if ckpt.categories is None:
        raise click.ClickException(f"{path} was trained on one list, so there are no categories to choose from; "
                                   "train on several lists (`dinogen train a.txt b.txt`) to classify.")
    table, params, cfg = ckpt.categories, ckpt.inference_params(latest), ckpt.model_config
    priors = None if uniform_prior else table.priors
    counts = {"names": 0, "skipped": 0}
    for chunk in _name_chunks(names, ckpt, encoding, max_name_length):
        readable = _readable(ckpt, chunk, counts)
        if not readable:
            continue
        logprobs = scoring.logprob_by_category(params, cfg, encode_names(readable, ckpt.vocab))  # (n, K)
        posterior = scoring.posteriors(logprobs, priors)
        lines = []
        for name, p, lp in zip(readable, posterior, logprobs):
            order = np.argsort(-p, kind="stable")[:top]
            if as_json:
                ranked = [{"category": table.names[k], "posterior": float(p[k]), "logprob": float(lp[k])}
                          for k in order]
                lines.append(json.dumps({"name": name, "categories": ranked}, ensure_ascii=False))
            else:
                lines.append("\t".join([name, *(f"{table.names[k]}\t{p[k]:.4f}" for k in order)]))
        _write_lines(lines)
    _fail_on_skipped(counts)


@main.command("eval", epilog=EXIT_CODES)
@click.argument("files", nargs=-1, required=True, type=A_PATH, metavar="FILE...")
@click.option("--categories", "categories", type=click.Choice(CATEGORY_FORMS), default=None,
              help="As for train: each FILE a category (the default for several), or tsv: name<TAB>category lines.")
@checkpoint_option("evaluate")
@encoding_option("FILE")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
@scored_length_option("Skip (and count) names longer than this.")
@latest_option
def evaluate(files, categories, ckpt_path, encoding, as_json, latest, max_name_length) -> None:
    """Mean negative log-likelihood per character of the names in FILE.

    Each name is read from the start token and must also predict its end, so a
    name of L characters makes L + 1 predictions. FILE may be `-` for stdin.
    For a model of several lists, files with categories (several files, or
    --categories tsv, as train reads them) are scored under each name's category,
    with each category's NLL and the classification accuracy (the likeliest
    category by Bayes' rule, against always guessing the largest); a plain file
    is scored by P(name) over all categories.

    \b
    Examples:
      dinogen eval held_out.txt -c dinogen.npz
      dinogen eval names.txt --json
      dinogen eval boys=boys_test.txt girls=girls_test.txt -c first.npz
    """
    from dinogen import checkpoint, scoring
    from dinogen.data import encode_names, read_lists
    from dinogen.resources import resolve_checkpoint

    path, _ = resolve_checkpoint(ckpt_path)
    ckpt = checkpoint.load(path)
    _check_category_form(categories, list(files))
    names = read_lists(list(files), categories, lowercase=ckpt.lowercase, encoding=encoding,
                       max_length=max_name_length)
    table = ckpt.categories
    if names.categories is not None and table is None:
        raise click.UsageError(f"{path} was trained on one list, so names with categories cannot be scored by "
                               "them; give one file of names.")
    if names.skipped_long:
        click.echo(f"warning: skipped {plural(names.skipped_long, 'name')} longer than {max_name_length:,} "
                   "characters (--max-name-length).", err=True)
    if not names.names:
        raise DinogenError(f"{names.source} holds no names to evaluate.")
    try:  # a category the model does not have is a bad argument, as --category is in sample and score
        row_of = [table.index(category) for category in names.category_names]  # the model's row of each list's
        rows = None if names.categories is None else [row_of[k] for k in names.categories]
    except DinogenError as exc:
        raise click.BadParameter(f"{str(exc).rstrip('.')}; name each file's category with name=path "
                                 "(boys=boys_test.txt).", param_hint="FILE") from None
    data = encode_names(names.names, ckpt.vocab, names.line_numbers, names.source_of, categories=rows)
    result = scoring.evaluate(ckpt.inference_params(latest), ckpt.model_config, data,
                              None if table is None else table.priors, () if table is None else table.names)
    if as_json:
        _emit(_json(result))
        return
    lines = [_eval_line("", result)]
    for name, entry in result.get("categories", {}).items():
        lines.append(_eval_line(f"{name}: ", entry) + f"  accuracy {entry['accuracy']:.1%}")
    if "accuracy" in result:
        lines.append(f"classified {result['accuracy']:.1%} right (the likeliest category by Bayes' rule); "
                     f"always guessing {table.names[int(table.priors.argmax())]}: {result['majority_accuracy']:.1%}")
    _emit("\n".join(lines))


def _eval_line(label: str, result: dict) -> str:
    return (f"{label}{result['nll']:.4f} nats/char  {result['bits_per_char']:.4f} bits/char  "
            f"perplexity {result['perplexity']:{'.3f' if result['perplexity'] < 1e6 else '.3e'}}  "
            f"({plural(result['names'], 'name')}, "
            f"{plural(result['predictions'], 'prediction')})")


class BugMissed(click.ClickException):
    """A bug injected with `gradcheck --bug` that the check did not catch as predicted:
    a fault of the demonstration, not the expected failure (exit 3, not 1)."""

    exit_code = 3


@main.command(epilog=EXIT_CODES + " With --bug: 1 when the bug is caught, 3 when the check misses it.")
@click.option("--cell", type=click.Choice(CELL_NAMES), multiple=True, help="Cells to check; repeatable (default: all).")
@click.option("--layers", type=WholeRange(RULES["layers"].low, RULES["layers"].high), multiple=True,
              help=f"Layer counts to check; repeatable (default: {' and '.join(map(str, GRADCHECK_LAYERS))}).")
@click.option("--seed", type=WholeRange(min=0), default=0, show_default=True, help="Seed of the random model and batch.")
@click.option("--bug", type=click.Choice(["list", *BUG_NAMES]), default=None, metavar="NAME",
              help="Inject the classic mistake NAME into the reference path and watch the check catch it; "
                   "`--bug list` names them.")
def gradcheck(cell, layers, seed, bug) -> None:
    """Check every analytic gradient against centered finite differences.

    A small float64 model and a padded batch of names of different lengths:
    one relative error per parameter (norm of the difference over the norms),
    and a "padding" row comparing the batch with its names one at a time.
    Exits 0 when every error is below the tolerance, else 1.

    With --bug NAME the same check runs on the readable reference path with
    that one mistake in it (no dropout), and the rows it breaks fail: exit 1.

    \b
    Examples:
      dinogen gradcheck
      dinogen gradcheck --cell rnn --layers 1
      dinogen gradcheck --bug list
      dinogen gradcheck --bug dwhh-from-dh --layers 1
    """
    if bug == "list":
        _list_bugs()
    elif bug:
        _check_with_bug(bug, cell, layers or GRADCHECK_LAYERS, seed)
    else:
        failed = _gradcheck_table("gradient check", cell or CELL_NAMES, layers or GRADCHECK_LAYERS, seed)
        count = sum(len(rows) for _, rows in failed)
        if count:
            raise click.ClickException(f"{count} gradients disagree with finite differences.")


def _gradcheck_table(title: str, cells, layers, seed: int, bug=None) -> list[tuple]:
    """Check gradcheck.standard_configs(cells, layers), print the table of every row,
    and return (config, the names of its rows that failed) for each config; with bug
    (a bugs.Bug), the reference path with that mistake, no dropout."""
    from rich.table import Table

    from dinogen import gradcheck as gc

    implementation = bug.implementation() if bug else gc.FAST
    configs = gc.standard_configs(cells, layers, gc.DROPOUT if implementation.dropout else 0.0)
    table = Table(title=f"{title} (float64, tolerance {gc.TOLERANCE:g})")
    for column in ("cell", "layers", "embed", "dropout", "cats", "parameter", "shape", "rel. error", "result"):
        table.add_column(column)
    failed = []
    for cfg in configs:
        results = gc.check_model(cfg, seed=seed, implementation=implementation)
        failed.append((cfg, {r.name for r in results if not r.passed}))
        for r in results:
            verdict = "[green]pass[/]" if r.passed else "[bold red]FAIL[/]"
            table.add_row(cfg.cell, str(cfg.layers), str(cfg.embed_dim), f"{cfg.dropout:g}", str(cfg.categories),
                          r.name, str(r.shape),
                          f"{r.rel_error:.2e}", verdict)
    with _results():
        _console().print(table)
    return failed


def _list_bugs() -> None:
    """Every bug of `gradcheck --bug`: its name, cells and rows, and its sentence."""
    from dinogen.bugs import BUGS

    for bug in BUGS.values():
        _emit(f"{bug.name}  (cells: {', '.join(bug.cells)}; fails: {', '.join(bug.fails)})\n  {bug.sentence}")


def _check_with_bug(name: str, cells: tuple[str, ...], layers: tuple[int, ...], seed: int) -> None:
    """The check with bug `name` injected: exit 1 when exactly its rows fail, 3 otherwise."""
    from dinogen.bugs import BUGS

    bug = BUGS[name]
    other_cells = [c for c in cells if c not in bug.cells]
    if other_cells:
        raise click.BadParameter(f"{name} is a mistake of the {' and '.join(bug.cells)} cell only, not "
                                 f"{' or '.join(other_cells)}; leave --cell out or give --cell {bug.cells[0]}.",
                                 param_hint="--bug")
    _emit(f"bug {name}, injected into dinogen/reference.py: {bug.sentence}")
    failed = _gradcheck_table(f"gradient check with bug {name}", cells or bug.cells, layers, seed, bug)

    def where(cfg, row: str) -> str:
        categories = f", {cfg.categories} categories" if cfg.categories else ""
        return f"{row} ({cfg.cell}, {plural(cfg.layers, 'layer')}, embed {cfg.embed_dim}{categories})"

    missed = [where(cfg, row) for cfg, rows in failed for row in sorted(bug.expected_failures(cfg) - rows)]
    extra = [where(cfg, row) for cfg, rows in failed for row in sorted(rows - bug.expected_failures(cfg))]
    if missed or extra:
        problems = [f"passed though the bug breaks them: {', '.join(missed)}"] if missed else []
        problems += [f"failed though the bug leaves them alone: {', '.join(extra)}"] if extra else []
        raise BugMissed(f"the check did not catch {name} as predicted: {'; '.join(problems)}. "
                        "That is a fault in dinogen's demonstration; please report it.")
    count = sum(len(rows) for _, rows in failed)
    click.echo(f"caught: {plural(count, 'row')} failed, exactly the ones {name} breaks "
               f"({', '.join(bug.fails)}).", err=True)
    sys.exit(1)

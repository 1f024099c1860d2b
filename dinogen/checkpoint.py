"""Checkpoints: one .npz per model, data only, written atomically.

Layout (format version 1; version 2 is a model with categories):
    meta            0-d string array: JSON metadata (format, model config,
                    vocabulary, categories, training config, step, loss
                    history, data)
    param/<name>    the latest parameters, one array per parameter
    best/<name>     the parameters with the lowest validation loss so far
    optim/<key>     optimizer state (Adam moments and step), for resuming
    data/codes      the names the model was trained on (every name read: the
    data/offsets    training and the validation split), as in data.Dataset:
                    name i is codes[offsets[i]:offsets[i+1]]; codes in the
                    smallest unsigned dtype that holds the vocabulary, offsets
                    int64. Optional: older checkpoints lack them and still load.
    data/categories each name's category (a row of W_cat), with categories

The zip's comment holds a SHA-256 of every byte before the digest, so any
damaged or truncated byte is caught before NumPy parses anything. Files are
loaded with allow_pickle=False and checked before use: the arrays' names, shapes
and dtypes, and every metadata field that sampling, `info` or resuming reads
(a field older or slim files lack stays optional, but one present must be
well formed); anything wrong raises DinogenError with one sentence naming it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import stat
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dinogen.config import WEIGHT_LIMIT, ModelConfig
from dinogen.data import CategoryTable, Dataset, Vocab, checked_category
from dinogen.errors import CONTROL, DinogenError, shown
from dinogen.files import ZIP_MAGIC, read_bytes
from dinogen.metadata_checks import meta_problem, model_problem, shown_value
from dinogen.model import param_shapes

RETRAIN = "retrain or pass another file"  # what to do about a file that is not a checkpoint we can use
FORMAT = "dinogen-checkpoint"
FORMAT_VERSION = 2  # the newest this version reads and writes; a model of one list is written as version 1
DIGEST_PREFIX = b"dinogen-sha256:"  # the zip comment: this prefix and 64 hex digits
DIGEST_LEN = 64
TMP_NAME_PART = 32  # characters of the target's name in the temporary file's, which adds 14 more


@dataclass
class Checkpoint:
    params: dict[str, np.ndarray]  # latest parameters
    meta: dict  # everything that is not an array
    best: dict[str, np.ndarray] | None = None  # best-on-validation parameters
    optim: dict[str, np.ndarray] = field(default_factory=dict)  # optimizer state
    data: Dataset | None = None  # the names trained on (both splits), or None in older files

    @property
    def model_config(self) -> ModelConfig:
        return ModelConfig(**self.meta["model"])

    @property
    def vocab(self) -> Vocab:
        return Vocab(tuple(self.meta["vocab"]))

    @property
    def categories(self) -> CategoryTable | None:
        """The model's categories, or None for a model of one list."""
        table = self.meta.get("categories")
        if not table:
            return None
        return CategoryTable(tuple(entry["name"] for entry in table), tuple(entry["names"] for entry in table))

    @property
    def lowercase(self) -> bool:
        return bool(self.meta.get("lowercase", False))

    def inference_params(self, latest: bool = False) -> dict[str, np.ndarray]:
        """The parameters to sample and evaluate with: the best-on-validation ones
        when kept, unless the latest are asked for."""
        return self.best if self.best is not None and not latest else self.params

    def training_names(self) -> list[str] | None:
        """Every name of the file the model was trained on, or None when the file does not say."""
        if self.data is None:
            return None
        return self.vocab.decode_names(self.data.codes, self.data.offsets)


def save(path: str | Path, ckpt: Checkpoint) -> None:
    """Write a checkpoint atomically (see write_arrays)."""
    meta = dict(ckpt.meta, format=FORMAT, format_version=FORMAT_VERSION if ckpt.model_config.categories else 1)
    arrays = {"meta": np.array(json.dumps(meta, ensure_ascii=False))}
    arrays.update({f"param/{k}": v for k, v in ckpt.params.items()})
    if ckpt.best is not None:
        arrays.update({f"best/{k}": v for k, v in ckpt.best.items()})
    arrays.update({f"optim/{k}": v for k, v in ckpt.optim.items()})
    if ckpt.data is not None:
        arrays["data/codes"] = ckpt.data.codes.astype(np.min_scalar_type(ckpt.model_config.vocab_size - 1))
        arrays["data/offsets"] = ckpt.data.offsets.astype(np.int64, copy=False)
        if ckpt.data.categories is not None:
            arrays["data/categories"] = ckpt.data.categories.astype(np.min_scalar_type(ckpt.model_config.categories - 1))
    write_arrays(path, arrays)


def check_writable(path: str | Path) -> None:
    """Fail now, not after training, when `path` cannot be written or is not ours to replace.

    `path` may be a name that does not exist yet, an empty regular file, or a
    regular file that is a sealed dinogen checkpoint (ours, so replacing it loses
    nothing we did not write). Anything else is refused: another zip or any other
    file, a folder, a FIFO or a device, and a symbolic link (an atomic save would
    replace the link, not what it points to).
    """
    if str(path) == "-":  # elsewhere `-` is standard input: a file named "-" would surprise
        raise DinogenError("a checkpoint is written to a file, not to standard output ('-'); give a file name "
                           "such as dinogen.npz.")
    if os.path.basename(os.fspath(path)) in ("", ".", ".."):  # dir/ or dir/.: Path() would make them dir
        raise DinogenError(f"cannot write {path}: it names a folder; give a file name such as dinogen.npz.")
    path = Path(path)
    folder = path.parent
    try:
        if path.is_symlink():
            raise DinogenError(f"{path} is a symbolic link; writing there would replace the link, so give the path "
                               "it points to, or another --out.")
        if path.is_dir():
            raise DinogenError(f"cannot write {path}: it is a folder; give a file name such as {path / 'dinogen.npz'}.")
        if folder.exists() and not folder.is_dir():
            raise DinogenError(f"cannot write {path}: {folder} is a file, not a folder; choose another --out.")
        if not folder.is_dir():
            raise DinogenError(f"cannot write {path}: the folder {folder} does not exist; create it or choose another --out.")
        if path.exists() and not stat.S_ISREG(path.stat().st_mode):
            raise DinogenError(f"{path} is not a regular file (a device, a FIFO or a socket); choose another --out.")
        if path.exists() and path.stat().st_size and not is_sealed(path):
            raise DinogenError(f"{path} exists and is not a checkpoint; writing over it would destroy it, so "
                               "choose another --out or remove the file.")
        if path.exists() and not may_replace(path):
            raise DinogenError(f"cannot write {path}: it belongs to another user, in a folder where only a file's "
                               "owner may replace it; choose another --out.")
    except OSError as exc:  # a name too long, a folder that cannot be searched, ...
        raise DinogenError(f"cannot write {path} ({exc.strerror}); choose another --out.") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise DinogenError(f"cannot write {path}: the folder {folder} is not writable; choose another --out.")


def may_replace(path: Path) -> bool:
    """Whether this process may rename a file over path: in a sticky folder (/tmp, say)
    only the file's owner, the folder's owner or root may."""
    folder = path.parent.stat()
    if not folder.st_mode & stat.S_ISVTX or not hasattr(os, "geteuid"):
        return True
    return os.geteuid() in (0, path.stat().st_uid, folder.st_uid)


def is_sealed(path: Path) -> bool:
    """Whether the regular file at path is a whole dinogen checkpoint: a zip whose comment
    is our seal, whose digest matches every byte before it. Reads the file in blocks, and
    its size from the file opened: another run may rename a new checkpoint over the path."""
    seal = len(DIGEST_PREFIX) + DIGEST_LEN
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        size = os.fstat(file.fileno()).st_size
        if size < len(ZIP_MAGIC) + seal or file.read(len(ZIP_MAGIC)) != ZIP_MAGIC:
            return False
        file.seek(size - seal)
        tail = file.read(seal)
        if not tail.startswith(DIGEST_PREFIX):
            return False
        file.seek(0)
        remaining = size - DIGEST_LEN
        while remaining > 0:
            block = file.read(min(remaining, 1 << 20))
            if not block:
                return False
            digest.update(block)
            remaining -= len(block)
    return digest.hexdigest().encode("ascii") == tail[len(DIGEST_PREFIX) :]


def encode_arrays(arrays: dict[str, np.ndarray]) -> bytes:
    """An .npz archive of the arrays (never pickled), sealed with its SHA-256."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        for key, value in arrays.items():
            with archive.open(f"{key}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(value), allow_pickle=False)
        archive.comment = DIGEST_PREFIX + b"0" * DIGEST_LEN
    body = buffer.getbuffer()[:-DIGEST_LEN]  # everything before the placeholder digest, not copied
    return bytes(body) + hashlib.sha256(body).hexdigest().encode("ascii")


def write_arrays(path: str | Path, arrays: dict[str, np.ndarray]) -> None:
    """Write arrays atomically: a temporary file in the same folder, flushed and
    fsynced, then renamed over the target. An interrupted or failed save leaves
    any previous file at `path` untouched, and concurrent writers never mix."""
    import tempfile  # here, not at the top: `dinogen sample` never saves, and starts sooner without it

    check_writable(path)  # the path as given: Path() would drop a trailing slash
    path = Path(path)
    raw = encode_arrays(arrays)
    try:
        # the target's name, cut short, so that a name near the file system's limit still has a temporary file
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name[:TMP_NAME_PART]}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise DinogenError(f"cannot write {path}: {exc.strerror}; choose another --out.") from None
    try:
        os.fchmod(fd, _mode_for(path))
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_name, path)
    except BaseException as exc:
        Path(tmp_name).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise DinogenError(f"cannot write {path}: {exc.strerror or exc}; the previous file, if any, is unchanged.") from None
        raise
    _fsync_folder(path.parent)


def _mode_for(path: Path) -> int:
    """The permissions of a checkpoint written at path: those of the file it replaces, so
    that a checkpoint made private stays private (it holds the training names), else an
    ordinary file's (mkstemp makes 0600)."""
    try:
        mode = os.lstat(path).st_mode
    except OSError:  # nothing there yet
        mode = 0
    return mode & 0o777 if stat.S_ISREG(mode) else 0o666 & ~_umask()  # read and write bits only, never setuid


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load(path: str | Path) -> Checkpoint:
    """Read and check a checkpoint; never unpickles anything."""
    if str(path) == "-":  # `-` is standard input for names, never a checkpoint
        raise DinogenError("a checkpoint is read from a file, not from standard input ('-'); give its path.")
    path = Path(path)
    raw = read_bytes(path, "checkpoint", "train one with `dinogen train`, or give the path of another", ZIP_MAGIC,
                     f"{path} is not a dinogen checkpoint (not even a zip archive); a file of names goes to "
                     "`dinogen train` or `dinogen eval`, a checkpoint comes from `dinogen train`.")
    _verify_digest(path, raw)
    try:
        _check_members(path, raw)
        with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
            arrays = _ReadOnUse(npz)  # a member is read when the checks ask for it, and only then
            ckpt = _check(path, arrays)
    except DinogenError:
        raise
    except Exception as exc:  # sealed yet unreadable: ValueError, zipfile and zlib errors, ...
        raise DinogenError(f"{path} is not a readable dinogen checkpoint ({_short(exc)}); {RETRAIN}.") from None
    unused = sorted(set(arrays) - arrays.read)
    if unused:
        raise _invalid(path, f"it holds {shown(unused[0])!r}, which its metadata does not call for")
    return ckpt


class _ReadOnUse(Mapping):
    """The arrays of an open .npz, each read on first use; `read` names those used."""

    def __init__(self, npz) -> None:
        self.npz, self.read, self.cache = npz, set(), {}

    def __getitem__(self, key: str) -> np.ndarray:
        if key not in self.cache:
            self.cache[key] = self.npz[key]
            self.read.add(key)
        return self.cache[key]

    def __contains__(self, key) -> bool:  # without reading the member (Mapping's would read it)
        return key in self.npz.files

    def __iter__(self):
        return iter(self.npz.files)

    def __len__(self) -> int:
        return len(self.npz.files)


MEMBER = re.compile(r"(meta|(param|best)/[\w.]+|optim/(t|[mv]/[\w.]+)|data/(codes|offsets|categories))\.npy")


def _check_members(path: Path, raw: bytes) -> None:
    """Before anything is decompressed: every member of the zip is one the format defines,
    stored as dinogen writes it (uncompressed), so no member can hold more than the file
    does; a crafted member that would expand to gigabytes is refused unread."""
    with zipfile.ZipFile(io.BytesIO(raw)) as archive:
        for member in archive.infolist():
            if not MEMBER.fullmatch(member.filename):
                raise _invalid(path, f"it holds {shown(member.filename)!r}, which the format does not define")
            if member.compress_type != zipfile.ZIP_STORED or member.file_size > len(raw):
                raise _invalid(path, f"its member {member.filename} is compressed, which dinogen never writes")


def _verify_digest(path: Path, raw: bytes) -> None:
    tail = raw[-(len(DIGEST_PREFIX) + DIGEST_LEN) :]  # raw starts as a zip does: read_bytes checked it
    if not tail.startswith(DIGEST_PREFIX):
        raise DinogenError(
            f"{path} is not a dinogen checkpoint, or it is truncated (no checksum at its end); {RETRAIN}."
        )
    if hashlib.sha256(memoryview(raw)[:-DIGEST_LEN]).hexdigest().encode("ascii") != raw[-DIGEST_LEN:]:  # no copy
        raise DinogenError(f"{path} is damaged: its checksum does not match its contents; {RETRAIN}.")


def _short(exc: BaseException) -> str:
    text = str(exc).strip().rstrip(".") or type(exc).__name__
    return text.splitlines()[0][:120]


def _invalid(path: Path, problem: str) -> DinogenError:
    """The one sentence for a file that opened but is not a valid checkpoint."""
    return DinogenError(f"{path} is not a valid dinogen checkpoint: {problem}; {RETRAIN}.")


def _check(path: Path, arrays: dict[str, np.ndarray]) -> Checkpoint:
    if "meta" not in arrays or arrays["meta"].shape != () or arrays["meta"].dtype.kind != "U":
        raise _invalid(path, "it has no metadata entry")
    try:
        meta = json.loads(str(arrays["meta"][()]))
    except json.JSONDecodeError:
        raise _invalid(path, "its metadata is not valid JSON") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise _invalid(path, "its metadata does not name the dinogen format")
    version = meta.get("format_version")
    if not isinstance(version, int):
        raise _invalid(path, "its format version is missing")
    if version > FORMAT_VERSION:
        raise DinogenError(
            f"{path} was made by a newer dinogen (format {version}; this one reads up to {FORMAT_VERSION}); upgrade dinogen."
        )
    try:
        cfg = ModelConfig(**meta["model"])
        vocab = tuple(meta["vocab"])
    except (KeyError, TypeError, ValueError):
        raise _invalid(path, "its model description is incomplete") from None
    problem = model_problem(cfg) or meta_problem(meta)
    if problem:
        raise _invalid(path, f"{problem}")
    shapes = param_shapes(cfg)
    if len(vocab) + 1 != cfg.vocab_size or not all(isinstance(c, str) and len(c) == 1 for c in vocab):
        raise _invalid(path, "its vocabulary does not match its output layer")
    if list(vocab) != sorted(set(vocab)) or any("\ud800" <= c <= "\udfff" for c in vocab):
        raise _invalid(path, "its vocabulary is not a sorted list of distinct characters")
    if any(CONTROL.match(c) for c in vocab):
        raise _invalid(path, "its vocabulary holds a control character, which no name has")
    problem = _categories_problem(meta.get("categories"), cfg.categories)
    if problem:
        raise _invalid(path, problem)
    params = _param_group(path, arrays, "param", shapes, required=True)
    best = _param_group(path, arrays, "best", shapes, required=False)
    optim = _optimizer_state(path, arrays, params)
    data = _training_data(path, arrays, cfg, meta)
    return Checkpoint(params, meta, best, optim, data)


def _categories_problem(table, expected: int) -> str | None:
    """What is wrong with the category table, or None: K entries of a distinct category
    name and a count of names, at least one name in all; absent for a model of one list."""
    if table is None:
        return f"its model has {expected} categories but no category table" if expected else None
    if not expected:
        return "it has a category table but its model has no categories"
    if not isinstance(table, list) or len(table) != expected:
        return f"its category table does not list the model's {expected} categories"
    for entry in table:
        if not (isinstance(entry, dict) and isinstance(entry.get("name"), str) and isinstance(entry.get("names"), int)
                and not isinstance(entry["names"], bool) and 1 <= entry["names"] <= MAX_COUNT):
            return f"its category table holds {shown_value(entry)}, expected a name and a count of names from 1 to 2**53"
        try:
            checked_category(entry["name"], "its category table")
        except DinogenError:
            return f"its category table holds the category {shown_value(entry['name'])}, which is no category name"
        if checked_category(entry["name"], "") != entry["name"]:
            return f"its category table holds the category {shown_value(entry['name'])}, not written as read"
    names = [entry["name"] for entry in table]
    if len(set(names)) != len(names):
        return "its category table names a category twice"
    return None


MAX_COUNT = 2**53  # names a category may count: exact as a float, so its share is a number


def _optimizer_state(path, arrays, params) -> dict[str, np.ndarray]:
    """The optim/ arrays, checked: Adam's step count t and a first (m/<name>) and second
    (v/<name>) moment per parameter, each of its parameter's shape and dtype. Empty
    when absent (SGD keeps no state; slim files keep none)."""
    adam = ["t"] + [f"{moment}/{name}" for moment in ("m", "v") for name in params]
    optim = {key: arrays[f"optim/{key}"] for key in adam if f"optim/{key}" in arrays}  # read only these
    if not any(key in optim for key in adam):
        return optim
    missing = [key for key in adam if key not in optim]
    if missing:
        raise _invalid(path, f"its optimizer state lacks optim/{missing[0]}")
    t = optim["t"]
    if t.shape != () or t.dtype.kind not in "iu":
        raise _invalid(path, f"optim/t has shape {t.shape} and dtype {t.dtype}, expected a single integer "
                             "(the optimizer's step count)")
    if not 0 <= int(t) < 2**63:
        raise _invalid(path, f"optim/t is {int(t)}, expected a step count of at least 0")
    for key in adam[1:]:
        value, param = optim[key], params[key[2:]]
        if value.shape != param.shape or value.dtype != param.dtype:
            raise _invalid(path, f"optim/{key} has shape {value.shape} and dtype {value.dtype}, expected "
                                 f"{param.shape} {param.dtype} like param/{key[2:]}")
        if not np.isfinite(value).all() or (key.startswith("v/") and (value < 0).any()):
            kind = "NaN, infinite or negative values" if key.startswith("v/") else "NaN or infinite values"
            raise _invalid(path, f"optim/{key} holds {kind}")
    return optim


def _param_group(path, arrays, prefix, shapes, required):
    present = [name for name in shapes if f"{prefix}/{name}" in arrays]
    if not present and not required:
        return None
    group = {}
    for name, shape in shapes.items():
        key = f"{prefix}/{name}"
        if key not in arrays:
            raise _invalid(path, f"the array {key} is missing")
        value = arrays[key]
        if value.shape != tuple(shape) or value.dtype not in (np.float32, np.float64):
            raise _invalid(path, f"{key} has shape {value.shape} and dtype {value.dtype}, expected {tuple(shape)} float")
        if not np.isfinite(value).all():
            raise DinogenError(f"{path} is not a valid dinogen checkpoint: {key} holds NaN or infinite values; retrain.")
        largest = float(np.abs(value).max(initial=0))
        if largest > WEIGHT_LIMIT:
            raise _invalid(path, f"{key} holds a weight of {largest:.3g}, above the {WEIGHT_LIMIT:,.0f} that no "
                                 "training comes near (its predictions would overflow)")
        group[name] = value
    return group


def _training_data(path, arrays, cfg: ModelConfig, meta) -> Dataset | None:
    """The data/codes and data/offsets arrays (and data/categories) as a Dataset, checked; None when absent."""
    vocab_size = cfg.vocab_size
    present = [key for key in ("data/codes", "data/offsets") if key in arrays]
    if not present:
        return None
    if len(present) == 1:
        missing = "data/offsets" if present == ["data/codes"] else "data/codes"
        raise _invalid(path, f"it has {present[0]} but not {missing}")
    codes, offsets = arrays["data/codes"], arrays["data/offsets"]
    if codes.ndim != 1 or codes.dtype.kind != "u":
        raise _invalid(path, f"data/codes has shape {codes.shape} and dtype {codes.dtype}, expected 1-D unsigned int")
    if offsets.ndim != 1 or offsets.dtype != np.int64 or len(offsets) < 1:
        raise _invalid(path, f"data/offsets has shape {offsets.shape} and dtype {offsets.dtype}, expected 1-D int64")
    if offsets[0] != 0 or offsets[-1] != len(codes) or (np.diff(offsets) < 0).any():
        raise _invalid(path, f"data/offsets does not cut data/codes into names (it must rise from 0 to {len(codes)})")
    if len(codes) and (codes.min() < 1 or codes.max() >= vocab_size):
        raise _invalid(path, f"data/codes holds tokens outside the vocabulary (1 to {vocab_size - 1})")
    stated = (meta.get("data") or {}).get("names")
    if isinstance(stated, int) and stated != len(offsets) - 1:
        raise _invalid(path, f"data/offsets holds {len(offsets) - 1} names, the metadata {stated}")
    return Dataset(codes.astype(np.int32), offsets, _name_categories(path, arrays, cfg, len(offsets) - 1, meta))


def _name_categories(path, arrays, cfg: ModelConfig, n: int, meta: dict) -> np.ndarray | None:
    """data/categories, checked against the model's categories and the n names."""
    if "data/categories" not in arrays:
        if cfg.categories:
            raise _invalid(path, "it has the names it was trained on but not their categories")
        return None
    cats = arrays["data/categories"]
    if not cfg.categories:
        raise _invalid(path, "it has data/categories but its model has no categories")
    if cats.shape != (n,) or cats.dtype.kind != "u":
        raise _invalid(path, f"data/categories has shape {cats.shape} and dtype {cats.dtype}, expected ({n},) unsigned int")
    if n and cats.max() >= cfg.categories:
        raise _invalid(path, f"data/categories holds categories outside 0 to {cfg.categories - 1}")
    counts = [entry["names"] for entry in meta["categories"]]
    if np.bincount(cats, minlength=cfg.categories).tolist() != counts:
        raise _invalid(path, "its category table's counts of names are not those of data/categories")
    return cats.astype(np.int32)

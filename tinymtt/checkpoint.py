"""Checkpoints: a model (or any flat dict of arrays) in one ``.npz`` file, verified on load.

The file (format version 1) is a plain, uncompressed NumPy ``.npz`` archive --
a zip holding one ``<name>.npy`` per array -- with one more entry,
``__meta__``: a uint8 array of the UTF-8 bytes of a JSON document::

    {"format": "tinymtt-checkpoint", "version": 1,
     "arrays": {"embedding.weight": {"shape": [11, 8], "dtype": "float32", "sha256": "9f2c..."}, ...},
     "meta": {...}}        # save() puts {"config": config.to_dict(), "extra": {...}} here

Anyone can read it with ``numpy.load(path, allow_pickle=False)`` and
``json.loads(npz["__meta__"].tobytes())``. There is no pickle anywhere, so
loading a file from someone else runs no code.

* Bit-exact: arrays are stored as host copies with their exact dtype and
  shape; on load every array's SHA-256 is checked, so a changed byte is named.
* Atomic: the file is written under a temporary name in the same folder and
  moved over the final name (``os.replace``) only once complete -- a crash
  never leaves a half-written checkpoint under the final name.
* Exactly the path given: ``numpy.savez`` given a str without ".npz" appends
  ".npz"; the archive here is written through an open file handle, so
  ``save(model, "run/last.ckpt")`` writes ``run/last.ckpt``.
* Every problem with a file is one ``CheckpointError`` (a ValueError) naming
  the file and what is wrong.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import zipfile
import zlib
from pathlib import Path

import numpy
from numpy.lib import format as npy_format

from . import backend
from .config import ModelConfig
from .model import MultiTaskTransformer
from .validation import check_array, describe

FORMAT_NAME = "tinymtt-checkpoint"
FORMAT_VERSION = 1
META_KEY = "__meta__"
_STORABLE_KINDS = "biufc"   # bool, signed/unsigned int, float, complex: no objects, no pickle
_ABSENT = object()


class CheckpointError(ValueError):
    """A checkpoint cannot be written or read, or does not fit the model."""


# -- helpers ---------------------------------------------------------------------
def _as_path(path) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or a pathlib.Path, got {type(path).__name__}")
    return Path(path)


def _digest(array) -> str:
    """SHA-256 of the array's bytes in C order (the same for a C- or Fortran-ordered copy)."""
    return hashlib.sha256(numpy.ascontiguousarray(array).tobytes()).hexdigest()


def _json_default(value):
    if isinstance(value, numpy.generic):   # a NumPy scalar, e.g. a step counter as int64
        return value.item()
    raise TypeError(f"a value of type {type(value).__name__} is not JSON-able")


def _to_json(value, name: str) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, default=_json_default)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{name} must be JSON-able (dicts with str keys, lists, str, numbers, bools, None): "
                        f"{error}") from None


def _check_model(model):
    if not isinstance(model, MultiTaskTransformer):
        raise TypeError(f"model must be a MultiTaskTransformer, got {type(model).__name__}")


# -- writing ---------------------------------------------------------------------
def _write_atomically(path: Path, arrays: dict):
    """Write the arrays as an .npz under a temporary name, then move it to ``path``."""
    folder = path.parent
    if not folder.is_dir():
        raise CheckpointError(f"cannot write checkpoint {path}: folder {folder} does not exist (create it first)")
    if path.is_dir():
        raise CheckpointError(f"cannot write checkpoint {path}: that path is a folder")
    temporary = folder / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        with open(temporary, "xb") as handle:   # "x": never clobbers; permissions follow the umask
            # What numpy.savez does, with allow_pickle=False, and without its keyword
            # arguments (an array named "file" would collide with savez's own).
            with zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
                for name, array in arrays.items():
                    with archive.open(name + ".npy", "w", force_zip64=True) as member:
                        npy_format.write_array(member, array, allow_pickle=False)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException as error:
        temporary.unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise CheckpointError(f"cannot write checkpoint {path}: {error}") from error
        raise


def save_arrays(path, arrays: dict, meta: dict | None = None) -> Path:
    """Save a flat dict of arrays (NumPy or CuPy) and a JSON-able ``meta`` dict to one .npz file.

    arrays: {name: array}, numeric dtypes (bool, int, float, complex); stored as
    host copies with their exact dtype. Returns the path written.
    """
    path = _as_path(path)
    if not isinstance(arrays, dict):
        raise TypeError(f"arrays must be a dict {{name: array}}, got {type(arrays).__name__}")
    if meta is not None and not isinstance(meta, dict):
        raise TypeError(f"meta must be a dict (JSON-able) or None, got {type(meta).__name__}")
    host, listing = {}, {}
    for name, value in arrays.items():
        if not isinstance(name, str) or not name or name == META_KEY:
            raise ValueError(f"array names must be non-empty strings other than {META_KEY!r}, got {name!r}")
        check_array(value, f"arrays[{name!r}]")
        value = backend.to_numpy(value)
        if value.dtype.kind not in _STORABLE_KINDS:
            raise TypeError(f"arrays[{name!r}] must have a numeric dtype (bool, int, float, complex), "
                            f"got {describe(value)}")
        host[name] = value
        listing[name] = {"shape": list(value.shape), "dtype": str(value.dtype), "sha256": _digest(value)}
    document = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "arrays": listing,
                "meta": {} if meta is None else meta}
    text = _to_json(document, "meta")
    host[META_KEY] = numpy.frombuffer(text.encode("utf-8"), dtype=numpy.uint8)
    _write_atomically(path, host)
    return path


def save(model, path, extra: dict | None = None) -> Path:
    """Save every parameter of ``model``, its config and ``extra`` (JSON-able, e.g. the step)."""
    _check_model(model)
    if extra is not None and not isinstance(extra, dict):
        raise TypeError(f"extra must be a dict (JSON-able) or None, got {type(extra).__name__}")
    _to_json(extra, "extra")   # fail on extra by name, before anything is written
    arrays = {name: backend.to_numpy(value) for name, value in model.parameters().items()}
    return save_arrays(path, arrays, {"config": model.config.to_dict(), "extra": {} if extra is None else extra})


# -- reading ---------------------------------------------------------------------
@contextlib.contextmanager
def _open(path: Path):
    """The file as an open NpzFile (closed again after the block), or a CheckpointError saying why not."""
    if not path.exists():
        raise CheckpointError(f"no checkpoint file at {path}")
    if path.is_dir():
        raise CheckpointError(f"checkpoint {path} is a folder, not a file")
    unreadable = f"checkpoint {path} is not a readable .npz archive: truncated, corrupted or not a checkpoint at all"
    try:
        handle = open(path, "rb")   # our own handle: numpy.load(path) leaks its handle when the zip is broken
    except OSError as error:
        raise CheckpointError(f"cannot read checkpoint {path}: {error}") from None
    with handle:
        start = handle.read(6)
        handle.seek(0)
        if start == b"\x93NUMPY":
            raise CheckpointError(f"checkpoint {path} holds a single array (.npy), not an .npz archive")
        if not start:
            raise CheckpointError(f"{unreadable} (the file is empty)")
        if not start.startswith(b"PK"):   # checked here: numpy would suggest allow_pickle=True for it
            raise CheckpointError(f"{unreadable} (it does not start with the zip signature)")
        try:
            archive = numpy.load(handle, allow_pickle=False)
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
            raise CheckpointError(f"{unreadable} ({error})") from None
        with archive:
            yield archive


def _read_document(archive, path: Path) -> dict:
    """The JSON document in ``__meta__``, checked to be a tinymtt checkpoint this version reads."""
    if META_KEY not in archive.files:
        raise CheckpointError(f"{path} is not a tinymtt checkpoint: it has no {META_KEY!r} entry")
    try:
        raw = archive[META_KEY]
        if raw.dtype != numpy.uint8 or raw.ndim != 1:
            raise ValueError(f"expected uint8 bytes, got {describe(raw)}")
        document = json.loads(raw.tobytes().decode("utf-8"))
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        raise CheckpointError(f"checkpoint {path}: the {META_KEY!r} entry is unreadable ({error})") from None
    name = document.get("format") if isinstance(document, dict) else None
    if name != FORMAT_NAME:
        raise CheckpointError(f"{path} is not a tinymtt checkpoint: format is {name!r}, expected {FORMAT_NAME!r}")
    version = document.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise CheckpointError(f"checkpoint {path}: format version must be a positive integer, got {version!r}")
    if version > FORMAT_VERSION:
        raise CheckpointError(f"checkpoint {path} has format version {version}, newer than this tinymtt reads "
                              f"(up to {FORMAT_VERSION}): upgrade tinymtt")
    if not isinstance(document.get("arrays"), dict) or not isinstance(document.get("meta"), dict):
        raise CheckpointError(f"checkpoint {path}: {META_KEY!r} must hold the dicts 'arrays' and 'meta'")
    return document


def _expected(path: Path, name: str, info) -> tuple:
    """(shape, dtype, sha256) that ``__meta__`` records for one array."""
    try:
        shape = tuple(info["shape"])
        dtype = numpy.dtype(info["dtype"])
        digest = info["sha256"]
        if not all(isinstance(n, int) and n >= 0 for n in shape) or not isinstance(digest, str):
            raise ValueError("bad shape or sha256")
    except (TypeError, ValueError, KeyError) as error:
        raise CheckpointError(f"checkpoint {path}: {META_KEY!r} describes array {name!r} badly ({error})") from None
    if dtype.kind not in _STORABLE_KINDS:
        raise CheckpointError(f"checkpoint {path}: array {name!r} has dtype {dtype}; only numeric arrays are "
                              f"read (object arrays would need pickle, refused: allow_pickle=False)")
    return shape, dtype, digest


def _read_member(archive, path: Path, name: str):
    try:
        return archive[name]
    except ValueError as error:
        if "allow_pickle" in str(error):
            raise CheckpointError(f"checkpoint {path}: array {name!r} is a pickled object array; refused "
                                  f"(checkpoints load with allow_pickle=False, so a file runs no code)") from None
        raise CheckpointError(f"checkpoint {path}: array {name!r} is unreadable ({error})") from None
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        raise CheckpointError(f"checkpoint {path}: array {name!r} is corrupted ({error})") from None


def load_arrays(path) -> tuple:
    """(arrays, meta) from a file ``save_arrays`` wrote; arrays are NumPy (host), checksums verified."""
    path = _as_path(path)
    with _open(path) as archive:
        document = _read_document(archive, path)
        listing = document["arrays"]
        absent = [name for name in listing if name not in archive.files]
        unlisted = [name for name in archive.files if name != META_KEY and name not in listing]
        if absent or unlisted:
            raise CheckpointError(f"checkpoint {path} does not match its own table of contents: "
                                  f"listed but absent {absent}, present but unlisted {unlisted}")
        arrays = {}
        for name, info in listing.items():
            shape, dtype, digest = _expected(path, name, info)
            array = _read_member(archive, path, name)
            if array.shape != shape or array.dtype != dtype:
                raise CheckpointError(f"checkpoint {path}: array {name!r} is {describe(array)}, but {META_KEY!r} "
                                      f"records {dtype} of shape {shape}")
            if _digest(array) != digest:
                raise CheckpointError(f"checkpoint {path}: checksum mismatch for array {name!r}: its bytes changed "
                                      f"after saving (corrupted or tampered)")
            arrays[name] = array
    return arrays, document["meta"]


def load_meta(path) -> dict:
    """The ``meta`` dict alone (for a model checkpoint: {"config", "extra"}), without reading the arrays."""
    path = _as_path(path)
    with _open(path) as archive:
        return _read_document(archive, path)["meta"]


# -- models ----------------------------------------------------------------------
def _stored_config(path: Path, meta: dict) -> dict:
    if not isinstance(meta.get("config"), dict):
        raise CheckpointError(f"checkpoint {path} holds no model config: it was not written by "
                              f"tinymtt.checkpoint.save (read it with load_arrays)")
    return meta["config"]


def _assign(model, arrays: dict, path: Path):
    """Copy the arrays into the model's parameters in place -- all of them, or none on a mismatch."""
    params = model.parameters()
    problems = []
    missing = [name for name in params if name not in arrays]
    unexpected = [name for name in arrays if name not in params]
    if missing:
        problems.append(f"missing parameters {missing}")
    if unexpected:
        problems.append(f"unexpected parameters {unexpected}")
    for name in (name for name in params if name in arrays):
        have, want = arrays[name], params[name]
        if tuple(have.shape) != tuple(want.shape):
            problems.append(f"{name!r} has shape {tuple(have.shape)}, the model needs {tuple(want.shape)}")
        if have.dtype != want.dtype:
            problems.append(f"{name!r} has dtype {have.dtype}, the model needs {want.dtype}")
    if problems:
        raise CheckpointError(f"checkpoint {path} does not fit the model its config builds: " + "; ".join(problems))
    for name, value in params.items():
        value[...] = backend.array_module(value).asarray(arrays[name])


def load(path) -> MultiTaskTransformer:
    """A new MultiTaskTransformer from the stored config, with the stored parameters (current backend)."""
    path = _as_path(path)
    arrays, meta = load_arrays(path)
    stored = _stored_config(path, meta)
    try:
        config = ModelConfig.from_dict(stored)
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"checkpoint {path}: the stored model config is invalid ({error})") from None
    model = MultiTaskTransformer(config)
    _assign(model, arrays, path)
    return model


def load_into(model, path) -> dict:
    """Load the stored parameters into ``model`` in place (to resume); returns the saved ``extra``.

    The stored config must equal ``model.config`` key for key (seed included);
    the parameter arrays stay the same objects, so an optimizer holding them
    sees the loaded values.
    """
    _check_model(model)
    path = _as_path(path)
    arrays, meta = load_arrays(path)
    stored, current = _stored_config(path, meta), model.config.to_dict()
    differing = [key for key in sorted(set(stored) | set(current))
                 if stored.get(key, _ABSENT) != current.get(key, _ABSENT)]
    if differing:
        details = "; ".join(f"{key}: checkpoint {stored.get(key, '(absent)')!r}, model {current.get(key, '(absent)')!r}"
                            for key in differing)
        raise CheckpointError(f"checkpoint {path} was saved from a different model config "
                              f"(differing keys {differing}): {details}")
    _assign(model, arrays, path)
    return meta.get("extra", {})

"""HDF5 checkpoints: arrays, JSON metadata and a checksum, written atomically.

A checkpoint file holds named arrays in groups (``params``, ``optimizer``, ``best``),
each array at its name (``params/encoder/0/W``, ``optimizer/adam/m/encoder/0/W``), so
``h5ls -r`` or HDFView show the parameters by name; JSON-encoded metadata in the root
attributes; and a SHA-256 checksum over the metadata and every array (name, dtype, shape
and bytes). Files are written through
:func:`~.fileio.atomic_path`, so a reader sees the previous file or the complete new one.

:func:`read_checkpoint` refuses, with a :class:`CheckpointError` naming the file and
the problem, a file that does not open (random bytes, truncation), that is not one of
ours, that lacks a group, an attribute or an array, whose arrays are not plain numbers
or are implausibly large for the file (a crafted file cannot make it allocate
terabytes), or whose checksum does not match. :func:`check_shapes` then compares the
arrays with the model built from the run's arguments.
"""
import hashlib
import json
import os

import h5py
import numpy as np

from .fileio import atomic_path

FORMAT = "stick_breaking_dgms-checkpoint"
# 3: arrays stored under their names (encoder/0/W), readable in h5ls or HDFView;
# 2: arrays stored by index, the checksum covering the metadata; 1: arrays only (both still read)
FORMAT_VERSION = 3
NUMERIC_KINDS = "biuf"
# A checkpoint is written uncompressed, so its arrays cannot hold much more than the file;
# anything larger (a crafted dataset with a huge shape) is refused before it is read.
_SIZE_FACTOR, _SIZE_SLACK = 8, 1 << 20


class CheckpointError(Exception):
    """A checkpoint is missing, unreadable, corrupted or does not fit the model."""


def _checksum(groups, meta_json=None):
    h = hashlib.sha256()
    if meta_json is not None:
        h.update(meta_json.encode("utf-8") + b"\0")
    for group in sorted(groups):
        for name in sorted(groups[group]):
            arr = np.ascontiguousarray(groups[group][name])
            h.update(f"{group}/{name}|{arr.dtype.str}|{arr.shape}|".encode())
            h.update(arr.tobytes())
    return h.hexdigest()


def write_checkpoint(path, groups, meta, previous=None, between=None):
    """Write ``groups`` ({group: {name: array}}) and ``meta`` (JSON-able dict) to ``path``.

    With ``previous``, an existing ``path`` is renamed to it once the new file is
    complete (:func:`.fileio.atomic_path`; ``between`` is its test hook).

    Array names may contain ``/`` (e.g. ``encoder/0/W``): each array is stored at its
    name inside its group (HDF5 makes the intermediate groups), and the group's ``names``
    attribute lists them in order.
    """
    groups = {g: {n: np.asarray(a) for n, a in arrays.items()} for g, arrays in groups.items()}
    for group, arrays in groups.items():
        for name, arr in arrays.items():
            if arr.dtype.kind not in NUMERIC_KINDS:
                raise ValueError(f"checkpoint array {group}/{name} has dtype {arr.dtype}")
            if not _valid_name(name) or any(other.startswith(name + "/") for other in arrays):
                raise ValueError(f"checkpoint array name {group}/{name!r}: expected names "
                                 f"like encoder/0/W, none the folder of another")
    meta_json = json.dumps(meta, sort_keys=True)
    with atomic_path(path, previous, between) as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = FORMAT
            f.attrs["format_version"] = FORMAT_VERSION
            f.attrs["meta"] = meta_json
            f.attrs["groups"] = json.dumps(sorted(groups))
            f.attrs["checksum"] = _checksum(groups, meta_json)
            for group, arrays in groups.items():
                g = f.create_group(group)
                g.attrs["names"] = json.dumps(list(arrays))
                for name, arr in arrays.items():
                    g.create_dataset(name, data=arr)


def _text_attr(holder, key, path, where=""):
    """A string attribute of a file or group (``where``: the group, for messages)."""
    if key not in holder.attrs:
        raise CheckpointError(f"{path}: damaged checkpoint: no {where}'{key}' attribute")
    value = holder.attrs[key]
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    if not isinstance(value, str):
        raise CheckpointError(f"{path}: damaged checkpoint: the {where}'{key}' attribute is a "
                              f"{type(value).__name__}, expected a string")
    return value


def _json_attr(holder, key, path, kind, where=""):
    text = _text_attr(holder, key, path, where)
    try:
        value = json.loads(text)
    except ValueError as e:
        raise CheckpointError(f"{path}: damaged checkpoint: {where}'{key}' is not valid JSON "
                              f"({e})") from None
    if not isinstance(value, kind):
        raise CheckpointError(f"{path}: damaged checkpoint: {where}'{key}' is a "
                              f"{type(value).__name__}, expected a {kind.__name__}")
    return value


def _valid_name(name):
    """A relative HDF5 path without empty, '.' or '..' parts (it cannot leave its group)."""
    parts = name.split("/") if isinstance(name, str) else [""]
    return all(p and p not in (".", "..") for p in parts)


def _read_groups(f, path, group_names, budget, by_name=True):
    groups, total = {}, 0
    for group in group_names:
        if not isinstance(group, str) or group not in f or not isinstance(f[group], h5py.Group):
            raise CheckpointError(f"{path}: damaged checkpoint: missing the '{group}' group")
        g = f[group]
        names = _json_attr(g, "names", path, list, where=f"{group}/")
        if not all(isinstance(n, str) for n in names) or len(set(names)) != len(names):
            raise CheckpointError(f"{path}: damaged checkpoint: group '{group}' has invalid "
                                  f"array names")
        if by_name and not all(_valid_name(n) for n in names):
            raise CheckpointError(f"{path}: damaged checkpoint: group '{group}' has invalid "
                                  f"array names")
        arrays = {}
        for i, name in enumerate(names):
            ds = g.get(name if by_name else str(i))
            if not isinstance(ds, h5py.Dataset):
                raise CheckpointError(f"{path}: damaged checkpoint: missing the array "
                                      f"'{group}/{name}'")
            if ds.dtype.kind not in NUMERIC_KINDS:
                raise CheckpointError(f"{path}: array '{group}/{name}' has dtype {ds.dtype}, "
                                      f"expected numbers")
            total += int(np.prod(ds.shape, dtype=np.float64)) * ds.dtype.itemsize
            if total > budget:
                raise CheckpointError(f"{path}: array '{group}/{name}' of shape {ds.shape} "
                                      f"is larger than the file can hold: damaged or crafted "
                                      f"checkpoint")
            arrays[name] = np.asarray(ds[()])
        groups[group] = arrays
    return groups


def read_checkpoint(path, required_groups=()):
    """Read a checkpoint; return (groups, meta). Raise CheckpointError when it is not sound."""
    path = os.fspath(path)
    try:
        size = os.path.getsize(path)
        f = h5py.File(path, "r")
    except FileNotFoundError:
        raise CheckpointError(f"{path}: checkpoint file not found") from None
    except Exception as e:  # h5py raises OSError, but also others on garbage
        raise CheckpointError(f"{path}: not a readable HDF5 file (truncated or corrupted?): "
                              f"{type(e).__name__}: {e}") from None
    try:
        with f:
            try:
                fmt = f.attrs.get("format")
                if isinstance(fmt, bytes):
                    fmt = fmt.decode("utf-8", "replace")
                if not isinstance(fmt, str) or fmt != FORMAT:
                    raise CheckpointError(f"{path}: not a {FORMAT} file (format attribute "
                                          f"{fmt!r})")
                version = f.attrs.get("format_version")
                if not isinstance(version, (int, np.integer)) or int(version) not in (1, 2, 3):
                    raise CheckpointError(f"{path}: unsupported checkpoint format version "
                                          f"{version!r}")
                meta_json = _text_attr(f, "meta", path)
                meta = _json_attr(f, "meta", path, dict)
                group_names = _json_attr(f, "groups", path, list)
                expected = _text_attr(f, "checksum", path)
                groups = _read_groups(f, path, group_names,
                                      _SIZE_FACTOR * size + _SIZE_SLACK, int(version) >= 3)
            except CheckpointError:
                raise
            except Exception as e:
                raise CheckpointError(f"{path}: damaged checkpoint, cannot read it: "
                                      f"{type(e).__name__}: {e}") from None
    except CheckpointError:
        raise
    except Exception as e:  # closing a damaged file can fail too
        raise CheckpointError(f"{path}: damaged checkpoint: {type(e).__name__}: {e}") from None
    actual = _checksum(groups, meta_json if int(version) >= 2 else None)
    if actual != expected:
        raise CheckpointError(f"{path}: checksum mismatch: the file is corrupted")
    for group in required_groups:
        if group not in groups:
            raise CheckpointError(f"{path}: missing the '{group}' arrays")
    return groups, meta


def check_shapes(path, arrays, expected, what="parameters", dtypes=None):
    """Raise CheckpointError unless ``arrays`` has exactly the names and shapes of ``expected``.

    ``expected`` maps name -> shape, typically from the model built from the run's
    arguments; ``dtypes`` (name -> dtype), when given, must match too.
    """
    missing = [n for n in expected if n not in arrays]
    extra = [n for n in arrays if n not in expected]
    if missing or extra:
        raise CheckpointError(f"{path}: {what} do not match the model: missing {missing}, "
                              f"unexpected {extra}")
    for name, shape in expected.items():
        if tuple(arrays[name].shape) != tuple(shape):
            raise CheckpointError(f"{path}: {what} '{name}' has shape {arrays[name].shape}, "
                                  f"the model built from the arguments needs {tuple(shape)}")
        if dtypes is not None and np.dtype(arrays[name].dtype) != np.dtype(dtypes[name]):
            raise CheckpointError(f"{path}: {what} '{name}' has dtype {arrays[name].dtype}, "
                                  f"the model built from the arguments needs "
                                  f"{np.dtype(dtypes[name])}")

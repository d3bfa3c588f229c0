"""HDF5 checkpoints: arrays, JSON metadata and a checksum, written atomically.

A checkpoint file holds named arrays in groups (``params``, ``optimizer``, ``best``),
JSON-encoded metadata in the root attributes, and a SHA-256 checksum over every array
(name, dtype, shape and bytes). :func:`read_checkpoint` refuses a file that does not
open, lacks a group or an attribute, or whose checksum does not match, with a
:class:`CheckpointError` naming the file and the problem.
"""
import hashlib
import json

import h5py
import numpy as np

from .fileio import atomic_path

FORMAT = "stick_breaking_dgms-checkpoint"
FORMAT_VERSION = 1


class CheckpointError(Exception):
    """A checkpoint is missing, unreadable, corrupted or does not fit the model."""


def _checksum(groups):
    h = hashlib.sha256()
    for group in sorted(groups):
        for name in sorted(groups[group]):
            arr = np.ascontiguousarray(groups[group][name])
            h.update(f"{group}/{name}|{arr.dtype.str}|{arr.shape}|".encode())
            h.update(arr.tobytes())
    return h.hexdigest()


def write_checkpoint(path, groups, meta):
    """Write ``groups`` ({group: {name: array}}) and ``meta`` (JSON-able dict) to ``path``.

    Array names may contain ``/`` (e.g. ``encoder/0/W``); they are stored escaped.
    """
    groups = {g: {n: np.asarray(a) for n, a in arrays.items()} for g, arrays in groups.items()}
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = FORMAT
            f.attrs["format_version"] = FORMAT_VERSION
            f.attrs["meta"] = json.dumps(meta, sort_keys=True)
            f.attrs["groups"] = json.dumps(sorted(groups))
            f.attrs["checksum"] = _checksum(groups)
            for group, arrays in groups.items():
                g = f.create_group(group)
                g.attrs["names"] = json.dumps(list(arrays))
                for i, (name, arr) in enumerate(arrays.items()):
                    g.create_dataset(str(i), data=arr)


def read_checkpoint(path, required_groups=()):
    """Read a checkpoint; return (groups, meta). Raise CheckpointError when it is not sound."""
    try:
        f = h5py.File(path, "r")
    except FileNotFoundError:
        raise CheckpointError(f"{path}: checkpoint file not found") from None
    except Exception as e:  # h5py raises OSError, but also others on garbage
        raise CheckpointError(f"{path}: not a readable HDF5 file (truncated or corrupted?): "
                              f"{type(e).__name__}: {e}") from None
    try:
        with f:
            try:
                if f.attrs.get("format") != FORMAT:
                    raise CheckpointError(f"{path}: not a {FORMAT} file "
                                          f"(format attribute {f.attrs.get('format')!r})")
                meta = json.loads(f.attrs["meta"])
                group_names = json.loads(f.attrs["groups"])
                expected = f.attrs["checksum"]
                groups = {}
                for group in group_names:
                    g = f[group]
                    names = json.loads(g.attrs["names"])
                    groups[group] = {name: g[str(i)][()] for i, name in enumerate(names)}
            except CheckpointError:
                raise
            except Exception as e:
                raise CheckpointError(f"{path}: damaged checkpoint, cannot read it: "
                                      f"{type(e).__name__}: {e}") from None
    except CheckpointError:
        raise
    except Exception as e:  # closing a damaged file can fail too
        raise CheckpointError(f"{path}: damaged checkpoint: {type(e).__name__}: {e}") from None
    if not isinstance(meta, dict) or not isinstance(expected, str):
        raise CheckpointError(f"{path}: damaged checkpoint metadata")
    if _checksum(groups) != expected:
        raise CheckpointError(f"{path}: checksum mismatch: the arrays are corrupted")
    for group in required_groups:
        if group not in groups:
            raise CheckpointError(f"{path}: missing the '{group}' arrays")
    return groups, meta


def check_shapes(path, arrays, expected, what="parameters"):
    """Raise CheckpointError unless ``arrays`` has exactly the names and shapes of ``expected``.

    ``expected`` maps name -> shape, typically from the model built from the run's arguments.
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

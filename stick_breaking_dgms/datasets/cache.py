"""Preprocessed-data caches: deterministic ``.npz`` files with a checksum inside.

A cache file is an ordinary ``.npz`` (``numpy.load`` reads it) written so that the same
arrays always give the same bytes: members in sorted order, a fixed 1980-01-01 time stamp
in every zip header (``numpy.savez`` stamps the current time), deflate at a fixed level.
Besides the data it holds two members:

``__meta__``
    a JSON string (format version, how the data were made, sizes);
``__checksum__``
    the SHA-256 hex digest of the meta string and of every array's name, dtype, shape and
    bytes (see :func:`arrays_checksum`), so a reader detects a truncated, corrupted or
    hand-edited cache without trusting the zip CRCs alone.

Files are written through :func:`stick_breaking_dgms.fileio.atomic_path`: a reader sees
the old file or the complete new one, never half of one, and a failed write leaves nothing.
A cache that fails :func:`read_cache`'s checks raises :class:`CacheError`; loaders then
rebuild it from the source files and say so with a :class:`CacheWarning`.
"""
import hashlib
import json
import os
import warnings
import zipfile

import numpy as np

from ..fileio import atomic_path, remove_stale_temporaries

# A cache's temporary file untouched for this long was left by a killed writer (a write
# takes seconds); another process may be writing a younger one, which is left alone.
STALE_SECONDS = 3600
from .base import DatasetError

META = "__meta__"
CHECKSUM = "__checksum__"
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip header can hold
_DEFLATE_LEVEL = 1  # images are mostly zeros: level 1 compresses them nearly as well, 5x faster


class CacheError(DatasetError):
    """A cache file is missing, unreadable or fails its checks; it should be rebuilt."""


class CacheWarning(UserWarning):
    """A cache file failed its checks and is being rebuilt, or could not be written."""


def sha256_file(path, chunk=1 << 20):
    """Hex SHA-256 of the file at ``path`` (for provenance in cache metadata)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def source_fingerprints(sources):
    """{name: {"size", "sha256"}} of the source files a cache is built from.

    Neither the path nor the time enters, so the same source gives the same cache bytes
    wherever it lies.
    """
    return {name: {"size": os.path.getsize(path), "sha256": sha256_file(path)}
            for name, path in sorted(sources.items())}


def check_sources(path, meta, sources):
    """Raise :class:`CacheError` when a source file in ``sources`` is not the one ``path`` was
    built from (another size or SHA-256; hashing MNIST takes 0.04 s, SVHN's two files 0.5 s).
    A source that no longer exists is not a reason to distrust the cache."""
    stored = meta.get("sources") or {}
    for name, src in sources.items():
        if not os.path.isfile(src) or name not in stored:
            continue
        old = stored[name]
        if os.path.getsize(src) != old.get("size") or sha256_file(src) != old.get("sha256"):
            raise CacheError(f"{path}: built from another {name} than {src} (its size or "
                             f"SHA-256 differs): the source changed")


def arrays_checksum(arrays, meta_json):
    """SHA-256 over ``meta_json`` and each array's name, dtype, shape and C-order bytes."""
    h = hashlib.sha256()
    h.update(meta_json.encode("utf-8"))
    for name in sorted(arrays):
        arr = np.ascontiguousarray(arrays[name])
        h.update(f"\0{name}\0{arr.dtype.str}\0{arr.shape}\0".encode("utf-8"))
        h.update(memoryview(arr.reshape(-1)).cast("B"))
    return h.hexdigest()


def _check_name(name):
    if name in (META, CHECKSUM) or not name or "/" in name:
        raise ValueError(f"invalid cache array name {name!r}")


def write_cache(path, arrays, meta):
    """Write ``arrays`` (name -> ndarray) and ``meta`` (JSON-able dict) to ``path`` atomically.

    The same arrays and meta give a byte-identical file. Object arrays are refused, so the
    file never needs pickle to be read.
    """
    meta_json = json.dumps(meta, sort_keys=True)
    members = {}
    for name, arr in arrays.items():
        _check_name(name)
        arr = np.ascontiguousarray(arr)
        if arr.dtype.hasobject:
            raise ValueError(f"cache array {name!r} has object dtype")
        members[name] = arr
    members[META] = np.array(meta_json)
    members[CHECKSUM] = np.array(arrays_checksum(
        {k: v for k, v in members.items() if k != META}, meta_json))
    remove_stale_temporaries([path], older_than=STALE_SECONDS)
    with atomic_path(path) as tmp:
        with zipfile.ZipFile(tmp, "w", allowZip64=True) as zf:
            for name in sorted(members):
                info = zipfile.ZipInfo(name + ".npy", date_time=_ZIP_TIME)
                info.compress_type = zipfile.ZIP_DEFLATED
                info._compresslevel = _DEFLATE_LEVEL  # ZipInfo has no public setter in 3.8-3.12
                info.external_attr = 0o644 << 16
                with zf.open(info, "w", force_zip64=True) as f:
                    np.lib.format.write_array(f, members[name], allow_pickle=False)
    return path


def read_cache(path, expected, meta_expected=None):
    """Read and check a cache written by :func:`write_cache`; return ``(arrays, meta)``.

    Parameters
    ----------
    path : str
        The cache file.
    expected : dict
        name -> (shape, dtype); ``None`` in a shape matches any length, and every array
        named here must be present with exactly that dtype. Extra arrays are an error too.
    meta_expected : dict, optional
        key -> value the stored meta must hold (format version, seed, options, ...).

    Raises
    ------
    CacheError
        The file is missing, unreadable, truncated, or its arrays, meta or checksum differ
        from what was expected; the message names the file and the problem.
    """
    if not os.path.isfile(path):
        raise CacheError(f"{path}: cache file not found")
    try:
        with np.load(path, allow_pickle=False) as npz:
            members = {name: npz[name] for name in npz.files}
    except Exception as e:  # zipfile, zlib, numpy format errors, truncation: all "unreadable"
        raise CacheError(f"{path}: unreadable cache file (truncated or corrupted?): "
                         f"{type(e).__name__}: {e}") from None
    meta_arr = members.pop(META, None)
    stored_sum = members.pop(CHECKSUM, None)
    if meta_arr is None or stored_sum is None:
        raise CacheError(f"{path}: not a cache file of this package (no {META} or {CHECKSUM})")
    if meta_arr.dtype.kind != "U" or meta_arr.ndim or stored_sum.dtype.kind != "U" \
            or stored_sum.ndim:
        raise CacheError(f"{path}: {META} / {CHECKSUM} are not strings")
    meta_json = str(meta_arr)
    try:
        meta = json.loads(meta_json)
    except ValueError as e:
        raise CacheError(f"{path}: {META} is not valid JSON: {e}") from None
    if not isinstance(meta, dict):
        raise CacheError(f"{path}: {META} is a {type(meta).__name__}, expected a JSON object")
    for key, want in (meta_expected or {}).items():
        if meta.get(key) != want:
            raise CacheError(f"{path}: made with {key}={meta.get(key)!r}, expected {want!r}")
    if set(members) != set(expected):
        raise CacheError(f"{path}: holds arrays {sorted(members)}, expected {sorted(expected)}")
    for name, (shape, dtype) in expected.items():
        arr = members[name]
        if arr.dtype != np.dtype(dtype):
            raise CacheError(f"{path}: {name} has dtype {arr.dtype}, expected {np.dtype(dtype)}")
        if arr.ndim != len(shape) or any(w is not None and g != w
                                         for g, w in zip(arr.shape, shape)):
            raise CacheError(f"{path}: {name} has shape {arr.shape}, expected {shape} "
                             f"(None = any)")
    actual = arrays_checksum(members, meta_json)
    if actual != str(stored_sum):
        raise CacheError(f"{path}: checksum mismatch (stored {str(stored_sum)[:16]}..., "
                         f"data give {actual[:16]}...): the file is corrupted")
    return members, meta


def load_or_build(path, expected, meta_expected, build, rebuild=False, sources=None):
    """Return the cached ``(arrays, meta)`` at ``path``, building and caching them if needed.

    ``build()`` returns ``(arrays, meta)`` from the source files (and raises DatasetError
    for a bad source, in which case nothing is written). ``sources`` (name -> path) are
    the files the cache is made from: their size, time and SHA-256 are stored, and a cache
    whose source has changed since is rebuilt. A cache that exists but fails its checks is
    never trusted: it is rebuilt, with a :class:`CacheWarning` saying why. When the cache
    cannot be written (read-only directory, full disk) the data are still returned, with a
    warning.
    """
    sources = sources or {}
    if os.path.exists(path) and not rebuild:
        try:
            arrays, meta = read_cache(path, expected, meta_expected)
            check_sources(path, meta, sources)
            return arrays, meta
        except CacheError as e:
            warnings.warn(f"rebuilding cache: {e}", CacheWarning, stacklevel=3)
    arrays, meta = build()
    meta = dict(meta, **meta_expected)
    if sources:
        meta["sources"] = source_fingerprints(sources)
    try:
        write_cache(path, arrays, meta)
    except OSError as e:
        warnings.warn(f"{path}: could not write the cache ({e}); continuing without it",
                      CacheWarning, stacklevel=3)
    return arrays, meta

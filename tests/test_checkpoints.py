"""Checkpoint files, run files and atomic writes: integrity, fallback, no overwrite, fuzzing.

Nothing here imports Aesara: checkpoints are written with :func:`write_checkpoint` from
plain arrays. (Shapes that do not fit a *compiled* model are refused by
``Trainer.restore``; that is tested in test_robustness.py, which builds one.)
"""
import json
import os

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stick_breaking_dgms import checkpoints, fileio
from stick_breaking_dgms.checkpoints import (CheckpointError, check_shapes, read_checkpoint,
                                             write_checkpoint)
from stick_breaking_dgms.runfiles import RunFiles, load_latest_checkpoint, resolve_run

from helpers import Watchdog

SHAPES = {"encoder/0/W": (6, 4), "encoder/0/b": (4,), "latent/W_a": (4, 2)}


def arrays(seed=0, shapes=SHAPES, dtype=np.float32):
    rng = np.random.default_rng(seed)
    return {n: rng.standard_normal(s).astype(dtype) for n, s in shapes.items()}


def state(status="running", epoch=1):
    return {"state": {"epoch": epoch, "batch": 0, "sums": [0.0, 0.0], "status": status}}


def write(path, seed=0, status="running", groups=None, epoch=1):
    groups = groups or {"params": arrays(seed), "optimizer": arrays(seed + 100)}
    write_checkpoint(str(path), groups, dict(state(status, epoch), args={"seed": 1234}))
    return groups


FIRST, SECOND = list(SHAPES)[:2]  # arrays are stored at their names: params/encoder/0/W


def run_files(tmp_path, name="run"):
    return RunFiles(str(tmp_path), "stickBreaking_vae", name)


# --------------------------------------------------------------------------- round trip

def test_round_trip_is_exact(tmp_path):
    path = tmp_path / "c.h5"
    groups = write(path)
    got, meta = read_checkpoint(str(path), required_groups=("params", "optimizer"))
    assert meta["args"]["seed"] == 1234 and meta["state"]["status"] == "running"
    for g in groups:
        for n in groups[g]:
            assert got[g][n].dtype == groups[g][n].dtype
            assert np.array_equal(got[g][n], groups[g][n])


# --------------------------------------------------------------------------- integrity

def _truncate(path, fraction):
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * fraction)])


def test_arrays_are_stored_at_their_names(tmp_path):
    path = tmp_path / "c.h5"
    groups = write(path)
    with h5py.File(path, "r") as f:
        assert f.attrs["format_version"] == checkpoints.FORMAT_VERSION == 3
        for name, value in groups["params"].items():
            assert np.array_equal(f["params"][name][()], value)  # e.g. params/encoder/0/W
        assert isinstance(f["params/encoder"], h5py.Group)


def _write_version_2(path, groups, meta):
    """A checkpoint as version 2 wrote it: arrays under their index, names in an attribute."""
    meta_json = json.dumps(meta, sort_keys=True)
    with h5py.File(path, "w") as f:
        f.attrs.update(format=checkpoints.FORMAT, format_version=2, meta=meta_json,
                       groups=json.dumps(sorted(groups)),
                       checksum=checkpoints._checksum(groups, meta_json))
        for group, named in groups.items():
            g = f.create_group(group)
            g.attrs["names"] = json.dumps(list(named))
            for i, arr in enumerate(named.values()):
                g.create_dataset(str(i), data=arr)


def test_version_2_files_still_load_exactly(tmp_path):
    path = tmp_path / "old.h5"
    groups = {"params": arrays(3), "optimizer": arrays(4)}
    _write_version_2(path, groups, state())
    got, meta = read_checkpoint(str(path))
    assert meta == state()
    for group, named in groups.items():
        assert list(got[group]) == list(named)
        for name, value in named.items():
            assert np.array_equal(got[group][name], value) and got[group][name].dtype == value.dtype


@pytest.mark.parametrize("name", ["", "/abs", "a//b", "../x", "a/./b", "a/.."])
def test_array_names_that_would_leave_their_group_are_refused(tmp_path, name):
    with pytest.raises(ValueError, match="array name"):
        write_checkpoint(str(tmp_path / "c.h5"), {"params": {name: np.zeros(2)}}, {})
    with pytest.raises(ValueError, match="array name"):  # a name and a folder of another
        write_checkpoint(str(tmp_path / "c.h5"), {"params": {"a": np.zeros(2),
                                                             "a/b": np.zeros(2)}}, {})


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.5, 0.9, 0.999])
def test_truncated_checkpoint_is_refused_naming_the_file(tmp_path, fraction):
    path = tmp_path / "c.h5"
    write(path)
    _truncate(path, fraction)
    with pytest.raises(CheckpointError) as info:
        read_checkpoint(str(path))
    assert str(path) in str(info.value)


def test_flipped_byte_in_an_array_fails_the_checksum(tmp_path):
    path = tmp_path / "c.h5"
    groups = write(path)
    with h5py.File(path, "r") as f:
        offset = f["params"][FIRST].id.get_offset()
    data = bytearray(path.read_bytes())
    data[offset + 3] ^= 0x40
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="checksum mismatch") as info:
        read_checkpoint(str(path))
    assert str(path) in str(info.value)
    assert groups  # the original arrays are what the checksum protects


def test_edited_metadata_fails_the_checksum(tmp_path):
    path = tmp_path / "c.h5"
    write(path)
    with h5py.File(path, "r+") as f:
        meta = json.loads(f.attrs["meta"])
        meta["state"]["epoch"] = 7  # valid JSON, wrong content
        f.attrs["meta"] = json.dumps(meta, sort_keys=True)
    with pytest.raises(CheckpointError, match="checksum"):
        read_checkpoint(str(path))


@pytest.mark.parametrize("damage", ["group", "dataset", "names", "meta", "checksum", "format"])
def test_missing_parts_are_refused_naming_the_file(tmp_path, damage):
    path = tmp_path / "c.h5"
    write(path)
    with h5py.File(path, "r+") as f:
        if damage == "group":
            del f["optimizer"]
        elif damage == "dataset":
            del f["params"][SECOND]
        elif damage == "names":
            del f["params"].attrs["names"]
        else:
            del f.attrs[damage]
    with pytest.raises(CheckpointError) as info:
        read_checkpoint(str(path))
    assert str(path) in str(info.value)


def test_required_group_missing(tmp_path):
    path = tmp_path / "c.h5"
    write(path, groups={"optimizer": arrays()})
    with pytest.raises(CheckpointError, match="missing the 'params' arrays"):
        read_checkpoint(str(path), required_groups=("params",))


def test_huge_declared_array_is_refused_without_allocating_it(tmp_path):
    path = tmp_path / "c.h5"
    write(path)
    with h5py.File(path, "r+") as f:  # 8 TB of fill value in a tiny file
        del f["params"][FIRST]
        f["params"].create_dataset(FIRST, shape=(10 ** 6, 10 ** 6), dtype="f8",
                                   chunks=(1, 1024))
    with pytest.raises(CheckpointError, match="larger than the file"):
        read_checkpoint(str(path))


def test_non_numeric_array_is_refused(tmp_path):
    path = tmp_path / "c.h5"
    write(path)
    with h5py.File(path, "r+") as f:
        del f["params"][FIRST]
        f["params"][FIRST] = np.array([b"abc", b"de"])
    with pytest.raises(CheckpointError, match="expected numbers"):
        read_checkpoint(str(path))


def test_shapes_and_dtypes_that_do_not_match_the_arguments(tmp_path):
    path = str(tmp_path / "c.h5")
    good = arrays()
    check_shapes(path, good, SHAPES)
    wrong = dict(good, **{"encoder/0/W": np.zeros((6, 5), np.float32)})
    with pytest.raises(CheckpointError, match=r"encoder/0/W.*\(6, 5\).*needs \(6, 4\)") as info:
        check_shapes(path, wrong, SHAPES)
    assert path in str(info.value)
    with pytest.raises(CheckpointError, match="missing"):
        check_shapes(path, {k: v for k, v in good.items() if k != "latent/W_a"}, SHAPES)
    with pytest.raises(CheckpointError, match="dtype float64"):
        check_shapes(path, arrays(dtype=np.float64), SHAPES,
                     dtypes={n: np.float32 for n in SHAPES})


# --------------------------------------------------------------------------- fallback

def _rotate_and_write(files, seed):
    """What Trainer.save_checkpoint does: current -> .prev.h5, then the new one."""
    if os.path.exists(files.checkpoint):
        os.replace(files.checkpoint, files.previous_checkpoint)
    return write(files.checkpoint, seed=seed, epoch=seed)


@pytest.mark.parametrize("damage", ["truncate", "missing group", "wrong shape"])
def test_damaged_checkpoint_falls_back_to_prev(tmp_path, damage):
    files = run_files(tmp_path)
    good = _rotate_and_write(files, 1)
    _rotate_and_write(files, 2)
    if damage == "truncate":
        _truncate(tmp_path / os.path.basename(files.checkpoint), 0.6)
    elif damage == "missing group":
        with h5py.File(files.checkpoint, "r+") as f:
            del f["params"]
    logged = []

    def validate(groups, meta, path):  # what the CLI does with the model's shapes
        check_shapes(path, groups["params"], SHAPES)

    if damage == "wrong shape":
        write(files.checkpoint, groups={"params": arrays(shapes={**SHAPES, "latent/W_a": (4, 3)}),
                                        "optimizer": arrays()})
    groups, meta, path = load_latest_checkpoint(files, logged.append, validate)
    assert path == files.previous_checkpoint and meta["state"]["epoch"] == 1
    for n in good["params"]:
        assert np.array_equal(groups["params"][n], good["params"][n])
    assert any(files.checkpoint in m and "refusing" in m for m in logged), logged
    assert any("previous good checkpoint" in m for m in logged), logged


def test_no_sound_checkpoint_is_a_clear_error(tmp_path):
    files = run_files(tmp_path)
    _rotate_and_write(files, 1)
    _rotate_and_write(files, 2)
    for p in (files.checkpoint, files.previous_checkpoint):
        with open(p, "r+b") as f:
            f.truncate(100)
    with pytest.raises(CheckpointError) as info:
        load_latest_checkpoint(files, lambda m: None)
    message = str(info.value)
    assert files.checkpoint in message and files.previous_checkpoint in message
    assert "--no-resume" in message
    # and the CLI's run resolution reports it rather than overwriting the run
    with pytest.raises(CheckpointError):
        resolve_run(str(tmp_path), "stickBreaking_vae", "run", "auto", log=lambda m: None)


def test_only_prev_left_by_a_kill_during_rotation(tmp_path):
    files = run_files(tmp_path)
    _rotate_and_write(files, 1)
    os.replace(files.checkpoint, files.previous_checkpoint)  # killed before the new write
    groups, meta, path = load_latest_checkpoint(files, lambda m: None)
    assert path == files.previous_checkpoint and meta["state"]["epoch"] == 1


# --------------------------------------------------------------------------- run naming

def test_resume_new_and_counter(tmp_path):
    d, prefix = str(tmp_path), "stickBreaking_vae"
    quiet = dict(log=lambda m: None)
    files, ckpt = resolve_run(d, prefix, "run", "auto", **quiet)
    assert files.name == "run" and ckpt is None
    with pytest.raises(CheckpointError, match="another process"):  # we hold its lock
        resolve_run(d, prefix, "run", "resume", **quiet)
    write(files.checkpoint, status="running")
    other, _ = resolve_run(d, prefix, "run", "auto", **quiet)  # locked: a new run beside it
    assert other.name == "run_1"
    other.lock.release()
    files.lock.release()
    # unfinished and free: resumed
    again, ckpt = resolve_run(d, prefix, "run", "resume", **quiet)
    assert again.name == "run" and ckpt is not None and ckpt[2] == files.checkpoint
    again.lock.release()
    # finished, its log and metrics written: never overwritten, a counter is appended
    write(files.checkpoint, status="finished")
    fileio.write_text(files.results, "epoch 0 ...\nDone! best epoch 0\n")
    with h5py.File(files.metrics, "w") as f:
        f.attrs["status"] = "finished"
    new, ckpt = resolve_run(d, prefix, "run", "auto", **quiet)
    assert new.name == "run_1" and ckpt is None
    new.lock.release()
    with pytest.raises(CheckpointError, match="already finished"):
        resolve_run(d, prefix, "run", "resume", **quiet)
    fresh, _ = resolve_run(d, prefix, "run", "new", **quiet)
    assert fresh.name == "run_1"
    fresh.lock.release()


def test_a_run_killed_before_its_final_log_write_is_completed_not_restarted(tmp_path):
    """The checkpoint's status is the one source of truth: an ended run whose metrics
    lag it (a kill between the final checkpoint and the log write) is handed back with
    its checkpoint, for completion, by both auto and --resume; once its metrics say so it
    is finished and a new run gets a counter."""
    from stick_breaking_dgms.runfiles import run_status
    d, prefix = str(tmp_path), "stickBreaking_vae"
    files = run_files(tmp_path)
    assert run_status(files) == "absent"
    write(files.checkpoint, status="finished")
    fileio.write_text(files.results, "epoch 0 ...\n")  # the final line never written
    with h5py.File(files.metrics, "w") as f:
        f.attrs["status"] = "running"
    assert run_status(files) == "unfinished"
    for mode in ("auto", "resume"):
        same, ckpt = resolve_run(d, prefix, "run", mode, log=lambda m: None)
        assert same.name == "run" and ckpt[1]["state"]["status"] == "finished"
        assert run_status(files) == "locked"
        same.lock.release()
    with h5py.File(files.metrics, "w") as f:
        f.attrs["status"] = "finished"
    assert run_status(files) == "finished"
    new, ckpt = resolve_run(d, prefix, "run", "auto", log=lambda m: None)
    assert new.name == "run_1" and ckpt is None
    new.lock.release()


@pytest.mark.parametrize("which", ["checkpoint", "previous_checkpoint", "results", "lock"])
def test_a_folder_where_a_run_file_should_be_is_refused_naming_it(tmp_path, which):
    files = run_files(tmp_path)
    path = files.lock.path if which == "lock" else getattr(files, which)
    os.mkdir(path)
    with pytest.raises(CheckpointError) as info:
        resolve_run(str(tmp_path), files.prefix, "run", "auto", log=lambda m: None)
    assert path in str(info.value) and "is a folder" in str(info.value)


def test_rotation_keeps_the_newest_checkpoint_until_the_next_one_is_complete(tmp_path):
    """write_checkpoint(previous=...) renames the old file only once the new one is on
    disk: a write that fails (here: an array the format refuses, raised while writing
    the temporary file) leaves both files as they were and no temporary behind."""
    files = run_files(tmp_path)
    first = write(files.checkpoint, seed=1)
    write(files.previous_checkpoint, seed=2)
    before = {p: open(p, "rb").read() for p in (files.checkpoint, files.previous_checkpoint)}
    seen = []

    def between():
        seen.append((os.path.exists(files.checkpoint), os.path.exists(files.previous_checkpoint)))

    real = checkpoints._checksum
    checkpoints._checksum = lambda *a: (_ for _ in ()).throw(OSError(28, "No space left"))
    try:
        with pytest.raises(OSError):
            write_checkpoint(files.checkpoint, {"params": arrays(3)}, {},
                             files.previous_checkpoint, between)
    finally:
        checkpoints._checksum = real
    assert {p: open(p, "rb").read() for p in before} == before and seen == []
    assert sorted(os.listdir(tmp_path)) == sorted(os.path.basename(p) for p in before)
    write_checkpoint(files.checkpoint, {"params": arrays(3)}, {}, files.previous_checkpoint,
                     between)
    assert seen == [(False, True)]  # the hook sees the old file moved, the new not yet
    groups, _ = read_checkpoint(files.previous_checkpoint)
    assert all(np.array_equal(groups["params"][n], first["params"][n]) for n in first["params"])


def test_finished_run_with_damaged_checkpoint_is_not_overwritten(tmp_path):
    d, prefix = str(tmp_path), "stickBreaking_vae"
    files = run_files(tmp_path)
    write(files.checkpoint, status="finished")
    fileio.write_text(files.results, "Done! best epoch 0\n")
    with open(files.checkpoint, "r+b") as f:
        f.truncate(50)
    new, ckpt = resolve_run(d, prefix, "run", "auto", log=lambda m: None)
    assert new.name == "run_1" and ckpt is None
    new.lock.release()


def test_stale_temporaries_of_a_killed_writer_are_removed_on_resume(tmp_path):
    files = run_files(tmp_path)
    write(files.checkpoint)
    stale = [os.path.join(str(tmp_path), "." + os.path.basename(p) + ".abc123.tmp")
             for p in (files.checkpoint, files.results)]
    unrelated = str(tmp_path / ".something_else.h5.abc.tmp")
    for p in stale + [unrelated]:
        open(p, "wb").close()
    got, _ = resolve_run(str(tmp_path), "stickBreaking_vae", "run", "auto", log=lambda m: None)
    got.lock.release()
    assert not any(os.path.exists(p) for p in stale)
    assert os.path.exists(unrelated)


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    path = tmp_path / "log.txt"
    fileio.write_text(str(path), "old\n")
    with pytest.raises(RuntimeError):
        with fileio.atomic_path(str(path)) as tmp:
            with open(tmp, "w") as f:
                f.write("half")
            raise RuntimeError("killed")
    assert path.read_text() == "old\n"
    assert sorted(os.listdir(tmp_path)) == ["log.txt"]


# --------------------------------------------------------------------------- fuzzing

@pytest.fixture(scope="module")
def valid_bytes(tmp_path_factory):
    path = tmp_path_factory.mktemp("valid") / "c.h5"
    write(path, groups={"params": arrays(), "optimizer": arrays(1), "best": arrays(2)})
    return path.read_bytes()


def _assert_refused_or_sound(path):
    """A checkpoint read either succeeds (consistent content) or raises CheckpointError."""
    with Watchdog():
        try:
            groups, meta = read_checkpoint(str(path), required_groups=("params",))
        except CheckpointError as e:
            assert str(path) in str(e)
            return False
    assert isinstance(meta, dict) and "params" in groups
    return True


FUZZ = settings(max_examples=int(os.environ.get("SBDGM_FUZZ_EXAMPLES", 60)), deadline=5000,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


@FUZZ
@given(data=st.binary(max_size=4096))
def test_fuzz_random_bytes(tmp_path, data):
    path = tmp_path / "c.h5"
    path.write_bytes(data)
    assert not _assert_refused_or_sound(path)


@FUZZ
@given(cut=st.floats(0.0, 1.0, exclude_max=True), flips=st.lists(
    st.tuples(st.floats(0.0, 1.0, exclude_max=True), st.integers(1, 255)), max_size=4))
def test_fuzz_truncated_or_flipped_valid_file(tmp_path, valid_bytes, cut, flips):
    data = bytearray(valid_bytes[:max(int(len(valid_bytes) * cut), 0)] if cut else valid_bytes)
    for where, mask in flips:
        if data:
            data[int(where * len(data))] ^= mask
    path = tmp_path / "c.h5"
    path.write_bytes(bytes(data))
    if _assert_refused_or_sound(path):
        # only an untouched file (or flips in unused bytes) may read back, and then exactly
        groups, _ = read_checkpoint(str(path))
        for n, a in arrays().items():
            assert np.array_equal(groups["params"][n], a)


_attr_values = st.one_of(st.none(), st.integers(-5, 5), st.floats(allow_nan=True),
                         st.text(st.characters(blacklist_categories=("Cs",),
                                               blacklist_characters="\x00"), max_size=20),
                         st.binary(min_size=1, max_size=20),
                         st.lists(st.integers(0, 3), max_size=3))
_json_texts = st.one_of(st.just("{}"), st.just("[]"), st.just('["params"]'),
                        st.just('["params", "nope"]'), st.just("null"), st.just("{not json"),
                        st.just('["0", "0"]'), st.just("[1, 2]"))


@FUZZ
@given(fmt=st.one_of(st.just(checkpoints.FORMAT), _attr_values),
       version=st.one_of(st.just(2), st.just(3), _attr_values),
       meta=st.one_of(st.just(json.dumps(state())), _json_texts, _attr_values),
       groups_attr=st.one_of(st.just('["params"]'), _json_texts, _attr_values),
       names=st.one_of(st.just(json.dumps(list(SHAPES))), _json_texts, _attr_values),
       dtype=st.sampled_from(["f4", "f8", "i4", "u1", "?", "S3", "c8"]),
       shape=st.lists(st.integers(0, 4), max_size=3),
       as_group=st.booleans(), checksum=st.one_of(st.just("x" * 64), _attr_values))
def test_fuzz_valid_hdf5_with_wrong_contents(tmp_path, fmt, version, meta, groups_attr, names,
                                             dtype, shape, as_group, checksum):
    path = tmp_path / "c.h5"
    with h5py.File(path, "w") as f:
        for key, value in (("format", fmt), ("format_version", version), ("meta", meta),
                           ("groups", groups_attr), ("checksum", checksum)):
            if isinstance(value, bytes):
                f.attrs[key] = np.void(value)  # opaque bytes (NULs allowed)
            elif value is not None:
                f.attrs[key] = value
        g = f.create_group("params")
        if isinstance(names, bytes):
            g.attrs["names"] = np.void(names)
        elif names is not None:
            g.attrs["names"] = names
        for i in range(3):
            if as_group and i == 1:
                g.create_group(str(i))
            elif dtype == "S3":
                g[str(i)] = np.full(shape, b"abc", dtype="S3")
            else:
                g[str(i)] = np.ones(shape, dtype=dtype)
    assert not _assert_refused_or_sound(path)  # the checksum can never match

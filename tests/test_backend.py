"""The backend package: its choice and its errors, the same losses on Aesara and PyTensor,
and the JAX mode (training, checkpoints, resuming) where PyTensor and jax are installed."""
import glob
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from stick_breaking_dgms import backend, cli
from stick_breaking_dgms.checkpoints import read_checkpoint

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REFERENCE = os.path.join(ROOT, "tests", "data", "backend_losses.json")
JAX = backend.NAME == "pytensor" and backend._impl.JAX_AVAILABLE
needs_jax = pytest.mark.skipif(not JAX, reason="JAX mode needs PyTensor and jax")

# Short real-MNIST runs in float64, where the two libraries' different graph rewrites
# leave only rounding-level differences (float32 would let them grow over the steps).
RUNS = {
    "sb_vae": ["--hidden-size", "30", "--truncation-level", "8", "--max-epoch", "2",
               "--learning-rate", "0.001"],
    "sb_ssdgm": ["--hidden-size", "30", "--latent-size", "8", "--max-epoch", "1",
                 "--learning-rate", "0.001"],
}
COMMON = ["--floatX", "float64", "--progress", "never", "--blas-threads", "1"]


def _python(code, **env):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, **env}, cwd=ROOT, timeout=300)


def test_an_unknown_backend_is_a_clear_error():
    r = _python("import stick_breaking_dgms.backend", SBDGM_BACKEND="theano")
    assert r.returncode == 1
    assert "SBDGM_BACKEND='theano': expected one of aesara, pytensor" in r.stderr


def test_a_backend_that_is_not_installed_is_a_clear_error():
    missing = "pytensor" if backend.NAME == "aesara" else "aesara"
    r = _python("import stick_breaking_dgms.backend", SBDGM_BACKEND=missing)
    assert r.returncode == 1
    assert f"SBDGM_BACKEND={missing}: {missing} is not installed" in r.stderr


def test_the_choice_is_the_environment_variable_else_aesara_else_pytensor():
    r = _python("from stick_breaking_dgms import backend; print(backend.NAME, backend.describe())")
    assert r.returncode == 0, r.stderr
    expected = "aesara" if backend.importlib.util.find_spec("aesara") else "pytensor"
    assert r.stdout.split()[0] == expected
    r = _python("from stick_breaking_dgms import backend; print(backend.NAME)",
                SBDGM_BACKEND=expected.upper())
    assert r.stdout.strip() == expected
    # only the chosen library's flags variable is changed, and the user's settings there win
    other = "AESARA_FLAGS" if backend.NAME == "pytensor" else "PYTENSOR_FLAGS"
    r = _python(f"import os; from stick_breaking_dgms import backend; "
                f"print(backend.config.floatX, repr(os.environ.get('{other}', 'unset')))",
                **{backend.FLAGS_VARIABLE: "floatX=float64", other: "floatX=float16"})
    assert r.stdout.split() == ["float64", "'floatX=float16'"], r.stderr


PROBE_ENVIRONMENT = """
import json, os
before = dict(os.environ)
from stick_breaking_dgms import backend
changed = sorted(k for k in set(before) | set(os.environ) if before.get(k) != os.environ.get(k))
print(json.dumps([changed, backend.config.floatX, backend.blas_threads(),
                  bool(backend.blas_library())]))
"""


@pytest.mark.parametrize("threads", [None, "2"])
def test_importing_the_backend_changes_no_environment_variable(threads):
    """The library reads our flags while it is imported; afterwards the process has its
    environment back (child processes inherit nothing of ours), the float type is
    still ours, and OpenBLAS runs one thread unless OPENBLAS_NUM_THREADS says otherwise."""
    import json
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENBLAS_NUM_THREADS", backend.FLAGS_VARIABLE)}
    if threads:
        env["OPENBLAS_NUM_THREADS"] = threads
    r = subprocess.run([sys.executable, "-c", PROBE_ENVIRONMENT], capture_output=True,
                       text=True, env=env, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr
    changed, floatx, n, linked = json.loads(r.stdout.strip().splitlines()[-1])
    assert changed == [] and floatx == "float32"
    if linked:
        assert n == int(threads or 1)


def test_jax_mode_without_its_requirements_says_what_is_missing(monkeypatch, capsys,
                                                                tmp_path):
    if backend.NAME == "aesara":
        with pytest.raises(SystemExit) as e:
            cli.main("sb_vae", ["--mode", "JAX", "--experiment-dir", str(tmp_path)])
        assert e.value.code == 2
        assert "--mode JAX needs the PyTensor backend" in capsys.readouterr().err
    monkeypatch.setattr(backend._impl, "JAX_AVAILABLE", False)
    if backend.NAME == "pytensor":
        with pytest.raises(backend.BackendError, match="needs the jax package"):
            backend.set_mode("JAX")
    assert backend.mode() == "C"
    assert not os.listdir(tmp_path)  # nothing written


def _losses(directory):
    """{metric: per-epoch values, at full precision} from the run's metrics file."""
    import h5py
    (path,) = glob.glob(os.path.join(directory, "*_metrics_*.h5"))
    with h5py.File(path, "r") as f:
        out = {k: [float(v) for v in f[k][()]] for k in f if k.startswith(("train_", "valid"))}
        out["test_score"] = [float(f.attrs["test_score"])]
    return out


def _run(model, directory, extra=()):
    code = cli.main(model, RUNS[model] + COMMON + list(extra) + ["--experiment-dir",
                                                                 str(directory)])
    assert code == 0
    return _losses(str(directory))


@pytest.fixture(scope="module")
def c_losses(tmp_path_factory):
    base = tmp_path_factory.mktemp("backend_c")
    return {model: _run(model, base / model) for model in RUNS}


def test_the_same_losses_on_aesara_and_pytensor(c_losses):
    """The C backends agree to rounding: the recorded Aesara run and this one."""
    if os.environ.get("SBDGM_RECORD_BACKEND_LOSSES") and backend.NAME == "aesara":
        with open(REFERENCE, "w") as f:
            json.dump({"recorded_with": backend.describe(), "runs": RUNS, "common": COMMON,
                       "losses": c_losses}, f)
    with open(REFERENCE) as f:
        ref = json.load(f)
    assert ref["runs"] == RUNS and ref["common"] == COMMON, "re-record the reference"
    for model, losses in c_losses.items():
        assert losses.keys() == ref["losses"][model].keys()
        for key, values in losses.items():
            np.testing.assert_allclose(values, ref["losses"][model][key], rtol=1e-9,
                                       err_msg=f"{model} {key} on {backend.describe()} vs "
                                               f"{ref['recorded_with']}")


@needs_jax
def test_jax_mode_trains_to_the_c_losses_within_its_noise(c_losses, tmp_path):
    """Under JAX the training noise comes from the host (another stream than the C mode's
    random variables), so the runs differ by their noise draws: the epoch means of the
    losses and the validation and test scores agree within 0.25 nats, and the SB-DGM's
    error rates within one percentage point."""
    for model in RUNS:
        jax_losses = _run(model, tmp_path / model, ["--mode", "JAX"])
        assert jax_losses.keys() == c_losses[model].keys()
        for key, values in jax_losses.items():
            if key.endswith("_errors"):
                continue  # counts of the error rates compared below
            error_rate = model == "sb_ssdgm" and key in ("valid_score", "test_score")
            np.testing.assert_allclose(values, c_losses[model][key], rtol=0,
                                       atol=0.01 if error_rate else 0.25,
                                       err_msg=f"{model} {key}")
    backend.set_mode("C")


@needs_jax
def test_jax_mode_resumes_bit_identically(tmp_path, monkeypatch):
    argv = RUNS["sb_vae"] + COMMON + ["--mode", "JAX"]
    straight, chain = str(tmp_path / "straight"), str(tmp_path / "chain")
    try:
        assert cli.main("sb_vae", argv + ["--experiment-dir", straight]) == 0
        monkeypatch.setenv("SBDGM_TEST_INTERRUPT", "SIGTERM@step:600")
        assert cli.main("sb_vae", argv + ["--experiment-dir", chain]) == 128 + 15
        monkeypatch.delenv("SBDGM_TEST_INTERRUPT")
        # a JAX run does not resume in C mode (another noise stream, other kernels)
        assert cli.main("sb_vae", RUNS["sb_vae"] + COMMON + ["--experiment-dir", chain,
                                                             "--resume"]) == 1
        assert cli.main("sb_vae", argv + ["--experiment-dir", chain]) == 0
    finally:
        backend.set_mode("C")
    (a_path,) = glob.glob(os.path.join(straight, "*_checkpoint_*[0-9].h5"))
    (b_path,) = glob.glob(os.path.join(chain, "*_checkpoint_*[0-9].h5"))
    (a, a_meta), (b, b_meta) = read_checkpoint(a_path), read_checkpoint(b_path)
    assert a_meta["mode"] == b_meta["mode"] == "JAX"
    for group in ("params", "optimizer", "best"):
        for name, value in a[group].items():
            np.testing.assert_array_equal(value, b[group][name])
    assert a_meta["rng_states"] == b_meta["rng_states"]
    assert _losses(straight) == _losses(chain)
